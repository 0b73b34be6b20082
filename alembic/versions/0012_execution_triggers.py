"""Execution triggers (issue 20): trigger type `execution`, event source `execution`

An execution's terminal transition stores an event for each matching execution trigger in its
own transaction (domain/execution_triggers.py); the partial index keeps the probe that every
terminal transition makes cheap for tenants without such triggers.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_triggers_type"), "triggers", type_="check")
    op.create_check_constraint(
        op.f("ck_triggers_type"), "triggers",
        "type in ('interval','date','cron','webhook','custom','execution')")
    op.drop_constraint(op.f("ck_events_source"), "events", type_="check")
    op.create_check_constraint(
        op.f("ck_events_source"), "events",
        "source in ('timer','webhook','sensor','api','execution')")
    op.create_index("ix_triggers_execution", "triggers", ["tenant_id"],
                    postgresql_where=sa.text("type = 'execution'"))


def downgrade() -> None:
    op.drop_index("ix_triggers_execution", table_name="triggers")
    op.execute("DELETE FROM events WHERE source = 'execution'")
    op.execute("DELETE FROM triggers WHERE type = 'execution'")
    op.drop_constraint(op.f("ck_events_source"), "events", type_="check")
    op.create_check_constraint(
        op.f("ck_events_source"), "events", "source in ('timer','webhook','sensor','api')")
    op.drop_constraint(op.f("ck_triggers_type"), "triggers", type_="check")
    op.create_check_constraint(
        op.f("ck_triggers_type"), "triggers", "type in ('interval','date','cron','webhook','custom')")
