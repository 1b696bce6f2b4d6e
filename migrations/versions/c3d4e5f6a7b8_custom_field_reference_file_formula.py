"""custom fields: reference, file and formula options

Revision ID: c3d4e5f6a7b8
Revises: 01ffa73a82aa
Create Date: 2026-11-23 21:55:00

"""
import sqlalchemy as sa
from alembic import op

revision = "c3d4e5f6a7b8"
down_revision = "01ffa73a82aa"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("crm_custom_field", schema=None) as batch_op:
        batch_op.add_column(sa.Column("target_entity", sa.String(length=50), nullable=True))
        batch_op.add_column(sa.Column("file_types", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("max_file_mb", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("formula", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("result_type", sa.String(length=20), nullable=True))


def downgrade():
    with op.batch_alter_table("crm_custom_field", schema=None) as batch_op:
        batch_op.drop_column("result_type")
        batch_op.drop_column("formula")
        batch_op.drop_column("max_file_mb")
        batch_op.drop_column("file_types")
        batch_op.drop_column("target_entity")
