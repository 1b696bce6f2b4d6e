"""service desk, SLA and surveys: the at-risk moment and the pause of a ticket's SLA clock

Revision ID: 5e2f0a000002
Revises: 5e1f0a000001
Create Date: 2026-11-24 08:00:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '5e2f0a000002'
down_revision = '5e1f0a000001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("crm_ticket") as batch:
        batch.add_column(sa.Column("sla_risk_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("sla_paused_at", sa.DateTime(), nullable=True))
    op.create_index("ix_crm_ticket_sla_risk_at", "crm_ticket", ["sla_risk_at"], unique=False)


def downgrade():
    op.drop_index("ix_crm_ticket_sla_risk_at", table_name="crm_ticket")
    with op.batch_alter_table("crm_ticket") as batch:
        batch.drop_column("sla_paused_at")
        batch.drop_column("sla_risk_at")
