"""The inquiry runner (`core.ask`): ask a person, pause, resume with the answer or the default.

start:   requested → running → paused, with a `pending` inquiry expiring after `ttl_seconds`
         (a durable timer of kind `inquiry_expiry`) and INQUIRY_CREATED.
answer:  the gateway stores the response (domain.inquiries.respond) and tells the executor,
         which moves paused → running → succeeded with `result.output` = the response.
expiry:  pending → expired; with a default: paused → running → succeeded with the default as
         output; without: paused → failed with `error.type: "inquiry_expired"`.
A workflow parent follows its paused child (parents.on_execution_news → its engine).
A canceled execution's pending inquiry is closed by lifecycle.close_inquiry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine

from ..domain import executions, inquiries, messages
from ..domain.crypto import Cipher
from ..domain.db import transaction
from ..domain.errors import NotFoundError, ValidationError
from ..domain.states import ExecutionStatus, InquiryStatus
from . import engines, lifecycle, repository, timers
from .news import Dispatch, Outgoing, send, status_changed
from .news import inquiry as news

S = ExecutionStatus
STATE_KEY = engines.INQUIRY
DEFAULT_TTL_SECONDS = 3600
ACTOR = {"actor_type": "service", "actor": "executor"}


def _settings(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The inquiry's fields from core.ask's parameters; ValidationError when unusable."""
    schema = parameters.get("schema", {"type": "object"})
    inquiries.check_schema(schema)
    ttl = parameters.get("ttl_seconds", DEFAULT_TTL_SECONDS)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl < 1:
        raise ValidationError("Invalid ttl_seconds", {"parameters.ttl_seconds": "must be >= 1"})
    default = parameters.get("default")
    if default is not None:
        errors = inquiries.schema_errors(schema, default, "parameters.default")
        if errors:
            raise ValidationError("The default response does not match the schema", errors)
    roles = parameters.get("roles")
    if roles is not None and not (isinstance(roles, list)
                                  and all(isinstance(r, str) for r in roles)):
        raise ValidationError("Invalid roles", {"parameters.roles": "must be a list of roles"})
    return {"prompt": str(parameters.get("prompt") or ""), "schema": schema,
            "ttl_seconds": int(ttl), "default_response": default, "roles": roles or None}


def start(conn: Connection, row: Mapping[str, Any]) -> list[Outgoing]:
    """requested → running → paused, creating the pending inquiry and its expiry timer."""
    try:
        fields = _settings(row["parameters"] or {})
    except ValidationError as exc:
        detail = "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
        return lifecycle.fail(conn, row, "validation", f"{exc.message}: {detail}",
                              fields=exc.fields)
    running = lifecycle.to_running(conn, row, {STATE_KEY: {"ttl_seconds": fields["ttl_seconds"]}})
    if running is None:
        return []
    inquiry = inquiries.create(conn, tenant_id=running["tenant_id"],
                               execution_id=running["id"], **fields)
    paused = executions.transition(conn, running["id"], S.PAUSED, expected=[S.RUNNING],
                                   details={"inquiry_id": inquiry["id"]}, **ACTOR)
    out = [status_changed(running)]
    if paused is not None:
        out.append(status_changed(paused))
    out += timers.schedule(conn, kind=timers.INQUIRY_EXPIRY, entity_id=inquiry["id"],
                           tenant_id=inquiry["tenant_id"], delay_seconds=fields["ttl_seconds"])
    return [*out, news(messages.INQUIRY_CREATED, inquiry)]


def _succeed(conn: Connection, inquiry: Mapping[str, Any], output: Any) -> list[Outgoing]:
    """paused → running → succeeded with `output`; nothing when it no longer waits."""
    row = repository.lock_execution(conn, inquiry["tenant_id"], inquiry["execution_id"])
    if row is None or row["status"] != S.PAUSED:
        return []
    detail = {"inquiry_id": inquiry["id"], "inquiry_status": inquiry["status"]}
    resumed = executions.transition(conn, row["id"], S.RUNNING, expected=[S.PAUSED],
                                    details=detail, **ACTOR)
    if resumed is None:
        return []
    result = {**executions.empty_result(), "output": output,
              "inquiry": {"id": inquiry["id"], "status": inquiry["status"],
                          "responded_by": inquiry["responded_by"]}}
    done = executions.transition(conn, row["id"], S.SUCCEEDED, expected=[S.RUNNING],
                                 result=result, details=detail, **ACTOR)
    out = [status_changed(resumed)]
    return out + ([status_changed(done)] if done is not None else [])


def answered(conn: Connection, inquiry_id: int, tenant_id: int) -> list[Outgoing]:
    """The gateway stored an answer: resume the execution with it."""
    try:
        inquiry = inquiries.get(conn, tenant_id, inquiry_id)
    except NotFoundError:
        return []
    if inquiry["status"] != InquiryStatus.RESPONDED:
        return []
    out = _succeed(conn, inquiry, inquiry["response"])
    timers.cancel(conn, timers.INQUIRY_EXPIRY, inquiry_id)
    return [*out, news(messages.INQUIRY_RESPONDED, inquiry)] if out else []


def resume(engine: Engine, dispatch: Dispatch, inquiry_id: int, tenant_id: int) -> None:
    """GATEWAY's INQUIRY_RESPONDED: one transaction, then the news."""
    with transaction(engine) as conn:
        out = answered(conn, inquiry_id, tenant_id)
    send(dispatch, out)


def on_expiry(conn: Connection, cipher: Cipher, timer: Mapping[str, Any]) -> list[Outgoing]:
    """The TTL is over: apply the default, or fail the execution."""
    inquiry = inquiries.expire(conn, timer["entity_id"], reason="ttl")
    if inquiry is None:
        return []
    if inquiry["default_response"] is not None:
        out = _succeed(conn, inquiry, inquiry["default_response"])
    else:
        out = _fail_expired(conn, inquiry)
    return [*out, news(messages.INQUIRY_EXPIRED, inquiry)]


def _fail_expired(conn: Connection, inquiry: Mapping[str, Any]) -> list[Outgoing]:
    row = repository.lock_execution(conn, inquiry["tenant_id"], inquiry["execution_id"])
    if row is None or row["status"] != S.PAUSED:
        return []
    message = (f"Inquiry {inquiry['id']} expired after {inquiry['ttl_seconds']} s "
               "without a response and has no default")
    return lifecycle.fail(conn, row, "inquiry_expired", message, expected=[S.PAUSED],
                          inquiry_id=inquiry["id"])


ENGINE = engines.Engine(
    kind=STATE_KEY,
    claims=lambda row, action: action["runner_type"] == "inquiry",
    start=lambda conn, cipher, row, action: start(conn, row),
)
