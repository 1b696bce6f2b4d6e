"""dashboards: weekly mailed reports (subscriptions)

Revision ID: 9a2f0a000005
Revises: 9a1f0a000004
Create Date: 2026-11-24 08:00:00

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '9a2f0a000005'
down_revision = '9a1f0a000004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'crm_dashboard_subscription',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('dashboard', sa.String(length=20), nullable=False),
        sa.Column('filters', sa.JSON(), nullable=False),
        sa.Column('weekday', sa.SmallInteger(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_sent_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['ab_user.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('user_id', 'dashboard', name='uq_subscription_user_dashboard'),
    )


def downgrade():
    op.drop_table('crm_dashboard_subscription')
