"""Event → rule evaluations → enforcements → executions, in one transaction per event.

The event is claimed first, with its trigger's enabled rules in the same statement
(`repository.claim_event`), so a redelivered message or a second executor finds it processed
and does nothing. New executions are planned (scheduled, fanned out
or failed) in the same transaction; all news is published after commit, `created` first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine

from .. import logs, tracing
from ..domain import datastore, events, executions, messages, rules, templating
from ..domain.crypto import Cipher
from ..domain.db import transaction
from ..extensions import OUTAGE_ERRORS
from . import repository, scheduling
from .news import Dispatch, Outgoing, created, send

log = logging.getLogger(__name__)


DEFAULT_MAX_CHAIN_DEPTH = 10


def chain_error(event: dict[str, Any], max_chain_depth: int) -> str | None:
    """Loop protection: why an event caused by too deep a chain of executions is refused."""
    depth = event.get("chain_depth") or 0
    if depth <= max_chain_depth:
        return None
    return (f"Refused: causal chain depth {depth} exceeds the limit of {max_chain_depth} "
            f"(caused by execution {event.get('caused_by_execution_id')}); no rule was evaluated")


def evaluate_event(
    conn: Connection, cipher: Cipher, event_id: int, tenant_id: int,
    max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH, parent_span_id: str | None = None,
) -> list[Outgoing]:
    """Evaluate every enabled rule of the event's trigger; return the news to publish.

    An event deeper than `max_chain_depth` is claimed with its error stored and runs no rule.
    `parent_span_id`: the span that received it (its EVENT_CREATED message's, when traced).
    """
    claimed = repository.claim_event(conn, tenant_id, event_id)
    if claimed is None:
        log.debug("event %s of tenant %s: processed already, or not found", event_id, tenant_id)
        return []
    event, enabled = claimed
    with logs.bound(event_id=event_id, tenant_id=tenant_id, trace_id=event["trace_id"]), \
            tracing.span("evaluate", event["trace_id"], parent_span_id, event_id=event_id):
        return _evaluate(conn, cipher, event, enabled, max_chain_depth)


def _evaluate(
    conn: Connection, cipher: Cipher, event: dict[str, Any], enabled: repository.Rules,
    max_chain_depth: int,
) -> list[Outgoing]:
    """The claimed event's rules: its news, or why it runs none (stored on it)."""
    event_id, tenant_id = event["id"], event["tenant_id"]
    refused = chain_error(event, max_chain_depth)
    if refused is not None:
        events.refuse(conn, event_id, refused)
        log.warning("event %s: %s", event_id, refused, extra={"tenant_id": tenant_id})
        return [_processed(event, matched=0, error=refused)]
    if event["trigger_id"] is None:
        return [_processed(event, matched=0)]
    context = rules.criteria_context(
        event, templating.DatastoreView(_datastore_loader(conn, cipher, tenant_id)),
        datetime.now(UTC),
    )
    out: list[Outgoing] = []
    planned: list[Outgoing] = []
    matched = started = 0
    for rule, action in enabled:
        verdict = rules.evaluate(rule["criteria"], rule["parameters"], context)
        enforcement = repository.record_evaluation(
            conn, tenant_id, event_id, rule["id"], verdict.matched, verdict.error
        )
        if verdict.matched:
            matched += 1
            enforced = _enforce(conn, rule, action, event, verdict, enforcement)
            execution = None
            if enforced is not None:
                execution, action = enforced
                started += 1
                out.append(created(execution))
                planned += scheduling.plan(conn, execution, cipher, action)
            if rule["notify_on_trigger"]:
                out.append(_rule_triggered(rule, event, execution))
    if not started:
        out.append(_processed(event, matched=matched))
    return out + planned


def handle_event(
    engine: Engine, cipher: Cipher, dispatch: Dispatch, event_id: int, tenant_id: int,
    max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH, parent_span_id: str | None = None,
) -> None:
    """One event: one transaction, then the news."""
    with transaction(engine) as conn:
        out = evaluate_event(conn, cipher, event_id, tenant_id, max_chain_depth, parent_span_id)
    send(dispatch, out)


def handle_events(
    engine: Engine, cipher: Cipher, dispatch: Dispatch, events_: list[tuple[int, int]],
    max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH, parents: Mapping[int, str] | None = None,
) -> None:
    """The EVENT_CREATED handler's work for (event_id, tenant_id) pairs that arrived together:
    one transaction, then the news in event order. `parents`: event id → the span that
    received it (when traced).

    Should the shared transaction fail, each event is tried again in a transaction of its own,
    so one bad event costs the others nothing; an outage is raised (the batch is requeued).
    """
    parents = parents or {}
    if len(events_) == 1:
        event_id, tenant_id = events_[0]
        handle_event(engine, cipher, dispatch, event_id, tenant_id, max_chain_depth,
                     parents.get(event_id))
        return
    try:
        with transaction(engine) as conn:
            out = [item for event_id, tenant_id in events_ for item in evaluate_event(
                conn, cipher, event_id, tenant_id, max_chain_depth, parents.get(event_id))]
    except OUTAGE_ERRORS:
        raise
    except Exception:
        log.warning("a batch of %s events failed together; evaluating each alone", len(events_),
                    exc_info=True)
        for event_id, tenant_id in events_:
            try:
                handle_event(engine, cipher, dispatch, event_id, tenant_id, max_chain_depth,
                             parents.get(event_id))
            except OUTAGE_ERRORS:
                raise
            except Exception:
                log.exception("event %s failed; the recovery sweep will try it again", event_id,
                              extra={"tenant_id": tenant_id})
        return
    send(dispatch, out)


def on_execution_ended(
    engine: Engine, cipher: Cipher, dispatch: Dispatch, tenant_id: int, event_ids: list[int],
    max_chain_depth: int = DEFAULT_MAX_CHAIN_DEPTH,
) -> None:
    """The events an execution's end stored (execution triggers): announce them (the notifier
    reads each back), then evaluate them as any event — once, as each is claimed."""
    send(dispatch, [Outgoing(messages.EVENT_CREATED, {"event_id": event_id, "tenant_id": tenant_id})
                    for event_id in event_ids])
    handle_events(engine, cipher, dispatch, [(event_id, tenant_id) for event_id in event_ids],
                  max_chain_depth)


def _enforce(
    conn: Connection, rule: dict[str, Any], action: dict[str, Any] | None,
    event: dict[str, Any], verdict: rules.Evaluation, enforcement: dict[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Create the execution of a new enforcement: (execution, its action), or None when there
    is no execution to run (the enforcement records why)."""
    tenant_id = event["tenant_id"]
    if enforcement is None:  # this rule already enforced this event
        return None
    if verdict.parameters_error is not None:
        repository.fail_enforcement(conn, tenant_id, enforcement["id"], verdict.parameters_error)
        return None
    if action is None:
        repository.fail_enforcement(
            conn, tenant_id, enforcement["id"],
            f"Action {rule['action_id']} of rule {rule['ref']} not found")
        return None
    execution = executions.create(
        conn,
        tenant_id=tenant_id,
        action=action,
        parameters=verdict.parameters,
        actor_type="service",
        actor="executor",
        rule_id=rule["id"],
        event_id=event["id"],
        enforcement_id=enforcement["id"],
        trigger_data=event["payload"],
        trace_id=event["trace_id"],
    )  # links the enforcement to it (failed with the reason if the parameters are invalid)
    return execution, action


def _processed(event: dict[str, Any], *, matched: int, error: str | None = None) -> Outgoing:
    """EVENT_PROCESSED: the event was evaluated and started no execution (a synchronous
    webhook waiting for its first execution answers at once; api.md)."""
    return Outgoing(messages.EVENT_PROCESSED, {
        "event_id": event["id"],
        "tenant_id": event["tenant_id"],
        "trigger_id": event["trigger_id"],
        "rules_matched": matched,
        "error": error,
    })


def _rule_triggered(
    rule: dict[str, Any], event: dict[str, Any], execution: dict[str, Any] | None
) -> Outgoing:
    return Outgoing(messages.RULE_TRIGGERED, {
        "rule_id": rule["id"],
        "rule_ref": rule["ref"],
        "tenant_id": event["tenant_id"],
        "event_id": event["id"],
        "execution_id": execution["id"] if execution is not None else None,
    })


def _datastore_loader(
    conn: Connection, cipher: Cipher, tenant_id: int
) -> Callable[[], dict[str, Any]]:
    """`datastore.<key>` values, read once and only if a template uses them."""

    def load() -> dict[str, Any]:
        return datastore.get_all(conn, cipher, tenant_id)

    return load
