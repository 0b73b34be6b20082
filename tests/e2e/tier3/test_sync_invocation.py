"""Synchronous runs (api.md "Waiting for the result"): `?wait=S` on POST /api/v1/executions and
on webhooks answers with the ended execution (200), or with it as it is when S runs out (202),
woken by the execution's own news; bad values are 400; a tenant's share of waiters is bounded.

A slow action sleeps far longer than the waits that must run out (its run cannot end before its
sleep does), and a wait that must succeed is the platform's maximum: no timing thresholds.
"""

from __future__ import annotations

import threading

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import list_all, make_action, make_rule, make_trigger

MAX_WAIT = 60  # config.e2e.yaml ATTUNE.api.max_wait_seconds
TENANT_MAX_WAITERS = 3  # config.e2e.yaml ATTUNE.api.tenant_max_waiters

SLEEPER = '''
import time

def run(seconds=20):
    time.sleep(seconds)
    return {"slept": seconds}
'''
FAILING = '''
def run(n=0):
    raise RuntimeError("boom from the action")
'''
GREETER = '''
def run(name):
    return {"greeting": "Hello, " + name + "!"}
'''


def run(api, action, parameters=None, wait=MAX_WAIT):
    return api.post(f"/api/v1/executions?wait={wait}",
                    json={"action": action, "parameters": parameters or {}},
                    timeout=MAX_WAIT + 15)


def hook(api, trigger, payload, wait=MAX_WAIT):
    return api.post(f"{trigger['webhook_url']}?wait={wait}", json=payload, timeout=MAX_WAIT + 15,
                    headers={"X-Attune-Webhook-Token": trigger["webhook_token"]})


def total(api, path):
    response = api.get(path, params={"limit": 1})
    assert response.status_code == 200, response.text
    return response.json()["pagination"]["total"]


def test_a_run_that_ends_in_time_answers_200_with_its_result(api):
    greeter = make_action(api, "sync", "greet", GREETER,
                          parameters={"name": {"type": "string", "required": True}})
    response = run(api, greeter["ref"], {"name": "Ada"})
    assert response.status_code == 200, response.text
    execution = response.json()["data"]
    assert execution["status"] == "succeeded"
    assert execution["result"]["output"] == {"greeting": "Hello, Ada!"}
    assert execution["finished_at"] is not None
    # without ?wait= nothing changes: 201 with the execution just requested
    plain = api.post("/api/v1/executions", json={"action": greeter["ref"],
                                                 "parameters": {"name": "Bo"}})
    assert plain.status_code == 201 and plain.json()["data"]["status"] == "requested"


def test_a_failing_action_answers_200_with_status_failed(api):
    failing = make_action(api, "sync", "fail", FAILING, parameters={"n": {"type": "integer"}})
    response = run(api, failing["ref"])
    assert response.status_code == 200, response.text
    execution = response.json()["data"]
    assert execution["status"] == "failed"
    assert "boom from the action" in (execution["result"]["stderr"]
                                      + str(execution["result"]["error"]))
    # invalid parameters fail at once: answered without waiting for any news
    invalid = run(api, failing["ref"], {"n": "not a number"})
    assert invalid.status_code == 200, invalid.text
    assert invalid.json()["data"]["result"]["error"]["type"] == "validation"


def test_a_run_still_going_when_the_wait_ends_is_202_and_finishes_normally(api):
    sleeper = make_action(api, "sync", "sleep", SLEEPER)
    response = run(api, sleeper["ref"], {"seconds": 8}, wait=0.5)
    assert response.status_code == 202, response.text
    execution = response.json()["data"]
    assert execution["status"] in ("requested", "scheduled", "running")
    done = wait_for_execution(api, execution["id"])
    assert done["status"] == "succeeded" and done["result"]["output"] == {"slept": 8}


def test_bad_wait_values_are_400_naming_the_parameter_and_store_nothing(api):
    trigger = make_trigger(api, "webhook")
    before = (total(api, "/api/v1/executions"), total(api, "/api/v1/events"))
    for wait in ("0", "-3", str(MAX_WAIT + 1), "soon", "nan", ""):
        for response in (run(api, "core.echo", {"message": "x"}, wait=wait),
                         hook(api, trigger, {"a": 1}, wait=wait)):
            assert response.status_code == 400, (wait, response.text)
            error = response.json()["error"]
            assert error["code"] == "bad_request"
            assert error["details"]["fields"] == {"wait": f"seconds, 0 < wait <= {MAX_WAIT}"}
            assert "'wait'" in error["message"]
    assert (total(api, "/api/v1/executions"), total(api, "/api/v1/events")) == before


def test_a_webhook_with_wait_answers_like_a_function(api):
    greeter = make_action(api, "sync", "greet_hook", GREETER,
                          parameters={"name": {"type": "string", "required": True}})
    trigger = make_trigger(api, "webhook")
    make_rule(api, trigger, greeter["ref"], criteria="{{ trigger.data.name != 'nobody' }}",
              parameters={"name": "{{ trigger.data.name }}"})
    second = make_rule(api, trigger, "core.echo", parameters={"message": "second rule"})

    response = hook(api, trigger, {"name": "Ada"})
    assert response.status_code == 200, response.text
    answer = response.json()["data"]
    assert answer["trigger_id"] == trigger["id"] and answer["event_id"]
    execution = answer["execution"]  # the first rule's, not the second's
    assert execution["action_ref"] == greeter["ref"] and execution["status"] == "succeeded"
    assert execution["result"]["output"] == {"greeting": "Hello, Ada!"}
    assert execution["event_id"] == answer["event_id"]
    others = list_all(api, "/api/v1/executions", event_id=answer["event_id"])
    assert {e["rule_id"] for e in others} >= {second["id"], execution["rule_id"]}

    # the first rule does not match: the first execution is the second rule's
    other = hook(api, trigger, {"name": "nobody"})
    assert other.status_code == 200, other.text
    assert other.json()["data"]["execution"]["rule_id"] == second["id"]
    assert other.json()["data"]["execution"]["result"]["output"] == "second rule"


def test_a_webhook_whose_event_starts_no_execution_says_why(api):
    no_rule = make_trigger(api, "webhook")
    response = hook(api, no_rule, {"a": 1})
    assert response.status_code == 200, response.text
    answer = response.json()["data"]
    assert answer["execution"] is None and answer["reason"] == "no_rule_matched"
    assert answer["error"] is None and answer["event_id"]

    filtered = make_trigger(api, "webhook")
    make_rule(api, filtered, "core.echo", criteria="{{ trigger.data.level == 'error' }}",
              parameters={"message": "x"})
    assert hook(api, filtered, {"level": "info"}).json()["data"]["reason"] == "no_rule_matched"

    broken = make_trigger(api, "webhook")
    make_rule(api, broken, "core.echo", parameters={"message": "{{ trigger.data.n / 0 }}"})
    answer = hook(api, broken, {"n": 1}).json()["data"]
    assert answer["execution"] is None and answer["reason"] == "enforcement_failed"
    assert "ZeroDivisionError" in answer["error"]


def test_a_slow_webhook_run_is_202_with_the_receipt_and_runs_on(api):
    sleeper = make_action(api, "sync", "sleep_hook", SLEEPER)
    trigger = make_trigger(api, "webhook")
    make_rule(api, trigger, sleeper["ref"], parameters={"seconds": 8})
    response = hook(api, trigger, {}, wait=0.5)
    assert response.status_code == 202, response.text
    receipt = response.json()["data"]
    assert receipt["event_id"] and receipt["trigger_id"] == trigger["id"]
    assert receipt["received_at"]
    [execution] = wait_until(lambda: list_all(api, "/api/v1/executions",
                                              event_id=receipt["event_id"]), timeout=30,
                             message="the webhook's execution")
    assert wait_for_execution(api, execution["id"])["status"] == "succeeded"


def test_waiting_requests_see_only_their_own_tenants_executions(make_api):
    alice, bob = make_api(), make_api()
    slow = make_action(bob, "sync", "sleep_other", SLEEPER)
    answers: dict[str, object] = {}
    waiting = threading.Thread(target=lambda: answers.update(
        bob=run(bob, slow["ref"], {"seconds": 8}, wait=3)))
    waiting.start()
    wait_until(lambda: list_all(bob, "/api/v1/executions"), timeout=30,
               message="bob's execution")
    quick = run(alice, "core.echo", {"message": "alice"})
    waiting.join(timeout=MAX_WAIT)
    assert quick.status_code == 200
    mine = quick.json()["data"]
    assert mine["tenant_id"] == alice.tenant_id and mine["result"]["output"] == "alice"
    theirs = answers["bob"].json()["data"]  # bob is answered with his own run, still going
    assert answers["bob"].status_code == 202 and theirs["tenant_id"] == bob.tenant_id
    assert theirs["id"] != mine["id"] and theirs["status"] != "succeeded"
    assert alice.get(f"/api/v1/executions/{theirs['id']}").status_code == 404


def test_a_tenants_share_of_waiters_is_bounded_429_and_a_cancel_wakes_them(make_api):
    api, neighbour = make_api(), make_api()
    sleeper = make_action(api, "sync", "sleep_share", SLEEPER)
    answers: list = []
    threads = [threading.Thread(target=lambda: answers.append(
        run(api, sleeper["ref"], {"seconds": 120}))) for _ in range(TENANT_MAX_WAITERS)]
    for thread in threads:
        thread.start()
    # a slot is taken before its execution is stored: all three wait once all three exist
    held = wait_until(lambda: (lambda items: items if len(items) == TENANT_MAX_WAITERS
                               else None)(list_all(api, "/api/v1/executions")),
                      timeout=30, message="three waiting runs")
    refused = run(api, sleeper["ref"], {"seconds": 1})
    assert refused.status_code == 429, refused.text
    error = refused.json()["error"]
    assert error["code"] == "too_many_waiters" and refused.headers["Retry-After"]
    assert error["details"]["scope"] == "tenant"
    assert error["details"]["limit"] == TENANT_MAX_WAITERS
    assert len(list_all(api, "/api/v1/executions")) == TENANT_MAX_WAITERS  # nothing stored
    # another tenant still waits and is answered
    assert run(neighbour, "core.echo", {"message": "n"}).status_code == 200
    for execution in held:
        assert api.post(f"/api/v1/executions/{execution['id']}/cancel").status_code == 202
    for thread in threads:
        thread.join(timeout=MAX_WAIT)
    assert sorted(r.status_code for r in answers) == [200] * TENANT_MAX_WAITERS
    assert {r.json()["data"]["status"] for r in answers} == {"canceled"}
