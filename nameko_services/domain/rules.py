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
class Decision:
    """Whether a rule matched an event; an evaluation error is recorded and counts as no match."""

    matched: bool
    error: str | None = None


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


def decide(criteria: str | None, context: Mapping[str, Any]) -> Decision:
    """Evaluate a rule's criteria; empty criteria always match."""
    try:
        return Decision(matched=templating.criteria_matches(criteria, context))
    except templating.TemplateError as exc:
        return Decision(matched=False, error=str(exc))


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
