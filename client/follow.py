"""Following one execution until it ends, over the WebSocket feed (`/ws`, api.md
"Notifications"): its status changes, and its live output where the platform sends it
(`execution.output`; older platforms do not, which changes nothing else)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from simple_websocket import Client, ConnectionClosed

from .api import Api, ApiError

TERMINAL = frozenset({"succeeded", "succeeded_with_errors", "failed", "canceled"})
UNAUTHORIZED_CLOSE = 4401
IDLE_RESYNC_SECONDS = 15.0  # a quiet feed is checked against the API now and then
CONNECT_ATTEMPTS = 5  # failed or lost connections of one follow before giving up


class WaitTimeout(Exception):
    """The caller's deadline passed before the execution ended; it carries the last state."""

    def __init__(self, execution: dict[str, Any]) -> None:
        super().__init__(f"execution {execution['id']} is still {execution['status']}")
        self.execution = execution


Handler = Callable[[dict[str, Any]], None]


def follow(api: Api, execution_id: int, *, on_status: Handler | None = None,
           on_output: Handler | None = None, timeout: float | None = None,
           known: dict[str, Any] | None = None,
           on_descendant: Handler | None = None) -> dict[str, Any]:
    """Wait until the execution ends and return it (as GET /api/v1/executions/{id} has it).

    Subscribes first and reads the execution only once the server has confirmed the
    subscription (its pong to a ping sent after the subscribe), so no change can fall between
    the read and the feed. `on_status` gets the execution each time its status is seen to
    change, `on_output` each `execution.output` message's data. A lost connection is opened
    again (CONNECT_ATTEMPTS times at most) and the state read anew; `timeout` (seconds) raises
    WaitTimeout. `known` is the state the caller has shown already (not reported again).
    `on_descendant` gets each status change of the execution's children (workflow tasks,
    with-items items) and theirs, as they happen; their live output goes to `on_output` too.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    last: dict[str, Any] = dict(known or {})

    def seen(execution: dict[str, Any]) -> bool:
        """Record the execution; report a new status; True once it has ended."""
        if execution.get("status") != last.get("status") and on_status is not None:
            on_status(execution)
        last.update(execution)
        return execution["status"] in TERMINAL

    failures = 0
    while True:
        try:
            bearer = f"Bearer {api.token()}".encode()
            socket = Client.connect(api.ws_url, headers={b"Authorization": bearer})
        except OSError as exc:
            failures += 1
            if failures >= CONNECT_ATTEMPTS:
                raise ApiError(0, "unreachable", f"cannot open the notification feed "
                                                 f"{api.ws_url}: {exc}") from exc
            time.sleep(min(2.0 ** failures, 10.0))
            continue
        try:
            return _watch(api, socket, execution_id, seen, on_output, deadline, last,
                          on_descendant)
        except ConnectionClosed as closed:
            if closed.reason == UNAUTHORIZED_CLOSE:
                raise ApiError(401, "unauthorized",
                               "the notification feed refused the token") from None
            failures += 1
            if failures >= CONNECT_ATTEMPTS:
                raise ApiError(0, "unreachable", f"the notification feed {api.ws_url} keeps "
                                                 f"closing ({closed.reason})") from None
            time.sleep(min(2.0 ** failures, 10.0))
        finally:
            with contextlib.suppress(ConnectionClosed, OSError):
                socket.close()


def _watch(api: Api, socket: Client, execution_id: int, seen: Callable[[dict[str, Any]], bool],
           on_output: Handler | None, deadline: float | None,
           last: dict[str, Any], on_descendant: Handler | None = None) -> dict[str, Any]:
    """One connection's life: the ended execution (ConnectionClosed when it drops)."""
    path = f"/api/v1/executions/{execution_id}"
    socket.send(json.dumps({"action": "subscribe", "entity_type": "execution",
                            "entity_id": execution_id}))
    family = {execution_id}  # the execution and the descendants seen so far
    if on_descendant is not None:  # every execution of the tenant: its children among them
        socket.send(json.dumps({"action": "subscribe", "entity_type": "execution"}))
    socket.send(json.dumps({"action": "ping"}))
    subscribed = False
    while True:
        wait = IDLE_RESYNC_SECONDS
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                raise WaitTimeout(dict(last) or api.get(path))
        raw = socket.receive(timeout=wait)  # ConnectionClosed once the connection is gone
        message = _parse(raw)
        event = message.get("event")
        if raw is None or event == "notice":
            # Quiet for a while, or the server dropped messages for us: read the state.
            if subscribed and seen(api.get(path)):
                return dict(last)
            continue
        if event == "pong" and not subscribed:
            subscribed = True
            if on_descendant is not None:  # the children made before the subscription
                family.update(child["id"] for child in api.items(
                    "/api/v1/executions", parent_execution_id=execution_id))
            if seen(api.get(path)):
                return dict(last)
        elif message.get("entity_id") != execution_id:
            if on_descendant is not None:
                _descendant(socket, message, family, on_descendant, on_output)
            continue
        elif event == "execution.output" and on_output is not None:
            on_output(message.get("data") or {})
        elif event == "execution.status_changed":
            data = message.get("data") or {}
            if data.get("status") in TERMINAL:
                seen(api.get(path))  # the whole row, result included
                return dict(last)
            seen({**last, **(data.get("execution") or {}), "status": data.get("status")})


def _descendant(socket: Client, message: dict[str, Any], family: set[int],
                on_descendant: Handler, on_output: Handler | None) -> None:
    """Report a message about a descendant: a child of one already in the family joins it
    (and is subscribed to by id, for its live output)."""
    data = message.get("data") or {}
    entity_id = message.get("entity_id")
    if message.get("event") == "execution.output":
        if entity_id in family and on_output is not None:
            on_output(data)
        return
    if message.get("event") not in ("execution.created", "execution.status_changed"):
        return
    if not isinstance(entity_id, int):
        return
    if entity_id not in family:
        if data.get("parent_execution_id") not in family:
            return
        family.add(entity_id)
        socket.send(json.dumps({"action": "subscribe", "entity_type": "execution",
                                "entity_id": entity_id}))
    on_descendant({**(data.get("execution") or {}), "id": entity_id,
                   "status": data.get("status")})


def _parse(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        message = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    return message if isinstance(message, dict) else {}
