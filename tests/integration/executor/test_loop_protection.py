"""Loop protection: an event caused by too deep a chain of executions is refused, not run."""

import pytest

from nameko_services.domain import models
from tests.integration import rows
from tests.integration.executor.test_enforcement import deliver_event

pytestmark = pytest.mark.integration

E = models


def chained_event(engine, tenant, trigger, depth):
    return rows.insert_row(engine, E.events, tenant_id=tenant, trigger_id=trigger["id"],
                           trigger_ref=trigger["ref"], source="webhook", payload={"d": depth},
                           chain_depth=depth, caused_by_execution_id=None)


def test_an_event_at_the_limit_runs_and_one_past_it_is_refused_with_its_error_stored(
    executor, dispatch, engine, tenant, config
):
    limit = int(config["ATTUNE"].get("max_chain_depth", 10))
    action = rows.make_action(engine, tenant)
    trigger = rows.make_trigger(engine, tenant)
    rule = rows.make_rule(engine, tenant, trigger, action, notify_on_trigger=True)
    at_limit = chained_event(engine, tenant, trigger, limit)
    past = chained_event(engine, tenant, trigger, limit + 1)

    deliver_event(executor, dispatch, at_limit)
    deliver_event(executor, dispatch, past)

    [ran] = rows.rows(engine, E.events, E.events.c.id == at_limit["id"])
    [refused] = rows.rows(engine, E.events, E.events.c.id == past["id"])
    assert ran["error"] is None and ran["processed_at"] is not None
    assert refused["processed_at"] is not None
    assert f"chain depth {limit + 1} exceeds the limit of {limit}" in refused["error"]
    enforcements = rows.rows(engine, E.enforcements, E.enforcements.c.rule_id == rule["id"])
    assert [e["event_id"] for e in enforcements] == [at_limit["id"]]
    assert rows.rows(engine, E.rule_evaluations, E.rule_evaluations.c.event_id == past["id"]) == []
