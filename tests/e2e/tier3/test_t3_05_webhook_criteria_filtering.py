"""T3.5 — rules with criteria on one webhook: every call is an event, only matching rules
enforce and run, and a non-matching rule leaves an evaluation but no enforcement."""

from __future__ import annotations

from sqlalchemy import select

from nameko_services.domain.models import rule_evaluations
from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import fire_webhook, list_all, make_rule, make_trigger


def test_only_rules_whose_criteria_match_fire(api, database):
    trigger = make_trigger(api, "webhook")
    info = make_rule(api, trigger, "core.echo", criteria="{{ trigger.data.level == 'info' }}",
                     parameters={"message": "info: {{ trigger.data.msg }}"})
    error = make_rule(api, trigger, "core.echo", criteria="trigger.data.level == 'error'",
                      parameters={"message": "error: {{ trigger.data.msg }}"})

    calls = {level: fire_webhook(api, trigger, {"level": level, "msg": level.upper()})
             for level in ("info", "error", "debug")}

    events = list_all(api, "/api/v1/events", trigger_id=trigger["id"])
    assert sorted(e["id"] for e in events) == sorted(c["event_id"] for c in calls.values())

    def runs(rule):
        return list_all(api, "/api/v1/executions", rule_id=rule["id"])

    wait_until(lambda: len(runs(info)) >= 1 and len(runs(error)) >= 1, timeout=30,
               message="one run per matching rule")
    for rule, level in ((info, "info"), (error, "error")):
        [run] = runs(rule)
        assert run["event_id"] == calls[level]["event_id"]
        done = wait_for_execution(api, run["id"])
        assert done["status"] == "succeeded"
        assert done["result"]["output"] == f"{level}: {level.upper()}"

    def enforced(level):
        return {e["rule_id"] for e in list_all(api, "/api/v1/enforcements",
                                                event_id=calls[level]["event_id"])}

    assert enforced("info") == {info["id"]}
    assert enforced("error") == {error["id"]}
    # Every event was evaluated against both rules (recorded, looked up in the database, as
    # the API does not list evaluations); the debug one matched neither and enforced nothing.
    def evaluations(level):
        with database.connect() as conn:
            rows = conn.execute(select(rule_evaluations.c.rule_id, rule_evaluations.c.matched)
                                .where(rule_evaluations.c.event_id == calls[level]["event_id"]))
            return dict(rows.all())

    debug = wait_until(lambda: evaluations("debug"), timeout=30, message="debug's evaluations")
    assert debug == {info["id"]: False, error["id"]: False}
    assert evaluations("info") == {info["id"]: True, error["id"]: False}
    assert evaluations("error") == {info["id"]: False, error["id"]: True}
    assert enforced("debug") == set()
    assert len(runs(info)) == 1 and len(runs(error)) == 1
