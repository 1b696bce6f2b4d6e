"""service desk: one owner's open tickets by time left (a partial index)

我的待办工单 lists the agent's open tickets by resolution due time. With the status in the middle
of (owner_id, status, resolution_due), PostgreSQL preferred to walk ix_ticket_due over every
ticket and skip the closed ones (890,000 at the bench's scale: 640 ms); this index holds only
open tickets, per owner in due order (0.2 ms). SQLite gets the same partial index; MariaDB,
which has none, a plain one on the same columns.

Revision ID: b8a0c0000010
Revises: b7a0c0000009
Create Date: 2026-11-24 12:50:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = 'b8a0c0000010'
down_revision = 'b7a0c0000009'
branch_labels = None
depends_on = None

OPEN_TICKETS = "status IN ('new', 'assigned', 'in_progress', 'waiting', 'reopened')"


def upgrade():
    op.create_index(
        'ix_ticket_owner_open_due', 'crm_ticket', ['owner_id', 'resolution_due', 'id'], unique=False,
        postgresql_where=sa.text(OPEN_TICKETS), sqlite_where=sa.text(OPEN_TICKETS),
    )


def downgrade():
    op.drop_index('ix_ticket_owner_open_due', table_name='crm_ticket')
