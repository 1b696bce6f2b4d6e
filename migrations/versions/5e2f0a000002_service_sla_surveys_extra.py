"""service desk, SLA and surveys (placeholder until used)

Revision ID: 5e2f0a000002
Revises: 5e1f0a000001
Create Date: 2026-11-24 08:00:00

"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

# revision identifiers, used by Alembic.
revision = '5e2f0a000002'
down_revision = '5e1f0a000001'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
