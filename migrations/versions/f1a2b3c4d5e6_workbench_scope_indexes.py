"""workbench indexes within the data scope

A manager's workbench filters `owner_id = :me OR department_id IN (...)` (the team: about 5% of
the customers and opportunities at the bench scale) and then by a date: customers to contact by
today, new this month, open opportunities closing this month, the team's open tasks by due
time. With only (next_contact_at), (created_at), (expected_close) or (department_id) to go by,
SQLite walked the company's whole date range (or the team's every task) and read each row to
test the rest (85-180 ms each at 1,000,000 customers); with the owner or department first, each
branch of the OR reads its own index range.

Revision ID: f1a2b3c4d5e6
Revises: e5a0b1c2d3e4
Create Date: 2026-11-24 07:40:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'f1a2b3c4d5e6'
down_revision = 'e5a0b1c2d3e4'
branch_labels = None
depends_on = None

INDEXES = [
    ('ix_customer_owner_next_contact', 'crm_customer', ['owner_id', 'next_contact_at']),
    ('ix_customer_department_next_contact', 'crm_customer', ['department_id', 'next_contact_at']),
    ('ix_customer_owner_created', 'crm_customer', ['owner_id', 'created_at']),
    ('ix_customer_department_created', 'crm_customer', ['department_id', 'created_at']),
    ('ix_opportunity_owner_open_close', 'crm_opportunity', ['owner_id', 'status', 'expected_close']),
    (
        'ix_opportunity_department_open_close',
        'crm_opportunity',
        ['department_id', 'status', 'expected_close'],
    ),
    ('ix_task_department_open_due', 'crm_task', ['department_id', 'status', 'due_at']),
]


def upgrade():
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade():
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
