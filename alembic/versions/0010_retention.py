"""Retention (issue 20, item 4): indexes to prune by age, the totals table, audit pruning

- ix_executions_prunable, ix_events_created, ix_audit_log_timestamp: each batch of the pruning
  job reads the oldest rows in index order. ix_executions_event ("does a kept execution still
  point at this event?", and the SET NULL of that foreign key), ix_enforcements_execution and
  ix_inquiries_execution serve the foreign keys to what is deleted: without them every deleted
  row scans the referring table. Built CONCURRENTLY, so upgrading a running platform does not
  block its writes.
- prune_totals: rows pruned per table so far, behind `attune_pruned_rows_total`.
- audit_log stays append-only, but a DELETE of rows older than the cutoff the pruning job sets
  for its own transaction (`attune.audit_prune_before`) goes through: the statement trigger
  keeps refusing UPDATE and TRUNCATE, a row trigger checks each deleted row's age.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (
    ("ix_executions_prunable", "executions", ["finished_at", "id"],
     "parent_execution_id IS NULL"),
    ("ix_executions_event", "executions", ["event_id"], "event_id IS NOT NULL"),
    ("ix_enforcements_execution", "enforcements", ["execution_id"], "execution_id IS NOT NULL"),
    ("ix_inquiries_execution", "inquiries", ["execution_id"], None),
    ("ix_events_created", "events", ["created_at", "id"], None),
    ("ix_audit_log_timestamp", "audit_log", ["timestamp", "id"], None),
)

AUDIT_RETENTION = """
DROP TRIGGER audit_log_append_only ON audit_log;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
CREATE FUNCTION audit_log_retention_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD."timestamp" < nullif(current_setting('attune.audit_prune_before', true), '')::timestamptz
    THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only (DELETE refused: only retention removes entries)';
END $$;
CREATE TRIGGER audit_log_retention BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_retention_only();
"""

AUDIT_APPEND_ONLY = """
DROP TRIGGER audit_log_retention ON audit_log;
DROP FUNCTION audit_log_retention_only();
DROP TRIGGER audit_log_append_only ON audit_log;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
"""


def upgrade() -> None:
    op.create_table(
        "prune_totals",
        sa.Column("table_name", sa.String(63), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("table_name", name="pk_prune_totals"),
    )
    op.execute(AUDIT_RETENTION)
    with op.get_context().autocommit_block():
        for name, table, columns, where in _INDEXES:
            op.create_index(name, table, columns, postgresql_concurrently=True,
                            if_not_exists=True,
                            postgresql_where=sa.text(where) if where else None)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, _, _ in reversed(_INDEXES):
            op.drop_index(name, table, postgresql_concurrently=True, if_exists=True)
    op.execute(AUDIT_APPEND_ONLY)
    op.drop_table("prune_totals")
