"""customer level within the data scope

The workbench counts a manager's key customers: `(owner_id = ? OR department_id IN (...)) AND
level = 'key'`. With an index on level alone, SQLite (which has no planner statistics unless
someone runs ANALYZE) walked every key customer of the company (a quarter of a million at
1,000,000 customers, ~600 ms) and read each row to test the scope; with (owner_id, level) and
(department_id, level) it reads the two index ranges alone (~2 ms). PostgreSQL gets the same
indexes (a BitmapOr of two exact index conditions). The level-only index served nothing else:
a level filter without a scope (the admin) stops after a page of matches in id order.

Revision ID: e5a0b1c2d3e4
Revises: d4f1e1d00004
Create Date: 2026-11-24 05:00:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = 'e5a0b1c2d3e4'
down_revision = 'd4f1e1d00004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_customer_owner_level', 'crm_customer', ['owner_id', 'level'], unique=False)
    op.create_index('ix_customer_department_level', 'crm_customer', ['department_id', 'level'], unique=False)
    op.drop_index('ix_crm_customer_level', table_name='crm_customer')


def downgrade():
    op.create_index('ix_crm_customer_level', 'crm_customer', ['level'], unique=False)
    op.drop_index('ix_customer_department_level', table_name='crm_customer')
    op.drop_index('ix_customer_owner_level', table_name='crm_customer')
