"""GET /api/v1/events[?trigger_id=&trigger=&since=&until=&payload=] and GET /api/v1/events/{id}."""

from __future__ import annotations

from flask import Blueprint

from nameko_services.domain import events, listings
from nameko_services.domain.db import transaction

from ..app import ctx
from ..auth import permission, principal
from ..http import int_arg, one, page, page_args, path_id
from ..query_args import created_range, json_object_arg, text_arg, trace_id_arg
from .openapi import TRACE_ID, TRACE_ID_SCHEMA, query_parameter, returns

bp = Blueprint("events", __name__)

MAX_ID = 2**63 - 1


@bp.get("/api/v1/events")
@permission("read")
@query_parameter("trace_id", TRACE_ID, TRACE_ID_SCHEMA)
@returns("Event", many=True)
def list_events():
    """List the tenant's events, newest first, filtered by trigger (`trigger_id`, or `trigger`:
    id or ref), time (`since`, `until`), `payload` (a JSON object it contains) and `trace_id`."""
    limit, offset = page_args()
    trigger_id = int_arg("trigger_id", minimum=1, maximum=MAX_ID)
    with transaction(ctx().engine) as conn:
        items, total = listings.list_events(
            conn, principal().tenant_id, trigger_id=trigger_id, trigger=text_arg("trigger"),
            created=created_range(), payload=json_object_arg("payload"),
            trace_id=trace_id_arg(), limit=limit, offset=offset)
    return page(items, total, limit, offset)


@bp.get("/api/v1/events/<event_id>")
@permission("read")
@returns("Event")
def get_event(event_id: str):
    """One event with its payload."""
    eid = path_id(event_id, "Event")
    with transaction(ctx().engine) as conn:
        return one(events.to_api(events.get(conn, principal().tenant_id, eid)))
