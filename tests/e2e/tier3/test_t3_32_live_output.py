"""T3.32 — live output: a WebSocket client watching an execution receives the lines its action
prints while it runs (`execution.output`, api.md), in order, masked, bounded by the rate of
config.e2e.yaml's ATTUNE.live_output; an action that prints nothing sends none.

The actions wait for a datastore key the test sets, so each is still running when the client
subscribes (by id, the only way to get its lines) and until the test has seen what it waits for.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from tests.support.e2e import NotificationSocket, unique_name, wait_for_execution
from tests.support.flows import make_action

GATED = '''
import sys, time
import attune


def run(key, token, lines=3, chatty=True, flood=0):
    deadline = time.monotonic() + 50
    n = 0
    while attune.datastore.get(key) is None:
        n += 1
        if chatty:
            print(f"waiting {n} token={token}")
            if n % 2 == 0:
                print(f"still {n}", file=sys.stderr)
        if time.monotonic() > deadline:
            raise RuntimeError("never released")
        time.sleep(0.1)
    for i in range(flood):
        print(f"flood {i}")
    for i in range(lines):
        print(f"done {i}")
    return {"waited": n}
'''
PARAMETERS = {"key": {"type": "string", "required": True},
              "token": {"type": "string", "secret": True},
              "lines": {"type": "integer"}, "chatty": {"type": "boolean"},
              "flood": {"type": "integer"}}
DROPPED = re.compile(r"^\.\.\. \((\d+) lines? dropped: live output rate limit\)$")


def gated_action(api) -> dict[str, Any]:
    return make_action(api, unique_name("live").replace("-", "_"), "gated", GATED,
                       parameters=PARAMETERS)


class Watch:
    """One execution of the gated action, its subscriber, and what the subscriber received."""

    def __init__(self, api, make_ws, action: dict[str, Any], **parameters: Any) -> None:
        self.api = api
        self.key = f"go-{uuid.uuid4().hex}"
        self.token = f"tok-{uuid.uuid4().hex}"
        self.ws: NotificationSocket = make_ws(api)
        self.execution = api.data(api.post("/api/v1/executions", json={
            "action": action["ref"],
            "parameters": {"key": self.key, "token": self.token, **parameters}}), 201)
        self.ws.subscribe("execution", self.execution["id"])
        self.messages: list[dict[str, Any]] = []

    def read_until(self, done, timeout: float = 60) -> None:
        """Read this execution's messages until `done(messages)` holds."""
        deadline = time.monotonic() + timeout
        while not done(self.messages):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"not done in {timeout} s; got {self.summary()}"
            try:  # short reads: the server's pings would restart a long socket timeout
                message = self.ws.recv(timeout=min(remaining, 2.0))
            except AssertionError:  # nothing within the read's timeout
                continue
            if message.get("entity_id") == self.execution["id"]:
                self.messages.append(message)

    def summary(self) -> list[tuple[str, Any]]:
        """What arrived, short: each message's event and its status or stream and seq."""
        return [(m["event"], m["data"].get("status") or (m["data"].get("stream"),
                                                         m["data"].get("seq")))
                for m in self.messages]

    def release(self) -> None:
        self.api.data(self.api.post("/api/v1/datastore", json={"key": self.key, "value": "go"}),
                      (200, 201))

    def outputs(self, stream: str | None = None) -> list[dict[str, Any]]:
        return [m["data"] for m in self.messages if m["event"] == "execution.output"
                and (stream is None or m["data"]["stream"] == stream)]

    def lines(self, stream: str) -> list[str]:
        return [line for data in self.outputs(stream) for line in data["lines"]]

    def status_index(self, status: str) -> int | None:
        return next((i for i, m in enumerate(self.messages)
                     if m["event"] == "execution.status_changed"
                     and m["data"]["status"] == status), None)


def test_lines_arrive_while_running_in_order_and_masked(api, make_ws):
    watch = Watch(api, make_ws, gated_action(api))
    # Both streams speak before the action may end: it runs until the test releases it.
    watch.read_until(lambda _: watch.outputs("stdout") and watch.outputs("stderr"))
    assert watch.status_index("succeeded") is None
    running = api.data(api.get(f"/api/v1/executions/{watch.execution['id']}"), 200)
    assert running["status"] == "running"

    watch.release()
    watch.read_until(lambda _: "done 2" in watch.lines("stdout")
                     and watch.status_index("succeeded") is not None)
    first_output = next(i for i, m in enumerate(watch.messages)
                        if m["event"] == "execution.output")
    assert first_output < watch.status_index("succeeded")

    for stream in ("stdout", "stderr"):
        seqs = [data["seq"] for data in watch.outputs(stream)]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs  # no gap, in order
        assert all(data["dropped"] == 0 for data in watch.outputs(stream))
    stdout = watch.lines("stdout")
    waiting = [int(line.split()[1]) for line in stdout if line.startswith("waiting ")]
    assert waiting == list(range(waiting[0], waiting[-1] + 1))
    assert all(line.endswith("token=***") for line in stdout if line.startswith("waiting "))
    assert stdout[-3:] == ["done 0", "done 1", "done 2"]
    still = [int(line.split()[1]) for line in watch.lines("stderr")]
    assert still == list(range(still[0], still[-1] + 2, 2))
    text = repr(watch.messages)
    assert watch.token not in text
    # The stored result keeps the whole output, masked, as before.
    done = wait_for_execution(api, watch.execution["id"])
    assert done["status"] == "succeeded", done
    assert "waiting 1 token=***\n" in done["result"]["stdout"]
    assert watch.token not in repr(done["result"])


def test_the_rate_bound_drops_lines_and_says_how_many_where(api, make_ws):
    flood = 2000
    watch = Watch(api, make_ws, gated_action(api), chatty=False, lines=0, flood=flood)
    watch.release()

    def accounted(_: Any) -> bool:
        lines = watch.lines("stdout")
        kept = [line for line in lines if line.startswith("flood ")]
        dropped = sum(data["dropped"] for data in watch.outputs("stdout"))
        return len(kept) + dropped == flood

    watch.read_until(accounted)
    lines = watch.lines("stdout")
    markers = [int(m.group(1)) for m in map(DROPPED.match, lines) if m]
    dropped = sum(data["dropped"] for data in watch.outputs("stdout"))
    assert dropped > 0 and sum(markers) == dropped
    kept = [int(line.split()[1]) for line in lines if line.startswith("flood ")]
    assert kept == sorted(kept) and kept[0] == 0  # in order; the first second's lines kept
    assert len(kept) < flood


def test_an_action_that_prints_nothing_sends_no_output(api, make_ws):
    action = gated_action(api)
    silent = []
    for _ in range(3):
        watch = Watch(api, make_ws, action, chatty=False, lines=0)
        watch.release()
        watch.read_until(lambda _, w=watch: w.status_index("succeeded") is not None)
        silent.append(watch)
    # A run that prints, after them: once its line is here, a silent run's would be too.
    control = Watch(api, make_ws, action, chatty=False, lines=1)
    control.release()
    control.read_until(lambda _: "done 0" in control.lines("stdout"))
    for watch in silent:
        watch.messages += [m for m in watch.ws.sync()
                           if m.get("entity_id") == watch.execution["id"]]
        assert watch.outputs() == [], watch.outputs()
        assert [m["data"]["status"] for m in watch.messages][-1] == "succeeded"
