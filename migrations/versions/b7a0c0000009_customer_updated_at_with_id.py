"""recently changed customers: the updated_at index holds the id too

The home page reads the most recently changed customers by (updated_at DESC, id DESC). A bulk
change (an import, a job that touches every customer) leaves many customers with the same
updated_at; PostgreSQL's (updated_at) index orders such ties by their place in the table, not by
id, so it read and sorted every tied row (998,000 after the bench's bulk update: 0.4 s for the
newest 2,000, 3.8 s for the admin's page). With the id in the index the ties come in id order
(SQLite's index already ended with the rowid).

On SQLite a database that has planner statistics (the worker's nightly ANALYZE) gets them for this
index and those of b5a0c0000007 at once: without, SQLite takes a new index for a very selective
one until the next night (the workbench's payments due then walked a team's 100,000 orders
along ix_order_department_live: 350 ms instead of 3).

Revision ID: b7a0c0000009
Revises: b6a0c0000008
Create Date: 2026-11-24 12:15:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b7a0c0000009'
down_revision = 'b6a0c0000008'
branch_labels = None
depends_on = None


NEW_INDEXES = [
    'ix_customer_updated_at',
    'ix_customer_owner_recycle',
    'ix_customer_department_recycle',
    'ix_order_department_live',
]


def upgrade():
    op.drop_index('ix_customer_updated_at', table_name='crm_customer')
    op.create_index('ix_customer_updated_at', 'crm_customer', ['updated_at', 'id'], unique=False)
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        analysed = bind.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'"
        ).first()
        if analysed:
            for name in NEW_INDEXES:
                bind.exec_driver_sql(f'ANALYZE "{name}"')


def downgrade():
    op.drop_index('ix_customer_updated_at', table_name='crm_customer')
    op.create_index('ix_customer_updated_at', 'crm_customer', ['updated_at'], unique=False)
