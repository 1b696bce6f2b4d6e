"""login security: lock-out, MFA (TOTP), recovery codes, API tokens

Revision ID: b2c3e5ec0002
Revises: a1d17e5b0001
Create Date: 2026-11-24 04:10:00

"""
import sqlalchemy as sa
from alembic import op

from app.crypto import stored_length

# revision identifiers, used by Alembic.
revision = 'b2c3e5ec0002'
down_revision = 'a1d17e5b0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("ab_user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("locked_until", sa.DateTime(), nullable=True))
    op.create_table(
        "crm_role_mfa",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("role_id", sa.Integer(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["role_id"], ["ab_role.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("role_id"),
    )
    op.create_table(
        "crm_user_mfa",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("secret", sa.String(length=stored_length(32)), nullable=False),  # encrypted
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.Column("last_step", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["ab_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id"),
    )
    op.create_table(
        "crm_mfa_recovery_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["ab_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_crm_mfa_recovery_code_user_id", "crm_mfa_recovery_code", ["user_id"])
    op.create_table(
        "crm_api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("scope", sa.String(length=20), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("last_used_ip", sa.String(length=45), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["ab_user.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_crm_api_token_user_id", "crm_api_token", ["user_id"])


def downgrade():
    op.drop_index("ix_crm_api_token_user_id", table_name="crm_api_token")
    op.drop_table("crm_api_token")
    op.drop_index("ix_crm_mfa_recovery_code_user_id", table_name="crm_mfa_recovery_code")
    op.drop_table("crm_mfa_recovery_code")
    op.drop_table("crm_user_mfa")
    op.drop_table("crm_role_mfa")
    with op.batch_alter_table("ab_user", schema=None) as batch_op:
        batch_op.drop_column("locked_until")
