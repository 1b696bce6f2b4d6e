"""custom field definitions

Revision ID: 72b6a2fb7cd4
Revises: b7c1d2e3f4a5
Create Date: 2026-11-23 19:57:36.137850

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '72b6a2fb7cd4'
down_revision = 'b7c1d2e3f4a5'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('crm_custom_field',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entity', sa.String(length=50), nullable=False),
    sa.Column('api_name', sa.String(length=50), nullable=False),
    sa.Column('label_zh', sa.String(length=100), nullable=False),
    sa.Column('label_en', sa.String(length=100), nullable=True),
    sa.Column('field_type', sa.String(length=20), nullable=False),
    sa.Column('required', sa.Boolean(), nullable=False),
    sa.Column('default', sa.JSON(), nullable=True),
    sa.Column('help_text', sa.String(length=255), nullable=True),
    sa.Column('section', sa.String(length=50), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('choices', sa.JSON(), nullable=True),
    sa.Column('min_value', sa.String(length=40), nullable=True),
    sa.Column('max_value', sa.String(length=40), nullable=True),
    sa.Column('max_length', sa.Integer(), nullable=True),
    sa.Column('pattern', sa.String(length=255), nullable=True),
    sa.Column('unique', sa.Boolean(), nullable=False),
    sa.Column('indexed', sa.Boolean(), nullable=False),
    sa.Column('visible_roles', sa.JSON(), nullable=True),
    sa.Column('editable_roles', sa.JSON(), nullable=True),
    sa.Column('archived', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('entity', 'api_name', name='uq_custom_field_entity_name')
    )
    with op.batch_alter_table('crm_custom_field', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_crm_custom_field_entity'), ['entity'], unique=False)

    op.create_table('crm_custom_field_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade():
    with op.batch_alter_table('crm_custom_field', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_crm_custom_field_entity'))
    op.drop_table('crm_custom_field_version')
    op.drop_table('crm_custom_field')
