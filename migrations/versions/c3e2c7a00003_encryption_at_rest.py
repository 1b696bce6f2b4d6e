"""encryption at rest: encrypted personal data with a blind index

Revision ID: c3e2c7a00003
Revises: b2c3e5ec0002
Create Date: 2026-11-24 04:10:00

Adds the individual customer's ID number (encrypted) with its blind index, widens the bank
accounts (customer, invoice) for their ciphertext and encrypts the plaintext already there (the
customer's gets its blind index), and the `sensitive` flag of custom fields. Runs inside the app
context (flask db upgrade), so app.crypto reads the configured or generated keys. On SQLite the
columns are only added (VARCHAR lengths are not enforced there, and rebuilding crm_customer would
drop the triggers of its name search); the downgrade decrypts back.
"""
import sqlalchemy as sa
from alembic import op

from app import crypto

# revision identifiers, used by Alembic.
revision = 'c3e2c7a00003'
down_revision = 'b2c3e5ec0002'
branch_labels = None
depends_on = None

BATCH = 1000
#: (table, column, plaintext length, blind-index column or None, blind-index purpose)
ENCRYPTED = [
    ("crm_customer", "bank_account", 40, "bank_account_bidx", "customer.bank_account"),
    ("crm_invoice", "bank_account", 40, None, None),
]


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _rewrite(table: str, column: str, index: str | None, purpose: str | None, encrypting: bool) -> None:
    """Encrypt (or decrypt) every value of one column, in batches by primary key."""
    bind = op.get_bind()
    context = f"{table}.{column}"
    t = sa.table(table, sa.column("id", sa.Integer), sa.column(column, sa.String),
                 *([sa.column(index, sa.String)] if index else []))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(t.c.id, t.c[column]).where(t.c.id > last, t.c[column].is_not(None))
            .order_by(t.c.id).limit(BATCH)
        ).all()
        if not rows:
            break
        for pk, value in rows:
            if encrypting:
                if crypto.is_encrypted(value):
                    continue
                values = {column: crypto.encrypt(value, context)}
                if index:
                    values[index] = crypto.blind_index(value, purpose) if value else None
            else:
                if not crypto.is_encrypted(value):
                    continue
                values = {column: crypto.decrypt(value, context)}
            bind.execute(sa.update(t).where(t.c.id == pk).values(**values))
        last = rows[-1][0]


def upgrade():
    id_width = crypto.stored_length(18)
    op.add_column("crm_customer", sa.Column("id_number", sa.String(length=id_width), nullable=True))
    op.add_column("crm_customer", sa.Column("id_number_bidx", sa.String(length=64), nullable=True))
    op.add_column("crm_customer", sa.Column("bank_account_bidx", sa.String(length=64), nullable=True))
    op.create_index("ix_crm_customer_id_number_bidx", "crm_customer", ["id_number_bidx"], unique=True)
    op.create_index("ix_crm_customer_bank_account_bidx", "crm_customer", ["bank_account_bidx"], unique=False)
    if not _is_sqlite():
        for table, column, length, _index, _purpose in ENCRYPTED:
            op.alter_column(table, column, existing_type=sa.String(length=length),
                            type_=sa.String(length=crypto.stored_length(length)), existing_nullable=True)
    op.add_column(
        "crm_custom_field",
        sa.Column("sensitive", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    for table, column, _length, index, purpose in ENCRYPTED:
        _rewrite(table, column, index, purpose, encrypting=True)


def _open_sensitive_custom_values() -> None:
    """Sensitive custom values back to plaintext in their JSON column (the flag goes away)."""
    bind = op.get_bind()
    fields = sa.table("crm_custom_field", sa.column("entity", sa.String), sa.column("sensitive", sa.Boolean))
    entities = set(bind.execute(sa.select(fields.c.entity).where(fields.c.sensitive)).scalars())
    for entity in sorted(entities):
        t = sa.table(f"crm_{entity}", sa.column("id", sa.Integer), sa.column("custom", sa.JSON))
        last = 0
        while True:
            query = sa.select(t.c.id, t.c.custom).where(t.c.id > last, t.c.custom.is_not(None))
            rows = bind.execute(query.order_by(t.c.id).limit(BATCH)).all()
            if not rows:
                break
            for pk, custom in rows:
                opened = crypto.open_custom(t.name, custom)
                if opened is not custom:
                    bind.execute(sa.update(t).where(t.c.id == pk).values(custom=opened))
            last = rows[-1][0]


def downgrade():
    for table, column, _length, index, purpose in ENCRYPTED:
        _rewrite(table, column, index, purpose, encrypting=False)
    _open_sensitive_custom_values()
    if _is_sqlite():
        op.execute("ALTER TABLE crm_custom_field DROP COLUMN sensitive")
    else:
        op.drop_column("crm_custom_field", "sensitive")
        for table, column, length, _index, _purpose in ENCRYPTED:
            op.alter_column(table, column, existing_type=sa.String(length=crypto.stored_length(length)),
                            type_=sa.String(length=length), existing_nullable=True)
    op.drop_index("ix_crm_customer_bank_account_bidx", table_name="crm_customer")
    op.drop_index("ix_crm_customer_id_number_bidx", table_name="crm_customer")
    for column in ("bank_account_bidx", "id_number_bidx", "id_number"):
        if _is_sqlite():
            op.execute(f"ALTER TABLE crm_customer DROP COLUMN {column}")
        else:
            op.drop_column("crm_customer", column)
