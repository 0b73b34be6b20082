"""T2.4 — task parameters are Jinja2 templates over trigger data, params, results, datastore."""

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import fire_webhook, list_all, make_action, make_rule, make_trigger
from tests.support.orchestration import make_workflow, run_to_end, tasks

KEYS = '''
def run():
    return {"api_key": "k-123", "status": "ok", "nested": {"list": [1, 2, 3]}}
'''
SHOW = '''
def run(**parameters):
    return parameters
'''


def test_every_context_source_resolves_with_its_json_type(api):
    api.data(api.post("/api/v1/datastore",
                      json={"key": "config.api_url", "value": "https://api.example.com"}), 201)
    keys = make_action(api, "tmpl", "keys", KEYS)
    show = make_action(api, "tmpl", "show", SHOW)
    workflow = make_workflow(api, "tmpl", "context", [
        {"name": "task_1", "action": keys["ref"]},
        {"name": "task_2", "action": show["ref"], "depends_on": ["task_1"], "parameters": {
            "user_email": "{{ trigger.data.user.email }}",
            "event_email": "{{ event.data.user.email }}",
            "region": "{{ execution.params.region }}",
            "alias": "{{ params.region | upper }}",
            "api_url": "{{ datastore.config.api_url }}",
            "previous_result": "{{ task_1.result.status }}",
            "api_key": "{{ task_1.result.api_key }}",
            "typed_list": "{{ task_1.result.nested.list }}",
            "count": "{{ task_1.result.nested.list | length }}",
            "sentence": "key={{ task_1.result.api_key }} for {{ trigger.data.user.email }}",
            "missing": "{{ task_1.result.no.such.path }}",
            "missing_trigger": "{{ trigger.data.absent }}",
            "task_status": "{{ task_1.status }}",
        }},
        {"name": "each", "action": show["ref"], "depends_on": ["task_1"],
         "with_items": "{{ task_1.result.nested.list }}",
         "parameters": {"iteration_item": "{{ item }}", "index": "{{ item_index }}"}},
    ], parameters={"region": {"type": "string", "default": "eu"}})
    trigger = make_trigger(api, "webhook")
    rule = make_rule(api, trigger, workflow["ref"], parameters={"region": "us"})
    fire_webhook(api, trigger, {"user": {"email": "ada@example.com"}})

    started = wait_until(lambda: list_all(api, "/api/v1/executions", rule_id=rule["id"]),
                         timeout=30, message="the rule's execution")[0]
    done = wait_for_execution(api, started["id"])

    assert done["status"] == "succeeded", done
    received = tasks(api, done["id"])["task_2"]["parameters"]
    assert received == {
        "user_email": "ada@example.com",
        "event_email": "ada@example.com",
        "region": "us",
        "alias": "US",
        "api_url": "https://api.example.com",
        "previous_result": "ok",
        "api_key": "k-123",
        "typed_list": [1, 2, 3],
        "count": 3,
        "sentence": "key=k-123 for ada@example.com",
        "missing": None,
        "missing_trigger": None,
        "task_status": "succeeded",
    }
    each = tasks(api, done["id"])["each"]
    assert each["result"]["output"] == [{"iteration_item": n, "index": i}
                                        for i, n in enumerate([1, 2, 3])]


def test_a_template_error_fails_the_task_with_a_message_naming_task_and_expression(api):
    keys = make_action(api, "tmpl_bad", "keys", KEYS)
    show = make_action(api, "tmpl_bad", "show", SHOW)
    # A template that does not even parse is refused when the workflow is defined...
    refused = api.post("/api/v1/actions", json={
        "pack": "tmpl_bad", "name": "unparsable", "runner_type": "workflow",
        "workflow": {"tasks": [{"name": "t", "action": show["ref"],
                                "parameters": {"v": "{{ task_1.result | no_such_filter }}"}}]}})
    assert refused.status_code == 422
    assert "workflow.tasks.0.parameters" in refused.json()["error"]["details"]["fields"]
    # ...one that parses but cannot be evaluated fails its task when it runs.
    workflow = make_workflow(api, "tmpl_bad", "broken", [
        {"name": "task_1", "action": keys["ref"]},
        {"name": "task_2", "action": show["ref"], "depends_on": ["task_1"],
         "parameters": {"value": "{{ task_1.result.api_key / 0 }}"}},
    ])

    done = run_to_end(api, workflow["ref"])

    assert done["status"] == "failed"
    failed = tasks(api, done["id"])["task_2"]
    assert failed["status"] == "failed" and failed["started_at"] is None
    error = failed["result"]["error"]
    assert error["type"] == "template"
    assert "task_2" in error["message"]
    assert "task_1.result.api_key / 0" in error["message"]
    assert done["result"]["error"]["type"] == "template"
    assert "task_2" in done["result"]["error"]["message"]
