"""dashboards: the company's top customers per quick date range (app/analytics/top_customers.py)

Revision ID: b6a0c0000008
Revises: b5a0c0000007
Create Date: 2026-11-24 11:40:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = 'b6a0c0000008'
down_revision = 'b5a0c0000007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'crm_rollup_top_customer',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('first_month', sa.Date(), nullable=False),
        sa.Column('last_month', sa.Date(), nullable=False),
        sa.Column('custom_key', sa.String(length=500), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.Column('amount', sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column('refreshed_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_rollup_top_customer_range', 'crm_rollup_top_customer', ['first_month', 'last_month'])


def downgrade():
    op.drop_index('ix_rollup_top_customer_range', table_name='crm_rollup_top_customer')
    op.drop_table('crm_rollup_top_customer')
