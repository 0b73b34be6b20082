"""POST /api/v1/webhooks/{trigger_id}: an outside call becomes an event (api.md "webhooks")."""

from __future__ import annotations

import time

from flask import Blueprint, g, request

from nameko_services import metrics, tracing
from nameko_services.domain import events, executions, messages, webhooks
from nameko_services.domain.db import isoformat, transaction
from nameko_services.domain.errors import PayloadTooLargeError
from nameko_services.domain.states import TERMINAL_STATES

from .. import request_log
from ..app import ctx
from ..auth import API_KEY_HEADER, PERMISSIONS, PUBLIC, authenticate, bearer_token, permission
from ..http import one, path_id, request_schema
from ..waiters import wait_seconds
from .openapi import BACKLOG_FULL, WAIT, query_parameter, responds, returns

bp = Blueprint("webhooks", __name__)

READ_CHUNK = 64 * 1024


def read_body(limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes whether or not Content-Length says so."""
    too_large = PayloadTooLargeError(
        f"Webhook body exceeds {limit} bytes", {"limit_bytes": limit}
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    stream = request.stream
    if request.content_length is None and "chunked" in request.headers.get(
        "Transfer-Encoding", ""
    ).lower():
        # werkzeug hands chunked bodies over as empty unless the server sets
        # wsgi.input_terminated (eventlet does not); eventlet de-chunks, and we cap the read.
        stream = request.environ["wsgi.input"]
    chunks, size = [], 0
    while True:
        chunk = stream.read(min(READ_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise too_large


def credentials() -> webhooks.Credentials:
    """What the sender presented; a Bearer token is only looked at when neither header is."""
    token = request.headers.get("X-Attune-Webhook-Token")
    signature = request.headers.get("X-Hub-Signature-256")
    if token is not None or signature is not None:
        return webhooks.Credentials(token=token, signature=signature)
    raw = bearer_token()
    if raw is None and request.headers.get(API_KEY_HEADER) is None:
        return webhooks.Credentials()
    who = authenticate(raw, execution_token=True)
    permitted = who.token_type == "execution" or who.role in PERMISSIONS["execute"]
    return webhooks.Credentials(bearer=who, bearer_permitted=permitted)


@bp.post("/api/v1/webhooks/<trigger_id>")
@permission(PUBLIC)  # authenticated below by trigger token, signature or Bearer token
@responds(503, BACKLOG_FULL)
@query_parameter("wait", WAIT)
@request_schema({"description": "any JSON value: the event's payload", "nullable": True})
@returns("WebhookReceipt")
def receive(trigger_id: str):
    """Receive a webhook call: the JSON body becomes an event of the trigger (202); 429/503
    `backlog_full` while too much accepted work waits (docs/reliability.md "Backlog").

    With `?wait=S`, answer like a function: 200 with the event's first execution (the first
    matching rule's) once it has ended within S seconds, 200 with `execution: null` and a
    `reason` when the event starts none, else 202 with the receipt (and the execution so far).
    """
    started = time.monotonic()
    tid = path_id(trigger_id, "Trigger")
    wait = wait_seconds(ctx().settings.api.max_wait_seconds)
    body = read_body(ctx().settings.webhook_max_body_bytes)
    with ctx().waiters.slot() as slot:

        def admit(tenant_id: int) -> None:  # once the sender is known, before anything is stored
            ctx().backlog.admit(tenant_id)
            if wait is not None:
                slot.reserve(tenant_id)

        key = request.headers.get("Idempotency-Key")
        # Without a key the call stores one row after its reads: that statement needs no
        # transaction around it (two round trips fewer). With one, releasing a stale key and
        # storing the event commit together.
        engine = ctx().engine if key is not None else ctx().autocommit
        with request_log.span("receive", trigger_id=tid) as span_id:
            with transaction(engine) as conn:
                event, created = webhooks.receive(
                    conn, trigger_id=tid, raw_body=body, credentials=credentials(),
                    idempotency_key=key, admit=admit, trace_id=request_log.trace_id(),
                )
                if wait is not None:  # before the publish: its executions' news cannot pass
                    slot.watch_event(event["id"])
            if created:  # committed: the executor will find the row
                metrics.EVENTS.labels("webhook").inc()
                ctx().publish(messages.GATEWAY, messages.EVENT_CREATED,
                              tracing.linked(events.announcement(event), span_id))
        g.webhook_duplicate = not created  # the outcome in attune_webhooks_total (observed.py)
        receipt = {"event_id": event["id"], "trigger_id": event["trigger_id"],
                   "received_at": isoformat(event["created_at"]), "trace_id": event["trace_id"]}
        if wait is None:
            return one(receipt, 202)
        run, ended = slot.wait_for(lambda: _first_run(event["tenant_id"], event["id"]),
                                   _ended, started + wait)
    execution = executions.to_api(run.execution) if run.execution is not None else None
    if ended and execution is None:
        return one({**receipt, "execution": None, "reason": run.reason, "error": run.error})
    return one({**receipt, "execution": execution}, 200 if ended else 202)


def _first_run(tenant_id: int, event_id: int) -> webhooks.FirstRun:
    with transaction(ctx().engine) as conn:
        return webhooks.first_run(conn, tenant_id, event_id)


def _ended(run: webhooks.FirstRun) -> bool:
    """The event started no execution, or its first one has ended."""
    if run.execution is None:
        return run.processed
    return run.execution["status"] in TERMINAL_STATES
