"""scope ranges for the workbench's customers due back to the pool and the dashboards' top customers

The workbench of a manager lists the team's customers that their pool takes back soonest
(recycle_at), and the sales dashboard groups the team's live orders of the period by customer.
With only (recycle_at) to go by, SQLite read every customer of the company due within the
warning days and tested each against the team (about 50 ms at 1,000,000 customers); the orders
of a department were read row by row for their customer and amount (seconds for a team's
100,000 orders). Each branch of the data scope's OR now has its own index range, and the
department's order index holds what the top-customers query sums.

Revision ID: b5a0c0000007
Revises: 9a3f0a000006
Create Date: 2026-11-24 11:30:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b5a0c0000007'
down_revision = '9a3f0a000006'
branch_labels = None
depends_on = None

INDEXES = [
    ('ix_customer_owner_recycle', 'crm_customer', ['owner_id', 'recycle_at']),
    ('ix_customer_department_recycle', 'crm_customer', ['department_id', 'recycle_at']),
    (
        'ix_order_department_live',
        'crm_order',
        ['department_id', 'status', 'ordered_on', 'customer_id', 'total_amount'],
    ),
]


def upgrade():
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade():
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
