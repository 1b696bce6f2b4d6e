"""login security: lock-out, MFA (TOTP), recovery codes, API tokens

Revision ID: b2c3e5ec0002
Revises: a1d17e5b0001
Create Date: 2026-11-24 04:10:00

"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

# revision identifiers, used by Alembic.
revision = 'b2c3e5ec0002'
down_revision = 'a1d17e5b0001'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
