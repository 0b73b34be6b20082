"""/api/v1/rules: create, list (?trigger_id=&action_id=&enabled=&pack=), get, patch, delete."""

from __future__ import annotations

from flask import Blueprint, request

from nameko_services.domain import rule_definitions as rules
from nameko_services.domain import rule_dry_run
from nameko_services.domain.db import transaction
from nameko_services.domain.errors import BadRequestError

from ..app import ctx
from ..auth import permission, principal
from ..definitions import (
    REF_OR_ID,
    acting_user,
    definition_body,
    definition_fields,
    optional,
    publish_changes,
)
from ..http import accepts, int_arg, json_body, one, page, page_args, path_id
from ..query_args import text_arg
from .openapi import returns

bp = Blueprint("rules", __name__)
# The JSON type of each definition field (rule_definitions checks the rest).
BODY = definition_fields(rules.RULE_FIELDS | {"pack"}, {
    "pack": {"type": "string"}, "name": {"type": "string"}, "description": optional("string"),
    "trigger": REF_OR_ID, "action": REF_OR_ID,
    "criteria": optional("string", description="an expression on the event"),
    "parameters": optional("object"),
    "enabled": {"type": "boolean"}, "notify_on_trigger": {"type": "boolean"},
})


def _bool_arg(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise BadRequestError(f"Query parameter '{name}' must be true or false",
                          {"fields": {name: "must be true or false"}})


@bp.post("/api/v1/rules")
@permission("write")
@accepts(BODY)
@returns("Rule")
def create_rule():
    """Create a rule: when the trigger fires and criteria match, run the action."""
    body = definition_body()
    with transaction(ctx().engine) as conn:
        outcome = rules.create(conn, tenant_id=principal().tenant_id, body=body,
                               actor=acting_user())
    publish_changes(outcome.changes)
    return one(outcome.data, 201)


@bp.get("/api/v1/rules")
@permission("read")
@returns("Rule", many=True)
def list_rules():
    """The caller's rules, newest first (?trigger_id=, ?action_id=, ?enabled=, ?pack=)."""
    limit, offset = page_args()
    with transaction(ctx().engine) as conn:
        items, total = rules.list_rules(
            conn, principal().tenant_id, trigger_id=int_arg("trigger_id"),
            action_id=int_arg("action_id"), enabled=_bool_arg("enabled"),
            pack_ref=text_arg("pack"), limit=limit, offset=offset,
        )
    return page(items, total, limit, offset)


@bp.get("/api/v1/rules/<rule_id>")
@permission("read")
@returns("Rule")
def get_rule(rule_id: str):
    """One rule with its trigger and action refs."""
    with transaction(ctx().engine) as conn:
        row = rules.get(conn, principal().tenant_id, path_id(rule_id, "Rule"))
    return one(rules.to_api(row))


@bp.post("/api/v1/rules/<rule_id>/test")
@permission("read")
@accepts(definition_fields(rule_dry_run.BODY_FIELDS, {
    "payload": {"description": "a payload to test the rule on", "nullable": True},
    "event_id": {"type": "integer", "minimum": 1, "description": "or a stored event's id"}}))
@returns("RuleDryRun")
def test_rule(rule_id: str):
    """Dry-run a rule against `{"payload": ...}` or `{"event_id": N}`: nothing stored or run.

    Answers whether the criteria match (and if not, their value or template error) and the
    action parameters the rule would send, rendered and validated against the action's schema
    (api.md "Testing a rule"). Encrypted datastore values read as "***". Any role that may read
    rules may test them: it shows nothing the role cannot read otherwise.
    """
    rid = path_id(rule_id, "Rule")
    body = json_body()
    with transaction(ctx().engine) as conn:
        return one(rule_dry_run.dry_run(conn, principal().tenant_id, rid, body))


@bp.patch("/api/v1/rules/<rule_id>")
@permission("write")
@accepts(BODY)
@returns("Rule")
def update_rule(rule_id: str):
    """Change enabled, criteria, parameters, action, notify_on_trigger or description."""
    rid = path_id(rule_id, "Rule")
    patch = definition_body()
    with transaction(ctx().engine) as conn:
        outcome = rules.update_rule(conn, tenant_id=principal().tenant_id, rule_id=rid,
                                    patch=patch, actor=acting_user())
    publish_changes(outcome.changes)
    return one(outcome.data)


@bp.delete("/api/v1/rules/<rule_id>")
@permission("write")
@returns(None)
def delete_rule(rule_id: str):
    """Delete a rule; executions already started finish."""
    with transaction(ctx().engine) as conn:
        outcome = rules.delete_rule(conn, principal().tenant_id, path_id(rule_id, "Rule"),
                                    acting_user())
    publish_changes(outcome.changes)
    return "", 204
