"""field permissions per role and entity

Revision ID: d4f1e1d00004
Revises: c3e2c7a00003
Create Date: 2026-11-24 04:10:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'd4f1e1d00004'
down_revision = 'c3e2c7a00003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "crm_field_rule",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("role_id", sa.Integer(), nullable=False),
        sa.Column("entity", sa.String(length=50), nullable=False),
        sa.Column("field", sa.String(length=80), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["role_id"], ["ab_role.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by_id"], ["ab_user.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["updated_by_id"], ["ab_user.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("role_id", "entity", "field", name="uq_field_rule_role_entity_field"),
    )
    with op.batch_alter_table("crm_field_rule", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_crm_field_rule_role_id"), ["role_id"], unique=False)
    op.create_table(
        "crm_field_rule_default",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )


def downgrade():
    op.drop_table("crm_field_rule_default")
    with op.batch_alter_table("crm_field_rule", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crm_field_rule_role_id"))
    op.drop_table("crm_field_rule")
