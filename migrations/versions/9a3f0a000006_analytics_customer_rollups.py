"""dashboards: the customers dashboard's rollups (app/analytics/customer_rollups.py)

Revision ID: 9a3f0a000006
Revises: 9a2f0a000005
Create Date: 2026-11-24 08:00:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '9a3f0a000006'
down_revision = '9a2f0a000005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'crm_rollup_customer_dim',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('dim', sa.String(length=12), nullable=False),
        sa.Column('value', sa.String(length=40), nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=True),
        sa.Column('department_id', sa.Integer(), nullable=True),
        sa.Column('custom_key', sa.String(length=500), nullable=False),
        sa.Column('customers', sa.Integer(), nullable=False),
        sa.Column('company', sa.Boolean(), nullable=False),
        sa.Column('refreshed_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_rollup_customer_dim_owner', 'crm_rollup_customer_dim', ['dim', 'company', 'owner_id'])
    op.create_index('ix_rollup_customer_dim_department', 'crm_rollup_customer_dim',
                    ['dim', 'company', 'department_id'])
    op.create_table(
        'crm_rollup_customer_company',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('fact', sa.String(length=12), nullable=False),
        sa.Column('period', sa.Date(), nullable=False),
        sa.Column('custom_key', sa.String(length=500), nullable=False),
        sa.Column('dim1', sa.String(length=100), nullable=True),
        sa.Column('dim2', sa.String(length=100), nullable=True),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.Column('amount', sa.Numeric(precision=18, scale=2), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_rollup_customer_company_fact', 'crm_rollup_customer_company', ['fact', 'dim1', 'period'])
    op.create_table(
        'crm_rollup_potential_customer',
        sa.Column('customer_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('owner_id', sa.Integer(), nullable=True),
        sa.Column('department_id', sa.Integer(), nullable=True),
        sa.Column('industry_id', sa.Integer(), nullable=False),
        sa.Column('amount', sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column('peer_average', sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column('peers', sa.Integer(), nullable=False),
        sa.Column('same_size', sa.Boolean(), nullable=False),
        sa.Column('same_level', sa.Boolean(), nullable=False),
        sa.Column('same_city', sa.Boolean(), nullable=False),
        sa.Column('score', sa.SmallInteger(), nullable=False),
        sa.Column('gap', sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column('computed_on', sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint('customer_id'),
    )
    op.create_index('ix_crm_rollup_potential_customer_owner_id', 'crm_rollup_potential_customer',
                    ['owner_id'])
    op.create_index('ix_crm_rollup_potential_customer_department_id', 'crm_rollup_potential_customer',
                    ['department_id'])
    op.create_index('ix_rollup_potential_order', 'crm_rollup_potential_customer', ['score', 'gap'])


def downgrade():
    op.drop_table('crm_rollup_potential_customer')
    op.drop_table('crm_rollup_customer_company')
    op.drop_table('crm_rollup_customer_dim')
