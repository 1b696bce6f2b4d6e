"""field permissions per role and entity

Revision ID: d4f1e1d00004
Revises: c3e2c7a00003
Create Date: 2026-11-24 04:10:00

"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = 'd4f1e1d00004'
down_revision = 'c3e2c7a00003'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
