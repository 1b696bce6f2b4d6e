"""service desk, tickets: indexes for numbering, rule deletion and the queue by time left

A new ticket's number looks up the day's prefix (GD-20261124-...): PostgreSQL's LIKE can use a
btree index only with varchar_pattern_ops (the database's collation is not C), so it gets one,
as crm_order.number did in 5c1e0a7b9d2f. Deleting an assignment rule sets its tickets'
assignment_rule_id to NULL: without an index that scans every ticket. The whole queue by time
left (resolution_due, nulls last) walks ix_ticket_due in order on PostgreSQL and SQLite.

Revision ID: 5e1f0a000001
Revises: 502f70a13fe7
Create Date: 2026-11-24 08:00:00

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '5e1f0a000001'
down_revision = '502f70a13fe7'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_crm_ticket_assignment_rule_id', 'crm_ticket', ['assignment_rule_id'], unique=False)
    op.create_index('ix_ticket_due', 'crm_ticket', ['resolution_due', 'id'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.create_index('ix_ticket_number_pattern', 'crm_ticket', ['number'], unique=False,
                        postgresql_ops={'number': 'varchar_pattern_ops'})


def downgrade():
    op.drop_index('ix_ticket_due', table_name='crm_ticket')
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_index('ix_ticket_number_pattern', table_name='crm_ticket')
    # MariaDB refuses to drop an index its foreign key needs: it goes with the table
    if op.get_bind().dialect.name != 'mysql':
        op.drop_index('ix_crm_ticket_assignment_rule_id', table_name='crm_ticket')
