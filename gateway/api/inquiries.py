"""Inquiries: list, get, respond (api.md "Inquiries")."""

from __future__ import annotations

from flask import Blueprint, request

from nameko_services.domain import inquiries, messages
from nameko_services.domain.db import transaction
from nameko_services.domain.errors import BadRequestError, ValidationError
from nameko_services.domain.states import InquiryStatus

from ..app import ctx
from ..auth import permission, principal
from ..http import accepts, json_body, one, page, page_args, path_id
from .openapi import returns

bp = Blueprint("inquiries", __name__)

_STATUSES = frozenset(s.value for s in InquiryStatus)


def _status() -> str | None:
    raw = request.args.get("status") or None
    if raw is not None and raw not in _STATUSES:
        raise BadRequestError(f"Unknown status {raw!r}",
                              {"fields": {"status": f"one of {sorted(_STATUSES)}"}})
    return raw


@bp.get("/api/v1/inquiries")
@permission("read")
@returns("Inquiry", many=True)
def list_inquiries():
    """The tenant's inquiries, newest first; `?status=pending` for those awaiting an answer."""
    limit, offset = page_args()
    status = _status()
    with transaction(ctx().engine) as conn:
        items, total = inquiries.list_inquiries(conn, principal().tenant_id, status=status,
                                                limit=limit, offset=offset)
    return page(items, total, limit, offset)


@bp.get("/api/v1/inquiries/<inquiry_id>")
@permission("read")
@returns("Inquiry")
def get_inquiry(inquiry_id: str):
    """One inquiry with its schema, status and response."""
    iid = path_id(inquiry_id, "Inquiry")
    with transaction(ctx().engine) as conn:
        return one(inquiries.to_api(inquiries.get(conn, principal().tenant_id, iid)))


@bp.post("/api/v1/inquiries/<inquiry_id>/respond")
@permission("execute")
@accepts({"response": {"description": "required: the answer, valid against the inquiry's schema",
                       "nullable": True}})
@returns("Inquiry")
def respond_to_inquiry(inquiry_id: str):
    """Answer: validated against the schema (422); answered or expired already is 409."""
    iid = path_id(inquiry_id, "Inquiry")
    body = json_body()
    if "response" not in body:
        raise ValidationError("Invalid request body", {"response": "required"})
    who = principal()
    with transaction(ctx().engine) as conn:
        answered = inquiries.respond(
            conn, tenant_id=who.tenant_id, inquiry_id=iid, response=body["response"],
            role=who.role, user_id=who.user_id, actor=who.actor,
        )
    ctx().publish(messages.GATEWAY, messages.INQUIRY_RESPONDED, {
        "inquiry_id": iid, "tenant_id": who.tenant_id,
        "execution_id": answered["execution_id"],
    })
    return one(answered)
