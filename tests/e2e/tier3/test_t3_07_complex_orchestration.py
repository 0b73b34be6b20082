"""T3.7 — webhook → datastore threshold check → inquiry → multi-step workflow → datastore
update → notification, with the conditional path taken only above the threshold."""

from tests.support.e2e import wait_for_execution, wait_until
from tests.support.flows import fire_webhook, list_all, make_action, make_rule, make_trigger
from tests.support.orchestration import inquiry_for, make_workflow, respond, tasks

CHECK = '''
import attune

def run(value):
    threshold = attune.datastore.get("alerts.threshold", 100)
    return {"value": value, "threshold": threshold, "exceeded": value > threshold}
'''
STEP = '''
def run(step, target):
    return {"step": step, "target": target}
'''
RECORD = '''
import attune

def run(value, approved_by, steps):
    record = {"value": value, "approved_by": approved_by, "steps": steps}
    attune.datastore.set("alerts.last_remediation", record)
    return record
'''
APPROVAL = {"type": "object", "properties": {"approved": {"type": "boolean"},
                                             "by": {"type": "string"}},
            "required": ["approved"]}


def build(api):
    check = make_action(api, "ops", "check_threshold", CHECK,
                        parameters={"value": {"type": "number", "required": True}})
    step = make_action(api, "ops", "step", STEP, parameters={
        "step": {"type": "string"}, "target": {"type": "string"}})
    record = make_action(api, "ops", "record", RECORD, parameters={
        "value": {}, "approved_by": {}, "steps": {}})
    remediate = make_workflow(api, "ops", "remediate", [
        {"name": "drain", "action": step["ref"],
         "parameters": {"step": "drain", "target": "{{ params.target }}"}},
        {"name": "restart", "action": step["ref"], "depends_on": ["drain"],
         "parameters": {"step": "restart", "target": "{{ drain.result.target }}"}},
        {"name": "verify", "action": step["ref"], "depends_on": ["restart"],
         "parameters": {"step": "verify", "target": "{{ restart.result.target }}"}},
    ], parameters={"target": {"type": "string", "required": True}},
        output={"steps": ["{{ drain.result.step }}", "{{ restart.result.step }}",
                          "{{ verify.result.step }}"]})
    return make_workflow(api, "ops", "pipeline", [
        {"name": "check", "action": check["ref"], "parameters": {"value": "{{ params.value }}"}},
        {"name": "approve", "action": "core.ask", "depends_on": ["check"],
         "when": "{{ check.result.exceeded }}",
         "parameters": {"prompt": "Value {{ check.result.value }} is over "
                                  "{{ check.result.threshold }}: remediate?",
                        "schema": APPROVAL, "ttl_seconds": 600}},
        {"name": "remediate", "action": remediate["ref"], "depends_on": ["approve"],
         "when": "{{ approve.result.approved }}",
         "parameters": {"target": "{{ trigger.data.host }}"}},
        {"name": "record", "action": record["ref"], "depends_on": ["remediate"],
         "when": "{{ remediate.status == 'succeeded' }}",
         "parameters": {"value": "{{ check.result.value }}",
                        "approved_by": "{{ approve.result.by }}",
                        "steps": "{{ remediate.result.steps }}"}},
        {"name": "notify", "action": "core.echo", "depends_on": ["record"],
         "parameters": {"message": "{{ 'remediated ' ~ trigger.data.host if record.result "
                                   "else 'nothing to do for ' ~ trigger.data.host }}"}},
    ], parameters={"value": {"type": "number", "required": True}},
        output={"notice": "{{ notify.result }}", "record": "{{ record.result }}"})


def pipeline_execution(api, rule, receipt):
    enforcement = wait_until(
        lambda: list_all(api, "/api/v1/enforcements", event_id=receipt["event_id"]),
        timeout=30, message="the enforcement")[0]
    assert enforcement["rule_id"] == rule["id"]
    return enforcement["execution_id"]


def test_the_full_loop_runs_in_order_and_only_above_the_threshold(api, make_ws):
    api.data(api.post("/api/v1/datastore", json={"key": "alerts.threshold", "value": 100}),
             (200, 201))
    pipeline = build(api)
    trigger = make_trigger(api, "webhook")
    rule = make_rule(api, trigger, pipeline["ref"],
                     parameters={"value": "{{ trigger.data.value }}"})
    feed = make_ws(api)
    feed.subscribe("inquiry")
    feed.subscribe("execution")

    # Over the threshold: the inquiry pauses the pipeline until someone approves.
    hot = pipeline_execution(api, rule, fire_webhook(api, trigger, {"value": 150,
                                                                    "host": "web-1"}))
    wait_for_execution(api, hot, ("paused",), timeout=30)
    ask = tasks(api, hot)["approve"]
    inquiry = inquiry_for(api, ask["id"])
    assert inquiry["prompt"] == "Value 150 is over 100: remediate?"
    assert "remediate" not in tasks(api, hot)
    respond(api, inquiry["id"], {"approved": True, "by": "oncall"})
    done = wait_for_execution(api, hot, timeout=90)

    assert done["status"] == "succeeded", done
    record = {"value": 150, "approved_by": "oncall", "steps": ["drain", "restart", "verify"]}
    assert done["result"]["output"] == {"notice": "remediated web-1", "record": record}
    by_name = tasks(api, hot)
    order = ["check", "approve", "remediate", "record", "notify"]
    finished = [by_name[n]["finished_at"] for n in order]
    assert finished == sorted(finished)
    inner = tasks(api, by_name["remediate"]["id"])
    assert [inner[n]["result"]["output"]["target"] for n in ("drain", "restart",
                                                             "verify")] == ["web-1"] * 3
    # The datastore update persists.
    assert api.data(api.get("/api/v1/datastore/alerts.last_remediation"))["value"] == record
    # Notifications were delivered: the inquiry, then the pipeline's success.
    seen = feed.collect_until(
        lambda m: m.get("entity_id") == hot and m["data"]["status"] == "succeeded",
        timeout=30, keep=lambda m: m.get("entity_id") in (hot, inquiry["id"]))
    events = [(m["entity_type"], m["event"]) for m in seen]
    assert ("inquiry", "inquiry.created") in events
    assert ("inquiry", "inquiry.responded") in events

    # Under the threshold: no inquiry, no remediation, and the datastore stays as it was.
    cool = pipeline_execution(api, rule, fire_webhook(api, trigger, {"value": 20,
                                                                     "host": "web-2"}))
    quiet = wait_for_execution(api, cool, timeout=60)
    assert quiet["status"] == "succeeded", quiet
    assert quiet["result"]["output"] == {"notice": "nothing to do for web-2", "record": None}
    assert quiet["result"]["tasks"] == {"check": "succeeded", "approve": "skipped",
                                        "remediate": "skipped", "record": "skipped",
                                        "notify": "succeeded"}
    assert api.data(api.get("/api/v1/datastore/alerts.last_remediation"))["value"] == record
