"""`attune rules test` (a dry-run: nothing stored) and the live output of `attune run --watch`."""

import json
import queue
import threading

from tests.support.e2e import wait_until
from tests.support.flows import fire_webhook, list_all, make_action, make_rule, make_trigger
from tests.support.orchestration import make_workflow

TALKER = '''
import time

import attune

def run(gate, **_):
    print("first line", flush=True)
    print("second line", flush=True)
    deadline = time.time() + 50
    while attune.datastore.get(gate) is None:  # the test opens it once it saw both lines
        if time.time() > deadline:
            raise TimeoutError("the gate never opened")
        time.sleep(0.25)
    return "done"
'''


def test_rules_test_says_whether_a_rule_would_fire_and_with_what(cli, api):
    trigger = make_trigger(api, "webhook")
    rule = make_rule(api, trigger, "core.echo", criteria="{{ trigger.data.level == 'error' }}",
                     parameters={"message": "{{ trigger.data.msg }}"})
    fires = cli.json("rules", "test", rule["ref"], "--payload",
                     json.dumps({"level": "error", "msg": "disk full"}))
    assert fires["would_fire"] is True and fires["parameters"] == {"message": "disk full"}
    human = cli("rules", "test", str(rule["id"]), "--payload", '{"level": "info"}')
    assert human.returncode == 1, human.stderr
    assert "no_match (would not fire)" in human.stdout
    # against a stored event, and nothing was stored or run by the dry-runs
    receipt = fire_webhook(api, trigger, {"level": "error", "msg": "stored"})
    stored = cli.json("rules", "test", rule["ref"], "--event", str(receipt["event_id"]))
    assert stored["event_id"] == receipt["event_id"]
    assert stored["parameters"] == {"message": "stored"}
    assert [e["id"] for e in list_all(api, "/api/v1/events")] == [receipt["event_id"]]
    for usage in (("rules", "test", rule["ref"]),
                  ("rules", "test", rule["ref"], "--payload", "{", )):
        assert cli(*usage).returncode == 2


def test_run_watch_prints_the_actions_lines_while_it_runs(cli, api):
    action = make_action(api, "clitalk", "talker", TALKER,
                         parameters={"gate": {"type": "string", "required": True}})
    running = cli.popen("run", action["ref"], "gate=talker_gate", "--watch")
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line.rstrip("\n"))
                                              for line in running.stdout], daemon=True)
    reader.start()
    seen: list[str] = []

    def saw_both() -> bool:
        while not lines.empty():
            seen.append(lines.get())
        return "second line" in seen

    try:
        # the action cannot end before the gate opens: these lines came while it ran
        wait_until(saw_both, timeout=60, message="the action's lines while it runs")
        assert seen.index("first line") < seen.index("second line")
        api.data(api.post("/api/v1/datastore", json={"key": "talker_gate", "value": 1}), 201)
        assert running.wait(timeout=60) == 0, running.stderr.read()
    finally:
        if running.poll() is None:
            running.kill()
    reader.join(timeout=10)
    saw_both()
    assert seen[-1] == "done"


def test_run_watch_of_a_workflow_shows_each_task_as_it_goes(cli, api):
    workflow = make_workflow(api, "cliflow", "two_steps", [
        {"name": "greet", "action": "core.echo", "parameters": {"message": "hi"}},
        {"name": "answer", "action": "core.echo", "depends_on": ["greet"],
         "parameters": {"message": "{{ greet.result }}"}},
    ])
    done = cli("run", workflow["ref"], "--watch")
    assert done.returncode == 0, done.stdout + done.stderr
    tasks = {}
    for line in done.stdout.splitlines():
        if " task " in line:
            name, _, status = line.partition(" task ")[2].partition(": ")
            tasks.setdefault(name, []).append(status)
    for name in ("greet", "answer"):
        assert tasks[name][-1] == "succeeded", done.stdout
        assert "running" in tasks[name], done.stdout
    lines = done.stdout.splitlines()
    finished = [i for i, line in enumerate(lines) if " task " in line and "succeeded" in line]
    assert max(finished) < lines.index(next(
        line for line in lines if f"{workflow['ref']} succeeded" in line))
