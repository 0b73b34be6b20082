"""Rule matching at run time: the criteria context, the match decision, parameter rendering.

Pure. (Rule definitions — validation, repository, API shape — live in rule_definitions.py.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import templating


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What a rule makes of an event: the criteria's verdict and the value it came to (or why
    it could not be evaluated: that counts as no match), then, for a match, the action
    parameters rendered (or why they could not be). The executor acts on it; a dry-run
    (POST /api/v1/rules/{id}/test) shows it."""

    matched: bool
    error: str | None = None
    value: Any = None
    parameters: dict[str, Any] | None = None
    parameters_error: str | None = None


def criteria_context(event: Mapping[str, Any], datastore: Any, now: datetime) -> dict[str, Any]:
    """api.md's template context: `trigger.data|id|ref`, `event.id|payload`, `datastore`, `now`.

    `datastore` is usually a templating.DatastoreView, so values are read only when used.
    """
    payload = event.get("payload")
    return {
        "trigger": {
            "data": payload, "id": event.get("trigger_id"), "ref": event.get("trigger_ref"),
        },
        "event": {"id": event.get("id"), "payload": payload, "source": event.get("source")},
        "datastore": datastore,
        "now": now,
    }


def evaluate(
    criteria: str | None, parameters: Mapping[str, Any] | None, context: Mapping[str, Any]
) -> Evaluation:
    """Evaluate a rule's criteria against `context` (empty criteria always match) and, when
    they match, render its parameters: the one decision the executor and the dry-run share."""
    value: Any = None
    if criteria and criteria.strip():
        try:
            value = templating.evaluate(criteria, context)
        except templating.TemplateError as exc:
            return Evaluation(matched=False, error=str(exc))
        matched = bool(value)
        value = _jsonable(value)
    else:
        matched = True
    if not matched:
        return Evaluation(matched=False, value=value)
    try:
        rendered = render_parameters(parameters, context)
    except templating.TemplateError as exc:
        return Evaluation(matched=True, value=value, parameters_error=str(exc))
    return Evaluation(matched=True, value=value, parameters=rendered)


def render_parameters(
    parameters: Mapping[str, Any] | None, context: Mapping[str, Any]
) -> dict[str, Any]:
    """A rule's parameters rendered for its action; a lone `{{ expr }}` keeps its JSON type.

    Raises templating.TemplateError (the enforcement then fails and no execution is created).
    """
    return _jsonable(templating.render(dict(parameters or {}), context))


def _jsonable(value: Any) -> Any:
    """Template results as JSON values: `{{ now }}` becomes its ISO 8601 text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
