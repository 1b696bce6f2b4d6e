"""contact name search: an FTS5 trigram index for contacts on SQLite

Revision ID: b7c1d2e3f4a5
Revises: 931ffe053dbf
Create Date: 2026-11-23 19:50:00

The benchmark showed a contact "contains" search scanning two million rows on SQLite, where
customers already had their trigram table. PostgreSQL got its contact GIN index in the first
revision; MySQL/MariaDB have no trigram index and scan.
"""
from alembic import op

revision = "b7c1d2e3f4a5"
down_revision = "931ffe053dbf"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        "CREATE VIRTUAL TABLE crm_contact_fts USING fts5("
        "name, content='crm_contact', content_rowid='id', tokenize='trigram')"
    )
    op.execute("INSERT INTO crm_contact_fts(crm_contact_fts) VALUES ('rebuild')")
    op.execute(
        "CREATE TRIGGER crm_contact_fts_ai AFTER INSERT ON crm_contact BEGIN "
        "INSERT INTO crm_contact_fts(rowid, name) VALUES (new.id, new.name); END"
    )
    op.execute(
        "CREATE TRIGGER crm_contact_fts_ad AFTER DELETE ON crm_contact BEGIN "
        "INSERT INTO crm_contact_fts(crm_contact_fts, rowid, name) VALUES ('delete', old.id, old.name); END"
    )
    op.execute(
        "CREATE TRIGGER crm_contact_fts_au AFTER UPDATE OF name ON crm_contact BEGIN "
        "INSERT INTO crm_contact_fts(crm_contact_fts, rowid, name) VALUES ('delete', old.id, old.name); "
        "INSERT INTO crm_contact_fts(rowid, name) VALUES (new.id, new.name); END"
    )


def downgrade():
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in ("crm_contact_fts_ai", "crm_contact_fts_ad", "crm_contact_fts_au"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS crm_contact_fts")
