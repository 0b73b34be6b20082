"""Why an event ran what it ran: every rule of its tenant on its trigger, what the executor
recorded for it (`rule_evaluations`, `enforcements`) and what the rule makes of it now.

Read-only: "now" is the rule's dry-run against the stored event (`rule_dry_run.dry_run`, the
same evaluation as POST /api/v1/rules/{id}/test and the executor), nothing claimed or
inserted. An operator's tool (the executor's `explain()` RPC), so it reads any tenant's event.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, select

from . import events, rule_dry_run
from .db import isoformat
from .models import enforcements, rule_evaluations
from .models import rules as rules_table


def explain(conn: Connection, event_id: int, now: datetime | None = None) -> dict[str, Any]:
    """The event and, per rule on its trigger (oldest first), the verdict recorded when the
    event was evaluated, the enforcement it made, the rule's dry-run now and a `reason` in
    words. NotFoundError when there is no such event."""
    event = events.get(conn, None, event_id)
    tenant_id = event["tenant_id"]
    found = conn.execute(
        select(rules_table,
               rule_evaluations.c.matched.label("recorded_matched"),
               rule_evaluations.c.error.label("recorded_error"),
               enforcements.c.id.label("enforcement_id"),
               enforcements.c.status.label("enforcement_status"),
               enforcements.c.execution_id.label("execution_id"),
               enforcements.c.error.label("enforcement_error"))
        .outerjoin(rule_evaluations, and_(rule_evaluations.c.rule_id == rules_table.c.id,
                                          rule_evaluations.c.event_id == event_id))
        .outerjoin(enforcements, and_(enforcements.c.rule_id == rules_table.c.id,
                                      enforcements.c.event_id == event_id))
        .where(rules_table.c.tenant_id == tenant_id,
               rules_table.c.trigger_id == event["trigger_id"])
        .order_by(rules_table.c.id)
    ).mappings().all() if event["trigger_id"] is not None else []
    return {
        "event": {"id": event["id"], "tenant_id": tenant_id, "trigger_id": event["trigger_id"],
                  "trigger_ref": event["trigger_ref"], "source": event["source"],
                  "processed_at": isoformat(event["processed_at"]), "error": event["error"],
                  "created_at": isoformat(event["created_at"])},
        "rules": [_rule(dict(row), event, rule_dry_run.dry_run(
            conn, tenant_id, row["id"], {"event_id": event_id}, now)) for row in found],
    }


def _rule(row: Mapping[str, Any], event: Mapping[str, Any],
          now: dict[str, Any]) -> dict[str, Any]:
    recorded = (None if row["recorded_matched"] is None else
                {"matched": row["recorded_matched"], "error": row["recorded_error"]})
    enforcement = (None if row["enforcement_id"] is None else
                   {"id": row["enforcement_id"], "status": row["enforcement_status"],
                    "execution_id": row["execution_id"], "error": row["enforcement_error"]})
    return {
        "rule_id": row["id"], "ref": row["ref"], "enabled": row["enabled"],
        "criteria": row["criteria"], "recorded": recorded, "enforcement": enforcement,
        "now": {"matched": now["matched"], "criteria": now["criteria"],
                "outcome": now["outcome"], "would_fire": now["would_fire"]},
        "reason": _reason(row, event, recorded, enforcement, now),
    }


def _reason(row: Mapping[str, Any], event: Mapping[str, Any], recorded: dict[str, Any] | None,
            enforcement: dict[str, Any] | None, now: dict[str, Any]) -> str:
    """What happened to this rule for this event, in one sentence."""
    if recorded is not None and recorded["matched"]:
        if enforcement is None:
            return "matched"
        made = (f"execution {enforcement['execution_id']}"
                if enforcement["execution_id"] is not None else "no execution")
        failed = f" ({enforcement['error']})" if enforcement["error"] else ""
        return f"matched: enforcement {enforcement['id']} {enforcement['status']}, {made}{failed}"
    if recorded is not None:
        if recorded["error"]:
            return f"not matched: the criteria failed to evaluate ({recorded['error']})"
        return f"not matched: the criteria were false ({row['criteria']})"
    if event["error"]:
        return f"not evaluated: the event was refused ({event['error']})"
    if event["processed_at"] is None:
        return "not evaluated yet: the event waits for the executor"
    if not row["enabled"]:
        return "not evaluated: the rule is disabled"
    return ("not evaluated: the rule was created or enabled after the event was processed "
            f"(its criteria would now {'match' if now['matched'] else 'not match'})")
