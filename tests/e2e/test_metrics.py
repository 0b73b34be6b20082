"""GET /metrics with Prometheus semantics (issue 19): counters move by exactly the work done,
histograms never go back, HTTP answers are counted by route and status (a 404 and a 429 too),
and every expression of the Grafana dashboard names a metric the platform serves.

Run alone or first: the counters are the platform's, and these tests assert exact deltas (no
other test's work may run on the same platform while one of them runs).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.e2e import PROJECT_ROOT, ApiClient, wait_for_execution, wait_until
from tests.support.flows import fire_webhook, make_rule, make_trigger
from tests.support.orchestration import execute

DASHBOARD = PROJECT_ROOT / "deploy" / "grafana" / "attune.json"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(api_url: str) -> Samples:
    """Every sample of GET /metrics, by name and sorted labels (the text parsed by
    prometheus-client's own parser)."""
    response = requests.get(f"{api_url}/metrics", timeout=15)
    assert response.status_code == 200, response.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value, 0 when it is not (yet) served."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def histogram_series(samples: Samples, family: str) -> Samples:
    return {key: v for key, v in samples.items()
            if key[0] in (f"{family}_bucket", f"{family}_count", f"{family}_sum")}


def test_twenty_runs_move_the_counters_by_twenty_by_status_and_runner(platform, api):
    before = scrape(platform.api_url)
    scrapes = [before]
    ids = [execute(api, "core.noop")["id"] for _ in range(15)]
    scrapes.append(scrape(platform.api_url))  # some runs still going: a scrape mid-way
    ids += [execute(api, "core.fail")["id"] for _ in range(5)]
    for execution_id in ids:
        wait_for_execution(api, execution_id, timeout=120)
    finished = "attune_executions_finished_total"
    wait_until(lambda: value(scrape(platform.api_url), finished, status="failed",
                             runner="shell") >= value(before, finished, status="failed",
                                                      runner="shell") + 5,
               timeout=30, message="the last runs counted")
    after = scrape(platform.api_url)
    scrapes.append(after)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved(finished, status="succeeded", runner="shell") == 15
    assert moved(finished, status="failed", runner="shell") == 5
    assert moved("attune_execution_duration_seconds_count", runner="shell") == 20
    assert moved("attune_execution_queue_seconds_count") == 20
    assert moved("attune_http_requests_total", method="POST", route="/api/v1/executions",
                 status="201") == 20
    # Histograms never decrease between scrapes (no window, no recomputation).
    for family in ("attune_execution_duration_seconds", "attune_execution_queue_seconds",
                   "attune_http_request_duration_seconds"):
        for earlier, later in itertools.pairwise(scrapes):
            old, new = histogram_series(earlier, family), histogram_series(later, family)
            assert set(old) <= set(new), family
            assert all(new[key] >= old[key] for key in old), family
        assert histogram_series(after, family), family


def until_refused(user: ApiClient) -> list[int]:
    """GET /api/v1/me as `user` (a user's bucket: 10 requests, config.e2e.yaml) until a 429;
    the status codes."""
    codes: list[int] = []
    while 429 not in codes:
        assert len(codes) < 200, "the user's bucket never emptied"
        codes.append(user.get("/api/v1/me").status_code)
    return codes


def test_a_404_and_a_429_are_counted_by_route_and_status(platform, api):
    viewer = api.create_user("viewer")
    before = scrape(platform.api_url)
    assert api.get("/api/v1/no-such-thing").status_code == 404
    assert api.get("/api/v1/executions/999999999").status_code == 404
    codes = until_refused(viewer)
    after = scrape(platform.api_url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests_total = "attune_http_requests_total"
    assert moved(requests_total, method="GET", route="unmatched", status="404") == 1
    assert moved(requests_total, method="GET", route="/api/v1/executions/<execution_id>",
                 status="404") == 1
    assert moved(requests_total, method="GET", route="/api/v1/me",
                 status="429") == codes.count(429) == 1
    assert moved(requests_total, method="GET", route="/api/v1/me",
                 status="200") == codes.count(200)
    assert moved("attune_rate_limited_total", bucket="user") == 1


def test_webhooks_and_their_events_are_counted_by_outcome_and_source(platform, api):
    trigger = make_trigger(api, "webhook")
    make_rule(api, trigger, "core.noop")
    before = scrape(platform.api_url)
    fire_webhook(api, trigger, {"n": 1})
    fire_webhook(api, trigger, {"n": 2}, **{"Idempotency-Key": "once"})
    fire_webhook(api, trigger, {"n": 2}, **{"Idempotency-Key": "once"})
    refused = api.post(trigger["webhook_url"], json={},
                       headers={"X-Attune-Webhook-Token": "wrong"})
    assert refused.status_code == 401, refused.text
    after = scrape(platform.api_url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("attune_webhooks_total", outcome="accepted") == 2
    assert moved("attune_webhooks_total", outcome="duplicate") == 1
    assert moved("attune_webhooks_total", outcome="unauthorized") == 1
    assert moved("attune_events_total", source="webhook") == 2
    assert value(after, "attune_build_info", version=_version(after)) == 1
    assert value(after, "process_cpu_seconds_total") > 0


def _version(samples: Samples) -> str:
    (version,) = [dict(labels)["version"] for name, labels in samples
                  if name == "attune_build_info"]
    return version


def dashboard_expressions(panels: list[dict]) -> Iterator[str]:
    for panel in panels:
        yield from (target["expr"] for target in panel.get("targets", ()))
        yield from dashboard_expressions(panel.get("panels", []))


def test_every_dashboard_expression_names_a_metric_that_metrics_serves(platform, api):
    dashboard = json.loads(Path(DASHBOARD).read_text())
    expressions = list(dashboard_expressions(dashboard["panels"]))
    assert len(expressions) >= 8, expressions
    # The work that makes every family show samples (a labelled one has none until used).
    trigger = make_trigger(api, "webhook")
    make_rule(api, trigger, "core.noop")
    fire_webhook(api, trigger, {})
    wait_for_execution(api, execute(api, "core.noop")["id"], timeout=60)
    until_refused(api.create_user("viewer"))
    served = {name for name, _ in scrape(platform.api_url)}
    names = {name for expr in expressions
             for name in re.findall(r"\b(?:attune|process)_[a-z_]+\b", expr)}
    assert names, expressions
    assert names <= served, sorted(names - served)
