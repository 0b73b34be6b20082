"""POST /api/v1/webhooks/{trigger_id}: an outside call becomes an event (api.md "webhooks")."""

from __future__ import annotations

from flask import Blueprint, request

from nameko_services.domain import events, messages, webhooks
from nameko_services.domain.db import isoformat, transaction
from nameko_services.domain.errors import PayloadTooLargeError

from ..app import ctx
from ..auth import API_KEY_HEADER, PERMISSIONS, PUBLIC, authenticate, bearer_token, permission
from ..http import one, path_id
from .openapi import BACKLOG_FULL, responds

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
def receive(trigger_id: str):
    """Receive a webhook call: the JSON body becomes an event of the trigger (202); 429/503
    `backlog_full` while too much accepted work waits (docs/reliability.md "Backlog")."""
    tid = path_id(trigger_id, "Trigger")
    body = read_body(ctx().settings.webhook_max_body_bytes)
    with transaction(ctx().engine) as conn:
        event, created = webhooks.receive(
            conn, trigger_id=tid, raw_body=body, credentials=credentials(),
            idempotency_key=request.headers.get("Idempotency-Key"),
            admit=ctx().backlog.admit,
        )
    if created:  # committed: the executor will find the row
        ctx().publish(messages.GATEWAY, messages.EVENT_CREATED, events.announcement(event))
    return one({"event_id": event["id"], "trigger_id": event["trigger_id"],
                "received_at": isoformat(event["created_at"])}, 202)
