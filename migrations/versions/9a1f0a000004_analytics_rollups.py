"""dashboards, rollups: crm_rollup (the dashboards' sums and counts) and crm_rollup_state

Revision ID: 9a1f0a000004
Revises: 5e3f0a000003
Create Date: 2026-11-24 08:00:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '9a1f0a000004'
down_revision = '5e3f0a000003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "crm_rollup",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fact", sa.String(length=12), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.Column("custom_key", sa.String(length=500), nullable=False),
        sa.Column("dim1", sa.String(length=100), nullable=True),
        sa.Column("dim2", sa.String(length=100), nullable=True),
        sa.Column("dim3", sa.String(length=255), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("amount2", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rollup_fact_period", "crm_rollup", ["fact", "period"])
    op.create_index("ix_rollup_fact_owner", "crm_rollup", ["fact", "owner_id", "period"])
    op.create_index("ix_rollup_fact_department", "crm_rollup", ["fact", "department_id", "period"])
    op.create_index("ix_rollup_fact_dim", "crm_rollup", ["fact", "dim1", "period"])
    op.create_table(
        "crm_rollup_state",
        sa.Column("fact", sa.String(length=12), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(), nullable=True),
        sa.Column("rebuilt_at", sa.DateTime(), nullable=True),
        sa.Column("custom_fields", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("fact"),
    )


def downgrade():
    op.drop_table("crm_rollup_state")
    op.drop_table("crm_rollup")
