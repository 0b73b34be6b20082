"""Partial indexes behind the backlog's grouped count (issue 15: bounded backlog)

Built CONCURRENTLY, so upgrading a running platform does not block its writes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index("ix_executions_queued", "executions", ["tenant_id"],
                        postgresql_where=sa.text("status IN ('requested', 'scheduled')"),
                        postgresql_concurrently=True, if_not_exists=True)
        op.create_index("ix_events_unprocessed_tenant", "events", ["tenant_id"],
                        postgresql_where=sa.text("processed_at IS NULL"),
                        postgresql_concurrently=True, if_not_exists=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index("ix_events_unprocessed_tenant", "events", postgresql_concurrently=True,
                      if_exists=True)
        op.drop_index("ix_executions_queued", "executions", postgresql_concurrently=True,
                      if_exists=True)
