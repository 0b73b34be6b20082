"""Trace ids (issue 19): every event and execution names the trace it belongs to

`trace_id` is the W3C trace id (32 lowercase hex digits) of the webhook or API call that
caused the row (its `traceparent`, or one made for it), inherited by the executions a rule,
a workflow, with-items or a retry makes from it; timer and sensor events start their own.
Rows stored before this revision have none. Indexed per tenant for `?trace_id=`.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("events", "executions"):
        op.add_column(table, sa.Column("trace_id", sa.String(32), nullable=True))
        op.create_index(f"ix_{table}_trace", table, ["tenant_id", "trace_id"],
                        postgresql_where=sa.text("trace_id IS NOT NULL"))


def downgrade() -> None:
    for table in ("events", "executions"):
        op.drop_index(f"ix_{table}_trace", table)
        op.drop_column(table, "trace_id")
