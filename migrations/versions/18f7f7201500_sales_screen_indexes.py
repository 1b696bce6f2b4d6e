"""sales screens at scale: the board's index covers its column summary; recently changed
customers; open tasks by due time

Revision ID: 18f7f7201500
Revises: 5c1e0a7b9d2f
Create Date: 2026-11-24 02:10:00

The sales benchmark (bench/sales.py: 1,000,000 customers, 500,000 opportunities, 750,000
tasks) showed, for a manager (department scope) and for the admin:
- the board's column summary (one GROUP BY of a pipeline) reading every opportunity of the
  pipeline along ix_opportunity_board and then each row for its amount, owner and department:
  about 270 ms on SQLite. With those three columns in the index the database reads the index
  alone (SQLite ~40 ms, PostgreSQL an index-only scan). Their order keeps the column pages'
  range scan (pipeline, stage, status, newest id first).
- the home page's recently changed customers (ORDER BY updated_at DESC LIMIT 8) sorting all
  customers: ~450 ms on SQLite for the admin.
- the workbench's overdue and today's tasks of a team or of everyone sorting every open task
  (ix_task_owner_open_due serves one owner only): up to 300 ms.
"""
from alembic import op

revision = "18f7f7201500"
down_revision = "5c1e0a7b9d2f"
branch_labels = None
depends_on = None

BOARD = ["pipeline_id", "stage_id", "status", "id"]


def replace_board_index(columns: list[str]) -> None:
    """MySQL/MariaDB refuse to drop an index a foreign key (pipeline_id) relies on unless the
    replacement comes in the same ALTER TABLE."""
    if op.get_bind().dialect.name == "mysql":
        op.execute(
            "ALTER TABLE crm_opportunity DROP INDEX ix_opportunity_board, "
            f"ADD INDEX ix_opportunity_board ({', '.join(columns)})"
        )
        return
    op.drop_index("ix_opportunity_board", table_name="crm_opportunity")
    op.create_index("ix_opportunity_board", "crm_opportunity", columns)


def upgrade():
    replace_board_index([*BOARD, "amount", "owner_id", "department_id"])
    op.create_index("ix_customer_updated_at", "crm_customer", ["updated_at"])
    op.create_index("ix_task_open_due", "crm_task", ["status", "due_at"])


def downgrade():
    op.drop_index("ix_task_open_due", table_name="crm_task")
    op.drop_index("ix_customer_updated_at", table_name="crm_customer")
    replace_board_index(BOARD)
