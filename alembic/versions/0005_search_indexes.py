"""GIN indexes behind containment search of executions and events (issue 20, item 3)

Built CONCURRENTLY, so upgrading a running platform does not block its writes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 00:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (
    ("ix_executions_parameters", "executions", "parameters"),
    ("ix_executions_result", "executions", "result"),
    ("ix_events_payload", "events", "payload"),
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, column in _INDEXES:
            op.create_index(name, table, [column], postgresql_using="gin",
                            postgresql_ops={column: "jsonb_path_ops"},
                            postgresql_concurrently=True, if_not_exists=True)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, _ in reversed(_INDEXES):
            op.drop_index(name, table, postgresql_concurrently=True, if_exists=True)
