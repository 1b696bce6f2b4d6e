"""the home page's recently changed customers, per branch of the data scope

The home page showed the scope's most recently changed customers by probing the company's
newest 2,000 changes; after a job that changed thousands of other customers (a recycle run) the
probe found none of a manager's team and the page sorted the team's 50,000 customers (490 ms on
PostgreSQL). Now each branch of the scope (the owner, each department) reads its newest along
its own index and the page merges them (app.access.first_in_scope).

Revision ID: b9a0c0000011
Revises: b8a0c0000010
Create Date: 2026-11-24 13:00:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b9a0c0000011'
down_revision = 'b8a0c0000010'
branch_labels = None
depends_on = None

INDEXES = [
    ('ix_customer_owner_updated', ['owner_id', 'updated_at', 'id']),
    ('ix_customer_department_updated', ['department_id', 'updated_at', 'id']),
]


def upgrade():
    for name, columns in INDEXES:
        op.create_index(name, 'crm_customer', columns, unique=False)
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':  # an analysed database: statistics for them at once
        analysed = bind.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'"
        ).first()
        if analysed:
            for name, _columns in INDEXES:
                bind.exec_driver_sql(f'ANALYZE "{name}"')


def downgrade():
    for name, _columns in reversed(INDEXES):
        op.drop_index(name, table_name='crm_customer')
