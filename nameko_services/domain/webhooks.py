"""Webhook receipt: authenticate the sender, store the payload as an event, exactly once per key.

Three ways in, tried in this order (the first one presented decides, no falling through):
the trigger's token in `X-Attune-Webhook-Token`, an `X-Hub-Signature-256` HMAC of the raw body
keyed by that token (GitHub style), or a Bearer token of the trigger's tenant.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, literal, select, update

from . import events, json_values
from .auth import Principal
from .db import prepared
from .errors import BadRequestError, ForbiddenError, NotFoundError, UnauthorizedError
from .models import enforcements, executions, triggers
from .models import events as events_table
from .states import TriggerType

IDEMPOTENCY_WINDOW = timedelta(hours=24)
MAX_IDEMPOTENCY_KEY = 160  # room for the tenant prefix within the 200-char column
SIGNATURE_PREFIX = "sha256="


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the request presented; `bearer_permitted` is the gateway's role verdict."""

    token: str | None = None
    signature: str | None = None
    bearer: Principal | None = None
    bearer_permitted: bool = False


@dataclass(frozen=True, slots=True)
class Sender:
    """Who the event is recorded for, and the causal chain when an action sent it."""

    tenant_id: int
    caused_by_execution_id: int | None = None
    chain_depth: int = 0


def token_matches(expected: str | None, presented: str) -> bool:
    if not expected:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def signature_matches(secret: str | None, raw_body: bytes, header: str) -> bool:
    """True when `header` is `sha256=<hex HMAC-SHA256 of raw_body keyed by secret>`."""
    if not secret or not header.startswith(SIGNATURE_PREFIX):
        return False
    digest = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(digest, header[len(SIGNATURE_PREFIX):].strip().lower())


def get_receiving_trigger(conn: Connection, trigger_id: int) -> dict[str, Any]:
    """An active webhook trigger; anything else is 'not found' (no hint which check failed)."""
    row = conn.execute(_RECEIVING_TRIGGER, {"trigger_id": trigger_id}).mappings().one_or_none()
    if row is None:
        raise NotFoundError(f"Trigger {trigger_id} not found")
    return dict(row)


_RECEIVING_TRIGGER = prepared(select(triggers).where(
    triggers.c.id == bindparam("trigger_id"),
    triggers.c.type == TriggerType.WEBHOOK.value,
    triggers.c.status == "active",
))


def chain_depth_of(conn: Connection, tenant_id: int, execution_id: int) -> int:
    """Depth of the event that (through its nearest ancestor with an event) caused an execution;
    0 if none."""
    depth = conn.execute(
        select(events.caused_depth(literal(execution_id), literal(tenant_id)))
    ).scalar_one_or_none()
    return depth or 0


def authenticate(
    conn: Connection, trigger: dict[str, Any], raw_body: bytes, credentials: Credentials
) -> Sender:
    """Decide who sent the request: 401 on bad credentials, 404 for another tenant's token."""
    tenant_id = trigger["tenant_id"]
    if credentials.token is not None or credentials.signature is not None:
        ok = (
            token_matches(trigger["webhook_token"], credentials.token)
            if credentials.token is not None
            else signature_matches(trigger["webhook_token"], raw_body, credentials.signature or "")
        )
        # A system trigger has no tenant to file the event under: only a Bearer token will do.
        if not ok or tenant_id is None:
            raise UnauthorizedError("Invalid webhook credentials")
        return Sender(tenant_id=tenant_id)
    who = credentials.bearer
    if who is None:
        raise UnauthorizedError(
            "Webhook requires X-Attune-Webhook-Token, X-Hub-Signature-256 or a Bearer token"
        )
    if tenant_id is not None and who.tenant_id != tenant_id:
        raise NotFoundError(f"Trigger {trigger['id']} not found")
    if not credentials.bearer_permitted:
        raise ForbiddenError(
            f"Role '{who.role}' lacks the 'execute' permission needed to post to a webhook",
            {"role": who.role, "permission": "execute"},
        )
    if who.token_type == "execution" and who.execution_id is not None:
        depth = chain_depth_of(conn, who.tenant_id, int(who.execution_id))
        return Sender(who.tenant_id, int(who.execution_id), depth + 1)
    return Sender(tenant_id=who.tenant_id)


def check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise BadRequestError(
            f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters"
        )
    return key


def release_stale_key(conn: Connection, trigger_id: int, key: str) -> None:
    """Free a key first used more than 24 h ago, so it names a new event from now on."""
    conn.execute(
        update(events_table)
        .where(
            events_table.c.trigger_id == trigger_id,
            events_table.c.idempotency_key == key,
            events_table.c.created_at < func.now() - IDEMPOTENCY_WINDOW,
        )
        .values(idempotency_key=None)
    )


def receive(
    conn: Connection,
    *,
    trigger_id: int,
    raw_body: bytes,
    credentials: Credentials,
    idempotency_key: str | None = None,
    admit: Callable[[int], None] | None = None,
    trace_id: str | None = None,
) -> tuple[dict[str, Any], bool]:
    """Authenticate, parse and store one webhook call (in trace `trace_id`, the caller's or a
    new one); returns (event row, created).

    A repeat of an Idempotency-Key within 24 h returns the first event with created=False.
    `admit(tenant_id)` runs once the sender is known and before anything is stored: it raises
    to refuse the call (the gateway's backlog bound, domain/backlog.py).
    """
    trigger = get_receiving_trigger(conn, trigger_id)
    sender = authenticate(conn, trigger, raw_body, credentials)
    if admit is not None:
        admit(sender.tenant_id)
    key = check_idempotency_key(idempotency_key)
    if key is not None and trigger["tenant_id"] is None:
        # A system trigger is shared: scope the key, or one tenant's repeat returns another's event.
        key = f"tenant:{sender.tenant_id}:{key}"
    payload = json_values.parse(raw_body)
    if key is not None:
        release_stale_key(conn, trigger["id"], key)
    return events.create(
        conn,
        trigger=trigger,
        source="webhook",
        payload=payload,
        idempotency_key=key,
        caused_by_execution_id=sender.caused_by_execution_id,
        chain_depth=sender.chain_depth,
        tenant_id=sender.tenant_id,
        trace_id=trace_id,
    )


NO_RULE_MATCHED, ENFORCEMENT_FAILED, REFUSED = "no_rule_matched", "enforcement_failed", "refused"


@dataclass(frozen=True, slots=True)
class FirstRun:
    """Where an event stands for a caller waiting on its first execution (`?wait=`): that
    execution as it is now (the first rule's: the lowest id, as the executor creates them in
    rule order in one transaction), or, once the event was evaluated without starting any,
    why not (`reason`: no_rule_matched, enforcement_failed or refused, with its `error`)."""

    execution: dict[str, Any] | None
    processed: bool
    reason: str | None = None
    error: str | None = None


def first_run(conn: Connection, tenant_id: int, event_id: int) -> FirstRun:
    """The tenant's event's first execution, or why it has none (yet)."""
    event = events.get(conn, tenant_id, event_id)
    first = conn.execute(_FIRST_ENFORCEMENTS, {"b_tenant_id": tenant_id, "b_event_id": event_id}
                         ).mappings().all()
    started = [row for row in first if row["execution_id"] is not None]
    if started:
        row = conn.execute(select(executions).where(
            executions.c.id == started[0]["execution_id"], executions.c.tenant_id == tenant_id,
        )).mappings().one()
        return FirstRun(dict(row), processed=True)
    if event["processed_at"] is None:
        return FirstRun(None, processed=False)
    if event["error"]:
        return FirstRun(None, processed=True, reason=REFUSED, error=event["error"])
    failed = [row for row in first if row["error"]]
    if failed:
        return FirstRun(None, processed=True, reason=ENFORCEMENT_FAILED, error=failed[0]["error"])
    return FirstRun(None, processed=True, reason=NO_RULE_MATCHED)


# The event's enforcements (one per matched rule; indexed by event), in the order the executor
# made them: the first that names an execution names the first rule's execution.
_FIRST_ENFORCEMENTS = (
    select(enforcements.c.execution_id, enforcements.c.error)
    .where(enforcements.c.tenant_id == bindparam("b_tenant_id"),
           enforcements.c.event_id == bindparam("b_event_id"))
    .order_by(enforcements.c.id)
)
