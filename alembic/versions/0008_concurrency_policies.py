"""Concurrency policies on actions (issue 20): the policy, and each execution's key and wait

`actions.concurrency_policy` holds `{limit, key, overflow}`. An execution of such an action gets
its rendered `concurrency_key` when the executor admits it; `waiting_for_concurrency` is true
while it waits in `scheduled` for a slot. One partial index serves both the slot count and the
FIFO queue of a (tenant, action, key); it holds only limited executions that are not finished,
so it stays small and actions without a policy never touch it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("actions", sa.Column("concurrency_policy", postgresql.JSONB()))
    op.add_column("executions", sa.Column("concurrency_key", sa.Text()))
    op.add_column("executions", sa.Column("waiting_for_concurrency", sa.Boolean(),
                                          nullable=False, server_default=sa.text("false")))
    op.create_index(
        "ix_executions_concurrency", "executions",
        ["tenant_id", "action_ref", "concurrency_key", "created_at", "id"],
        postgresql_where=sa.text("concurrency_key IS NOT NULL AND status IN "
                                 "('scheduled', 'running', 'paused', 'canceling')"),
    )


def downgrade() -> None:
    op.drop_index("ix_executions_concurrency", table_name="executions")
    op.drop_column("executions", "waiting_for_concurrency")
    op.drop_column("executions", "concurrency_key")
    op.drop_column("actions", "concurrency_policy")
