"""dashboards, subscriptions (placeholder until used)

Revision ID: 9a2f0a000005
Revises: 9a1f0a000004
Create Date: 2026-11-24 08:00:00

"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

# revision identifiers, used by Alembic.
revision = '9a2f0a000005'
down_revision = '9a1f0a000004'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
