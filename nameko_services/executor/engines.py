"""The engines of executions the executor runs itself (with-items, retry, workflow, inquiry),
behind one small interface, and the registry that maps an execution's kind to its engine.

Scheduling and parents call engines only through this registry, and an engine imports only
the lower modules (lifecycle, repository, news, timers, scheduling, parents), so the engines
stay independent of each other (an import-linter contract keeps them so). The registry is
filled in one place, the service's wiring (service.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from ..domain.crypto import Cipher
from .news import Outgoing

Row = Mapping[str, Any]

# The kinds, which are also their keys in `executions.state`.
WITH_ITEMS = "with_items"
RETRY = "retry"
WORKFLOW = "workflow"
INQUIRY = "inquiry"
# A workflow task or with-items item may carry its own retry policy under this state key.
RETRY_POLICY_KEY = "retry_policy"


@dataclass(frozen=True)
class Engine:
    """`kind`: its key in `executions.state`; `claims(row, action)`: does a `requested`
    execution run on it; `start(conn, cipher, row, action, **options)`: begin it;
    `advance(conn, cipher, row)`: take the next step after a child changed or a cancel was
    asked (None: its executions have no children)."""

    kind: str
    claims: Callable[[Row, Row], bool]
    start: Callable[..., list[Outgoing]]
    advance: Callable[[Connection, Cipher, Row], list[Outgoing]] | None = None


_ENGINES: dict[str, Engine] = {}


def register(*engines: Engine) -> None:
    """Add engines; the order of registration is the order `claims` is asked in."""
    for engine in engines:
        _ENGINES[engine.kind] = engine


def get(kind: str) -> Engine:
    """The engine of a kind (KeyError when it is not registered: a wiring mistake)."""
    return _ENGINES[kind]


def ordered() -> list[Engine]:
    """Every engine, in the order they were registered (the order `plan` asks them)."""
    return list(_ENGINES.values())


def parent_kinds() -> tuple[str, ...]:
    """The kinds whose executions have children (the `state` keys the parents module routes)."""
    return tuple(kind for kind, engine in _ENGINES.items() if engine.advance is not None)
