"""orders: the owner's index covers the top customers' sums

ix_order_owner_status_date (owner_id, status, ordered_on) becomes ix_order_owner_live with the
department, customer and amount after them: the sales dashboard's top customers of a rep, and of
a manager's own orders outside their departments, read the index alone (PostgreSQL visited
8,500 order rows of the manager for their department: 137 ms).

Revision ID: c1a0c0000012
Revises: b9a0c0000011
Create Date: 2026-11-24 13:15:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c1a0c0000012'
down_revision = 'b9a0c0000011'
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index('ix_order_owner_status_date', table_name='crm_order')
    op.create_index(
        'ix_order_owner_live', 'crm_order',
        ['owner_id', 'status', 'ordered_on', 'department_id', 'customer_id', 'total_amount'], unique=False,
    )
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':  # an analysed database: statistics for it at once
        analysed = bind.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'"
        ).first()
        if analysed:
            bind.exec_driver_sql('ANALYZE "ix_order_owner_live"')


def downgrade():
    op.drop_index('ix_order_owner_live', table_name='crm_order')
    op.create_index('ix_order_owner_status_date', 'crm_order', ['owner_id', 'status', 'ordered_on'], unique=False)
