"""encryption at rest: encrypted personal data with a blind index

Revision ID: c3e2c7a00003
Revises: b2c3e5ec0002
Create Date: 2026-11-24 04:10:00

"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = 'c3e2c7a00003'
down_revision = 'b2c3e5ec0002'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
