"""Live news goes only where someone listens (domain/presence.py), on the running platform: a
tenant nobody watches has its executions' news held back by the services that would publish
it (counted in /metrics), while a tenant with a WebSocket client, on the same platform at the
same time, gets every notification of its runs, and a synchronous run still answers."""

from __future__ import annotations

from tests.e2e.test_metrics import scrape, value
from tests.support.e2e import wait_for_execution, wait_until
from tests.support.orchestration import execute

UNWATCHED = "attune_news_unwatched_total"


def held_back(api_url: str) -> float:
    return value(scrape(api_url), UNWATCHED, event="execution.status_changed")


def test_news_of_an_unwatched_tenant_is_held_back_and_a_watched_one_gets_all(
        platform, make_api, make_ws):
    quiet, watched = make_api(), make_api()

    def a_quiet_run_is_held_back() -> bool:
        """A run of the quiet tenant: its status news not published (the services learn who
        listens in their first seconds: until then they publish everything, so try again)."""
        before = held_back(platform.api_url)
        wait_for_execution(quiet, execute(quiet, "core.noop")["id"], timeout=60)
        try:
            return wait_until(lambda: held_back(platform.api_url) >= before + 2, timeout=5)
        except AssertionError:
            return False

    wait_until(a_quiet_run_is_held_back, timeout=90, message="a quiet tenant's news held back")

    feed = make_ws(watched)
    feed.subscribe("execution")
    run = execute(watched, "core.echo", {"message": "seen"})
    got = feed.collect_until(
        lambda msg: msg.get("entity_id") == run["id"]
        and msg["data"].get("status") == "succeeded",
        keep=lambda msg: msg.get("entity_id") == run["id"])
    assert [msg["data"]["status"] for msg in got] == ["requested", "scheduled", "running",
                                                      "succeeded"]

    answer = quiet.post("/api/v1/executions?wait=30", json={"action": "core.noop"})
    assert answer.status_code == 200, answer.text  # its waiting request made it listened to
    assert answer.json()["data"]["status"] == "succeeded"
