"""sales targets: custom fields

crm_sales_target gets the `custom` JSON column (JSONB on PostgreSQL) of every customisable
entity (customfields.mixin.CustomFieldsMixin); existing targets have no custom values.

Revision ID: c2a0c0000013
Revises: c1a0c0000012
Create Date: 2026-11-24 14:40:00

"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision = 'c2a0c0000013'
down_revision = 'c1a0c0000012'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column(
        'crm_sales_target',
        sa.Column('custom', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')),
    )


def downgrade():
    with op.batch_alter_table('crm_sales_target', schema=None) as batch_op:
        batch_op.drop_column('custom')
