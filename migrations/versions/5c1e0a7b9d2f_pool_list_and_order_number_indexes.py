"""pool list and order number indexes

The pool screens list a pool's customers (or all pools') newest first: without an index on
pooled_at the database sorted half a million pooled customers for a page of 20. New order
numbers look up the day's prefix (HT-20261124-...): PostgreSQL's LIKE can use a btree index only
with varchar_pattern_ops (the database's collation is not C), so it gets one; SQLite uses GLOB on
the unique index and MariaDB's LIKE its own index (app.orders.starts_with).

Revision ID: 5c1e0a7b9d2f
Revises: 0f4896f520af
Create Date: 2026-11-24 02:05:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '5c1e0a7b9d2f'
down_revision = '0f4896f520af'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_customer_pool_pooled', 'crm_customer', ['pool_id', 'pooled_at'], unique=False)
    op.create_index('ix_customer_pooled_at', 'crm_customer', ['pooled_at'], unique=False)
    # the composite index leads with pool_id: the single-column one only cost the recycle run
    op.drop_index('ix_crm_customer_pool_id', table_name='crm_customer')
    if op.get_bind().dialect.name == 'postgresql':
        op.create_index('ix_order_number_pattern', 'crm_order', ['number'], unique=False,
                        postgresql_ops={'number': 'varchar_pattern_ops'})


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_index('ix_order_number_pattern', table_name='crm_order')
    op.create_index('ix_crm_customer_pool_id', 'crm_customer', ['pool_id'], unique=False)
    op.drop_index('ix_customer_pooled_at', table_name='crm_customer')
    op.drop_index('ix_customer_pool_pooled', table_name='crm_customer')
