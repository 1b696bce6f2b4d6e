"""audit log (hash-chained)

Revision ID: a1d17e5b0001
Revises: 18f7f7201500
Create Date: 2026-11-24 04:10:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql, postgresql

# revision identifiers, used by Alembic.
revision = 'a1d17e5b0001'
down_revision = '18f7f7201500'
branch_labels = None
depends_on = None

GENESIS = "0" * 64
AUDIT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
AUDIT_TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
AUDIT_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade():
    op.create_table(
        "crm_audit_log",
        sa.Column("id", AUDIT_ID, autoincrement=True, nullable=False),
        sa.Column("created_at", AUDIT_TIME, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=256), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("entity", sa.String(length=64), nullable=True),
        sa.Column("entity_id", sa.String(length=64), nullable=True),
        sa.Column("changes", AUDIT_JSON, nullable=True),
        sa.Column("details", AUDIT_JSON, nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_entity", "crm_audit_log", ["entity", "entity_id", "id"])
    op.create_index("ix_audit_user", "crm_audit_log", ["user_id", "id"])
    op.create_index("ix_audit_created", "crm_audit_log", ["created_at"])
    op.create_index("ix_audit_action", "crm_audit_log", ["action", "id"])
    head = op.create_table(
        "crm_audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_id", AUDIT_ID, nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(head, [{"id": 1, "last_id": 0, "last_hash": GENESIS}])
    if op.get_bind().dialect.name == "postgresql":
        # Nobody edits audit rows, not even through a bug in the application. A DBA purging old
        # rows disables the trigger for that one transaction (see README, "Audit log").
        op.execute(
            """
            CREATE FUNCTION crm_audit_log_readonly() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'crm_audit_log is append-only (% refused)', TG_OP;
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER crm_audit_log_readonly BEFORE UPDATE OR DELETE ON crm_audit_log "
            "FOR EACH ROW EXECUTE FUNCTION crm_audit_log_readonly()"
        )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS crm_audit_log_readonly ON crm_audit_log")
        op.execute("DROP FUNCTION IF EXISTS crm_audit_log_readonly()")
    op.drop_table("crm_audit_head")
    op.drop_index("ix_audit_action", table_name="crm_audit_log")
    op.drop_index("ix_audit_created", table_name="crm_audit_log")
    op.drop_index("ix_audit_user", table_name="crm_audit_log")
    op.drop_index("ix_audit_entity", table_name="crm_audit_log")
    op.drop_table("crm_audit_log")
