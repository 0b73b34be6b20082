"""Rule dry-run (api.md "Testing a rule"): POST /api/v1/rules/{id}/test with a payload or a
stored event says whether the criteria match (and why not), and the parameters the rule would
send, rendered and validated — storing, publishing and running nothing."""

from __future__ import annotations

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import fire_webhook, list_all, make_action, make_rule, make_trigger

CODE = '''
def run(user_id, email, token="", note=""):
    return {"user_id": user_id}
'''
PARAMETERS = {
    "user_id": {"type": "integer", "required": True},
    "email": {"type": "string", "required": True},
    "token": {"type": "string", "secret": True},
    "note": {"type": "string"},
}


def dry_run(api, rule, body):
    return api.post(f"/api/v1/rules/{rule['id']}/test", json=body)


def counts(api):
    """How many events, enforcements, executions and audit entries the tenant has."""
    return {path: api.get(path, params={"limit": 1}).json()["pagination"]["total"]
            for path in ("/api/v1/events", "/api/v1/enforcements", "/api/v1/executions",
                         "/api/v1/audit")}


def world(api):
    action = make_action(api, "dry", "signup", CODE, parameters=PARAMETERS)
    trigger = make_trigger(api, "webhook")
    rule = make_rule(api, trigger, action["ref"],
                     criteria="{{ trigger.data.kind == 'signup' }}",
                     parameters={"user_id": "{{ trigger.data.user_id }}",
                                 "email": "{{ trigger.data.email }}",
                                 "token": "{{ datastore.api_token }}",
                                 "note": "{{ datastore.api_token }}@{{ datastore.region }}"})
    for key, value, encrypted in (("api_token", "s3cr3t-token", True),
                                  ("region", "eu-west", False)):
        assert api.post("/api/v1/datastore", json={"key": key, "value": value,
                                                   "encrypted": encrypted}).status_code == 201
    return action, trigger, rule


def test_a_matching_payload_shows_the_rendered_parameters_and_stores_nothing(api):
    action, _, rule = world(api)
    before = counts(api)
    response = dry_run(api, rule, {"payload": {"kind": "signup", "user_id": 7,
                                               "email": "a@b.c"}})
    assert response.status_code == 200, response.text
    answer = response.json()["data"]
    assert answer["matched"] is True and answer["outcome"] == "execution"
    assert answer["would_fire"] is True and answer["event_id"] is None
    assert answer["criteria"] == {"expression": rule["criteria"], "value": True, "error": None}
    assert answer["action"] == action["ref"]
    # JSON types kept; the secret parameter masked; the encrypted datastore value never read
    assert answer["parameters"] == {"user_id": 7, "email": "a@b.c", "token": "***",
                                    "note": "***@eu-west"}
    assert answer["validation_errors"] == {} and answer["parameters_error"] is None
    assert "s3cr3t-token" not in response.text
    assert counts(api) == before


def test_a_payload_that_does_not_match_says_why(api):
    _, _, rule = world(api)
    before = counts(api)
    answer = dry_run(api, rule, {"payload": {"kind": "login"}}).json()["data"]
    assert answer["matched"] is False and answer["outcome"] == "no_match"
    assert answer["criteria"]["value"] is False and answer["criteria"]["error"] is None
    assert answer["parameters"] is None and answer["would_fire"] is False
    # matching, but not what the action accepts: the execution would fail validation (a
    # missing value renders as null, which is not a string)
    invalid = dry_run(api, rule, {"payload": {"kind": "signup", "user_id": "seven"}}).json()
    assert invalid["data"]["outcome"] == "invalid_parameters"
    assert invalid["data"]["validation_errors"] == {
        "parameters.user_id": "'seven' is not of type 'integer'",
        "parameters.email": "None is not of type 'string'"}
    assert invalid["data"]["would_fire"] is False
    assert counts(api) == before


def test_template_errors_are_shown_for_criteria_and_parameters(api):
    trigger = make_trigger(api, "webhook")
    broken = make_rule(api, trigger, "core.echo", criteria="{{ trigger.data.n / 0 }}")
    answer = dry_run(api, broken, {"payload": {"n": 1}}).json()["data"]
    assert answer["outcome"] == "criteria_error" and answer["matched"] is False
    assert "ZeroDivisionError" in answer["criteria"]["error"]
    bad_parameter = make_rule(api, trigger, "core.echo",
                              parameters={"message": "{{ trigger.data.n / 0 }}"})
    answer = dry_run(api, bad_parameter, {"payload": {"n": 1}}).json()["data"]
    assert answer["outcome"] == "template_error" and answer["matched"] is True
    assert "ZeroDivisionError" in answer["parameters_error"]
    assert answer["parameters"] is None


def test_a_stored_event_by_id_and_another_tenants_event_is_404(api, make_api):
    _, trigger, rule = world(api)
    receipt = fire_webhook(api, trigger, {"kind": "signup", "user_id": 9, "email": "e@f.g"})
    # let the real run happen first, so what the dry-run leaves behind can be counted
    [real] = wait_until(lambda: list_all(api, "/api/v1/executions",
                                         event_id=receipt["event_id"]),
                        timeout=30, message="the real execution")
    assert wait_for_execution(api, real["id"])["status"] == "succeeded"
    before = counts(api)
    answer = dry_run(api, rule, {"event_id": receipt["event_id"]}).json()["data"]
    assert answer["event_id"] == receipt["event_id"] and answer["trigger_matches"] is True
    assert answer["parameters"]["user_id"] == 9 and answer["outcome"] == "execution"
    assert counts(api) == before

    other = make_api()
    other_trigger = make_trigger(other, "webhook")
    theirs = fire_webhook(other, other_trigger, {"kind": "signup"})
    response = dry_run(api, rule, {"event_id": theirs["event_id"]})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    # and their rule is not ours to test either
    their_rule = make_rule(other, other_trigger, "core.echo")
    assert dry_run(api, their_rule, {"payload": {}}).status_code == 404


def test_the_body_needs_exactly_one_of_payload_and_event_id(api):
    trigger = make_trigger(api, "webhook")
    rule = make_rule(api, trigger, "core.echo")
    for body, fields in (({}, {"event_id", "payload"}),
                         ({"payload": {}, "event_id": 1}, {"event_id", "payload"}),
                         ({"event_id": "x"}, {"event_id"}),
                         ({"payload": {}, "extra": 1}, {"extra"})):
        response = dry_run(api, rule, body)
        assert response.status_code == 422, (body, response.text)
        assert set(response.json()["error"]["details"]["fields"]) == fields


def test_a_viewer_may_test_rules_but_not_change_them(api):
    _, _, rule = world(api)
    viewer = api.create_user("viewer")
    answer = viewer.data(dry_run(viewer, rule, {"payload": {"kind": "signup", "user_id": 1,
                                                            "email": "v@w.x"}}), 200)
    assert answer["outcome"] == "execution" and answer["parameters"]["token"] == "***"
    assert viewer.patch(f"/api/v1/rules/{rule['id']}", json={"enabled": False}
                        ).status_code == 403
