"""recently changed customers: the updated_at index holds the id too

The home page reads the most recently changed customers by (updated_at DESC, id DESC). A bulk
change (an import, a job that touches every customer) leaves many customers with the same
updated_at; PostgreSQL's (updated_at) index orders such ties by their place in the table, not by
id, so it read and sorted every tied row (998,000 after the bench's bulk update: 0.4 s for the
newest 2,000, 3.8 s for the admin's page). With the id in the index the ties come in id order
(SQLite's index already ended with the rowid).

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


def upgrade():
    op.drop_index('ix_customer_updated_at', table_name='crm_customer')
    op.create_index('ix_customer_updated_at', 'crm_customer', ['updated_at', 'id'], unique=False)


def downgrade():
    op.drop_index('ix_customer_updated_at', table_name='crm_customer')
    op.create_index('ix_customer_updated_at', 'crm_customer', ['updated_at'], unique=False)
