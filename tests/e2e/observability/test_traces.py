"""Issue 19: one trace id from the caller's `traceparent` to the last log line. A run's json log
lines carry its execution_id and trace_id; a webhook's trace reaches its event, its workflow
execution and every child, the worker's log lines and the spans exported over OTLP (receive →
evaluate → schedule → run, each the child of the one before)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import list_all, make_action, make_rule, make_trigger
from tests.support.orchestration import make_workflow, tasks

pytestmark = pytest.mark.e2e

STEP = '''
def run(label):
    print("step", label)
    return {"label": label}
'''


def traceparent(trace_id: str, span_id: str) -> str:
    return f"00-{trace_id}-{span_id}-01"


def json_lines(run_dir: Path, role: str) -> list[dict[str, Any]]:
    """The JSON log records of every process of `role` (lines that are not JSON, such as a
    library's warning printed to stderr, are left out)."""
    records = []
    for path in sorted(Path(run_dir, "logs").glob(f"{role}*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
    return records


def of_run(records: list[dict[str, Any]], execution_id: int) -> list[dict[str, Any]]:
    return [r for r in records if r.get("execution_id") == execution_id]


def spans_named(spans: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [s for s in spans if s["name"] == name]


def wait_for_spans(otlp: Any, trace_id: str, **counts: int) -> list[dict[str, Any]]:
    """The spans of `trace_id` once at least `counts[name]` of each name have arrived (each
    service exports its own, batched, so they come in any order)."""

    def arrived() -> list[dict[str, Any]]:
        found = otlp.of_trace(trace_id)
        enough = all(len(spans_named(found, name)) >= n for name, n in counts.items())
        return found if enough else []

    return wait_until(arrived, timeout=60,
                      message=lambda: f"spans {counts} of {trace_id}: {otlp.of_trace(trace_id)}")


def test_an_api_run_logs_json_with_its_ids_and_exports_its_spans(observed, tenant, otlp):
    trace, caller = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    action = make_action(tenant, "traced", "step", STEP,
                         parameters={"label": {"type": "string", "required": True}})
    response = tenant.post("/api/v1/executions", json={
        "action": action["ref"], "parameters": {"label": "api"}},
        headers={"traceparent": traceparent(trace, caller), "X-Request-Id": "obs-run-1"})
    created = tenant.data(response, 201)
    assert created["trace_id"] == trace
    assert response.headers["traceparent"].startswith(f"00-{trace}-")
    assert response.headers["X-Request-Id"] == "obs-run-1"
    done = wait_for_execution(tenant, created["id"])
    assert done["status"] == "succeeded" and done["trace_id"] == trace

    # The worker's json lines of this run name it and its trace, and the service.
    lines = wait_until(lambda: of_run(json_lines(observed.run_dir, "worker"), done["id"]),
                       timeout=30, message="the worker's log lines of the run")
    assert all(r["trace_id"] == trace and r["service"] == "worker" for r in lines), lines
    assert all({"time", "level", "message", "tenant_id"} <= r.keys() for r in lines), lines
    assert any(r["level"] == "INFO" and "succeeded" in r["message"] for r in lines), lines
    # The gateway's access line of the request, with its request id and trace.
    access = wait_until(lambda: [
        r for r in json_lines(observed.run_dir, "gateway")
        if r.get("logger") == "gateway.access" and r.get("request_id") == "obs-run-1"],
        timeout=30, message="the access log line")
    assert access[0]["route"] == "/api/v1/executions" and access[0]["status"] == 201
    assert access[0]["method"] == "POST" and access[0]["trace_id"] == trace
    assert access[0]["level"] == "INFO" and access[0]["duration_ms"] >= 0

    # Spans: receive (gateway, the caller's span its parent) → schedule → run.
    spans = wait_for_spans(otlp, trace, receive=1, schedule=1, run=1)
    [receive] = spans_named(spans, "receive")
    [schedule] = spans_named(spans, "schedule")
    [run] = spans_named(spans, "run")
    assert receive["service"] == "attune-gateway" and receive["parent_span_id"] == caller
    assert schedule["service"] == "attune-executor"
    assert schedule["parent_span_id"] == receive["span_id"]
    assert run["service"] == "attune-worker" and run["parent_span_id"] == schedule["span_id"]
    assert run["attributes"]["attune.execution_id"] == done["id"]


def test_a_webhooks_traceparent_reaches_its_workflow_children_logs_and_spans(
    observed, tenant, otlp
):
    trace, caller = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    step = make_action(tenant, "traced", "wf_step", STEP,
                       parameters={"label": {"type": "string", "required": True}})
    flow = make_workflow(tenant, "traced", "flow", [
        {"name": "first", "action": step["ref"], "parameters": {"label": "one"}},
        {"name": "second", "action": step["ref"], "depends_on": ["first"],
         "parameters": {"label": "two"}}])
    trigger = make_trigger(tenant, "webhook")
    make_rule(tenant, trigger, flow["ref"])
    response = tenant.post(trigger["webhook_url"], json={"n": 1}, headers={
        "X-Attune-Webhook-Token": trigger["webhook_token"],
        "traceparent": traceparent(trace, caller)})
    receipt = tenant.data(response, 202)
    assert receipt["trace_id"] == trace
    assert response.headers["traceparent"].startswith(f"00-{trace}-")

    event = tenant.data(tenant.get(f"/api/v1/events/{receipt['event_id']}"))
    assert event["trace_id"] == trace
    enforcement = wait_until(lambda: list_all(tenant, "/api/v1/enforcements",
                                              event_id=event["id"]), timeout=30,
                             message="the enforcement")[0]
    top = wait_for_execution(tenant, enforcement["execution_id"])
    assert top["status"] == "succeeded" and top["trace_id"] == trace
    children = tasks(tenant, top["id"])
    assert sorted(children) == ["first", "second"]
    assert {c["trace_id"] for c in children.values()} == {trace}
    # The trace finds the whole chain, and nothing else.
    chain = list_all(tenant, "/api/v1/executions", trace_id=trace)
    assert sorted(e["id"] for e in chain) == sorted(
        [top["id"], *(c["id"] for c in children.values())])
    assert [e["id"] for e in list_all(tenant, "/api/v1/events", trace_id=trace)] == [event["id"]]

    # The worker's lines of each child carry the webhook's trace.
    for child in children.values():
        lines = wait_until(lambda c=child: of_run(json_lines(observed.run_dir, "worker"),
                                                  c["id"]),
                           timeout=30, message=f"the worker's lines of {child['id']}")
        assert {r["trace_id"] for r in lines} == {trace}, lines

    # Spans: receive → evaluate → schedule (first task, planned with the event) → run.
    spans = wait_for_spans(otlp, trace, receive=1, evaluate=1, schedule=2, run=2)
    [receive] = spans_named(spans, "receive")
    [evaluate] = spans_named(spans, "evaluate")
    assert receive["parent_span_id"] == caller and receive["service"] == "attune-gateway"
    assert evaluate["parent_span_id"] == receive["span_id"]
    assert evaluate["service"] == "attune-executor"
    assert evaluate["attributes"]["attune.event_id"] == event["id"]
    first = children["first"]["id"]
    [scheduled] = [s for s in spans_named(spans, "schedule")
                   if s["attributes"]["attune.execution_id"] == first]
    [ran] = [s for s in spans_named(spans, "run")
             if s["attributes"]["attune.execution_id"] == first]
    assert scheduled["parent_span_id"] == evaluate["span_id"]
    assert ran["parent_span_id"] == scheduled["span_id"]
    assert {s["trace_id"] for s in spans} == {trace}
