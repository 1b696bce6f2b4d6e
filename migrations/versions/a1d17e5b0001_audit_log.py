"""audit log (hash-chained)

Revision ID: a1d17e5b0001
Revises: 18f7f7201500
Create Date: 2026-11-24 04:10:00

"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = 'a1d17e5b0001'
down_revision = '18f7f7201500'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
