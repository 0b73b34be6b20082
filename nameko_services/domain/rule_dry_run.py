"""A rule's dry-run (POST /api/v1/rules/{id}/test): what the executor would make of a payload or
of a stored event — the criteria's verdict and value, the action parameters rendered and
validated against the action's schema — with nothing stored, published or run.

The decision is the executor's own (`rules.evaluate`, `parameters.validate`); only the datastore
differs: encrypted values read as "***" here, since the answer shows what was rendered.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from . import datastore, events, rule_definitions, rules, templating
from . import parameters as params_mod
from .errors import ValidationError

# What an execution of the rule would come to, in the executor's order of checks.
EXECUTION = "execution"  # created and scheduled
NO_MATCH = "no_match"  # the criteria are false: nothing
CRITERIA_ERROR = "criteria_error"  # the criteria cannot be evaluated: counts as no match
TEMPLATE_ERROR = "template_error"  # a parameter does not render: the enforcement fails
INVALID_PARAMETERS = "invalid_parameters"  # created failed at once (result.error.type validation)

BODY_FIELDS = frozenset({"payload", "event_id"})


def subject(body: Mapping[str, Any]) -> tuple[str, Any]:
    """("payload", value) or ("event_id", id) from the request body: exactly one of them."""
    given = sorted(BODY_FIELDS & set(body))
    if len(given) != 1:
        problem = "give exactly one of payload and event_id"
        raise ValidationError("Give either a payload or an event_id",
                              {name: problem for name in (given or sorted(BODY_FIELDS))})
    name = given[0]
    value = body[name]
    if name == "event_id" and (isinstance(value, bool) or not isinstance(value, int)
                               or not 1 <= value <= 2**63 - 1):
        raise ValidationError("Invalid event_id", {"event_id": "must be an event id (integer)"})
    return name, value


def dry_run(conn: Connection, tenant_id: int, rule_id: int, body: Mapping[str, Any],
            now: datetime | None = None) -> dict[str, Any]:
    """Evaluate the tenant's rule against the body's payload or event (of the same tenant,
    else NotFoundError); the answer of api.md "Testing a rule". Reads only."""
    rule = rule_definitions.get(conn, tenant_id, rule_id)
    kind, value = subject(body)
    if kind == "event_id":
        event = events.get(conn, tenant_id, value)
    else:
        event = {"id": None, "trigger_id": rule["trigger_id"], "trigger_ref": rule["trigger_ref"],
                 "source": None, "payload": value}

    def shown_datastore() -> dict[str, Any]:  # read only if a template uses it
        return datastore.get_all(conn, None, tenant_id)

    context = rules.criteria_context(event, templating.DatastoreView(shown_datastore),
                                     now or datetime.now(UTC))
    verdict = rules.evaluate(rule["criteria"], rule["parameters"], context)
    declared = rule["action_parameters"] or {}
    shown, problems = verdict.parameters, {}
    if verdict.parameters is not None:
        try:
            shown = params_mod.validate(declared, verdict.parameters)
        except ValidationError as exc:
            problems = exc.fields
    outcome = (CRITERIA_ERROR if verdict.error else NO_MATCH if not verdict.matched
               else TEMPLATE_ERROR if verdict.parameters_error else INVALID_PARAMETERS
               if problems else EXECUTION)
    same_trigger = event["trigger_id"] == rule["trigger_id"]
    return {
        "rule_id": rule["id"],
        "rule_ref": rule["ref"],
        "enabled": rule["enabled"],
        "event_id": event["id"],
        "trigger_matches": same_trigger,
        "matched": verdict.matched,
        "criteria": {"expression": rule["criteria"], "value": verdict.value,
                     "error": verdict.error},
        "action": rule["action_ref"],
        "parameters": None if shown is None else params_mod.mask(
            shown, params_mod.secret_names(declared)),
        "parameters_error": verdict.parameters_error,
        "validation_errors": problems,
        "outcome": outcome,
        "would_fire": outcome == EXECUTION and bool(rule["enabled"]) and same_trigger,
    }
