"""Concurrency policies of actions: `{limit, key, overflow}` (docs/packs.md "Concurrency policy").

At most `limit` executions of an action run at once per rendered `key` (one key for the whole
action when there is none), in each tenant. An execution holds a slot from its admission
(`scheduled`, not waiting) until it is finished; the others wait in `scheduled` with
`waiting_for_concurrency` (overflow `queue`, first come first served per key) or end `canceled`
(overflow `cancel`). The executor decides (executor/concurrency.py); this module holds the
validation, the key rendering and the SQL, all over the `ix_executions_concurrency` index.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, select

from . import templating
from .catalog import Problems, check_unknown, is_int
from .models import executions
from .states import ExecutionStatus

S = ExecutionStatus
POLICY_KEYS = frozenset({"limit", "key", "overflow"})
QUEUE, CANCEL = "queue", "cancel"
OVERFLOWS = (QUEUE, CANCEL)
# Executor-run actions hold no worker: their children (tasks, attempts, items) are what runs.
UNLIMITED_RUNNERS = frozenset({"workflow", "inquiry"})
MAX_KEY_LENGTH = 500
# Statuses of a limited execution that holds a slot (or waits for one): the index's predicate.
UNFINISHED = (S.SCHEDULED.value, S.RUNNING.value, S.PAUSED.value, S.CANCELING.value)
LOCK_CLASS = 7_203  # pg_advisory_xact_lock(LOCK_CLASS, hash of tenant/action/key)


@dataclass(frozen=True, slots=True)
class Policy:
    limit: int
    key: str | None
    overflow: str

    @classmethod
    def of(cls, action: Mapping[str, Any]) -> Policy | None:
        """The action's policy, None without one."""
        block = action.get("concurrency_policy")
        if not block:
            return None
        return cls(int(block["limit"]), block.get("key"), block.get("overflow") or QUEUE)


class KeyRenderError(Exception):
    """The key template could not be rendered for these parameters; the message says why."""


def check_policy(problems: Problems, value: Any, runner: str | None) -> dict[str, Any] | None:
    """`concurrency_policy` of an action definition: limit ≥ 1, key a template, overflow."""
    if value is None:
        return None
    where = "concurrency_policy"
    if not isinstance(value, Mapping):
        problems.add(where, "must be a mapping with limit, and optionally key and overflow")
        return None
    if runner in UNLIMITED_RUNNERS:
        problems.add(where, f"not for runner_type {runner} (limit the actions it runs)")
    check_unknown(problems, value, POLICY_KEYS, f"{where}.")
    limit: Any = value.get("limit")
    if not is_int(limit) or limit < 1:
        problems.add(f"{where}.limit", "required: an integer of at least 1")
    key = value.get("key")
    if key is not None:
        if not isinstance(key, str) or not key.strip():
            problems.add(f"{where}.key", "must be a template string such as '{{ params.host }}'")
        else:
            try:
                templating.check_template(key)
            except templating.TemplateError as exc:
                problems.add(f"{where}.key", f"invalid template: {exc.reason}")
    overflow = value.get("overflow", QUEUE)
    if overflow not in OVERFLOWS:
        problems.add(f"{where}.overflow", f"must be one of {list(OVERFLOWS)}")
    return {"limit": limit, "key": key, "overflow": overflow}


def render_key(policy: Policy, parameters: Mapping[str, Any]) -> str:
    """The execution's key: its template over the parameters (`params.x` or `x`); '' for none."""
    if policy.key is None:
        return ""
    params = dict(parameters or {})
    try:
        value = templating.render(policy.key, {**params, "params": params})
    except templating.TemplateError as exc:
        raise KeyRenderError(f"The concurrency key {policy.key!r} failed: {exc.reason}") from exc
    if value is None or value == "":
        raise KeyRenderError(f"The concurrency key {policy.key!r} rendered to nothing "
                        "(a missing parameter?)")
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    if len(text) > MAX_KEY_LENGTH:
        raise KeyRenderError(f"The concurrency key {policy.key!r} rendered to more than "
                        f"{MAX_KEY_LENGTH} characters")
    return text


def lock(conn: Connection, tenant_id: int, action_ref: str, key: str) -> None:
    """Serialise every decision about one (tenant, action, key) until the transaction ends,
    across executor replicas (a hash collision only serialises two keys more than needed)."""
    name = json.dumps([tenant_id, action_ref, key])
    conn.execute(select(func.pg_advisory_xact_lock(LOCK_CLASS, func.hashtext(name))))


def _same_key() -> Any:
    return and_(executions.c.tenant_id == bindparam("tenant_id"),
                executions.c.action_ref == bindparam("action_ref"),
                executions.c.concurrency_key == bindparam("key"),
                executions.c.status.in_(UNFINISHED))


_COUNTS = select(
    func.count().filter(executions.c.waiting_for_concurrency.is_(False)),
    func.count().filter(executions.c.waiting_for_concurrency.is_(True)),
).where(_same_key())
_WAITING = (
    select(executions.c.id)
    .where(_same_key(), executions.c.waiting_for_concurrency.is_(True))
    .order_by(executions.c.created_at, executions.c.id)
    .limit(bindparam("n"))
)


def counts(conn: Connection, tenant_id: int, action_ref: str, key: str) -> tuple[int, int]:
    """(slots taken, executions waiting) of one key; call with its lock held."""
    taken, waiting = conn.execute(
        _COUNTS, {"tenant_id": tenant_id, "action_ref": action_ref, "key": key}).one()
    return int(taken), int(waiting)


def first_waiting(conn: Connection, tenant_id: int, action_ref: str, key: str, n: int) -> list[int]:
    """The `n` oldest waiting executions of one key (created_at, then id: first come first)."""
    return list(conn.execute(_WAITING, {"tenant_id": tenant_id, "action_ref": action_ref,
                                        "key": key, "n": n}).scalars())


def waiting_groups(conn: Connection) -> list[tuple[int, str, str, int]]:
    """(tenant_id, action_ref, key, oldest waiting id) of every key with a queue, across tenants
    (the executor's recovery sweep; each group is then handled within its tenant)."""
    rows = conn.execute(
        select(executions.c.tenant_id, executions.c.action_ref, executions.c.concurrency_key,
               func.min(executions.c.id))
        .where(executions.c.concurrency_key.is_not(None),
               executions.c.status == S.SCHEDULED.value,
               executions.c.waiting_for_concurrency.is_(True))
        .group_by(executions.c.tenant_id, executions.c.action_ref, executions.c.concurrency_key)
    ).all()
    return [(t, a, k, i) for t, a, k, i in rows]


def waiting_count(conn: Connection) -> int:
    """Executions waiting for a slot across tenants, for /metrics (a total: action refs name
    tenants' packs, and /metrics is public)."""
    return int(conn.execute(
        select(func.count()).select_from(executions)
        .where(executions.c.concurrency_key.is_not(None),
               executions.c.status == S.SCHEDULED.value,
               executions.c.waiting_for_concurrency.is_(True))
    ).scalar_one())
