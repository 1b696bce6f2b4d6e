"""sales targets: a unique key that holds

uq_sales_target was (user_id, department_id, period, period_start, metric); one of the two ids
is always NULL and NULLs never collide in SQL, so the database let two identical targets in when
two saves raced past the service's check. crm_sales_target gets `subject` ('user:<id>' or
'department:<id>', never NULL, kept by models.orders on every flush) and the unique key is
(subject, period, period_start, metric).

Revision ID: c3a0c0000014
Revises: c2a0c0000013
Create Date: 2026-11-24 18:50:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'c3a0c0000014'
down_revision = 'c2a0c0000013'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('crm_sales_target', sa.Column('subject', sa.String(length=24), nullable=True))
    op.execute(
        "UPDATE crm_sales_target SET subject = CASE WHEN user_id IS NOT NULL "
        "THEN 'user:' || CAST(user_id AS VARCHAR(12)) "
        "ELSE 'department:' || CAST(department_id AS VARCHAR(12)) END"
        if op.get_bind().dialect.name != 'mysql'
        else "UPDATE crm_sales_target SET subject = CASE WHEN user_id IS NOT NULL "
        "THEN CONCAT('user:', user_id) ELSE CONCAT('department:', department_id) END"
    )
    with op.batch_alter_table('crm_sales_target', schema=None) as batch_op:
        batch_op.alter_column('subject', existing_type=sa.String(length=24), nullable=False)
        batch_op.drop_constraint('uq_sales_target', type_='unique')
        batch_op.create_unique_constraint('uq_sales_target', ['subject', 'period', 'period_start', 'metric'])


def downgrade():
    with op.batch_alter_table('crm_sales_target', schema=None) as batch_op:
        batch_op.drop_constraint('uq_sales_target', type_='unique')
        batch_op.create_unique_constraint(
            'uq_sales_target', ['user_id', 'department_id', 'period', 'period_start', 'metric']
        )
        batch_op.drop_column('subject')
