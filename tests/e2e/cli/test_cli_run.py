"""`attune run` and `attune executions`: results, live status changes, exit codes, --json,
the tree of a with-items parent, and answering an inquiry a run waits on."""

import json

from tests.support.flows import make_action

ITEM_CODE = '''
def run(item, **_):
    return item.upper()
'''


def test_run_waits_for_the_result_and_exits_0(cli):
    done = cli("run", "core.echo", "message=hello from the cli")
    assert done.returncode == 0, done.stderr
    assert "core.echo succeeded" in done.stdout
    assert "hello from the cli" in done.stdout

    execution = cli.json("run", "core.echo", 'message={"n": 3, "list": [1, 2]}')
    assert execution["status"] == "succeeded"
    assert execution["parameters"] == {"message": {"n": 3, "list": [1, 2]}}  # parsed as JSON
    assert execution["result"]["output"] == {"n": 3, "list": [1, 2]}


def test_run_watch_prints_the_status_changes_then_the_result(cli):
    done = cli("run", "core.echo", "message=watched", "--watch")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    statuses = [line.rsplit(": ", 1)[1] for line in lines if " execution " in line
                and line.rsplit(": ", 1)[-1] in ("requested", "scheduled", "running",
                                                 "succeeded")]
    assert statuses[0] == "requested" and statuses[-1] == "succeeded", done.stdout
    assert len(statuses) == len(set(statuses))  # each change once
    assert lines[-1] == "watched"


def test_a_failing_action_exits_1_and_says_why(cli):
    done = cli("run", "core.fail", "exit_code=3")
    assert done.returncode == 1
    assert "core.fail failed" in done.stdout
    assert "nonzero_exit" in done.stderr
    failed = cli("run", "core.fail", "exit_code=3", "--json")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["result"]["exit_code"] == 3


def test_a_run_that_outlasts_its_timeout_exits_3_and_a_cancel_ends_it_canceled(cli):
    done = cli("run", "core.sleep", "seconds=60", "--timeout", "1", "--json")
    assert done.returncode == 3
    still = json.loads(done.stdout)
    assert still["status"] not in ("succeeded", "failed", "canceled")
    assert f"attune executions tail {still['id']}" in done.stderr
    assert cli("executions", "cancel", str(still["id"])).returncode == 0
    tail = cli("executions", "tail", str(still["id"]))
    assert tail.returncode == 3 and "canceled" in tail.stdout


def test_usage_and_api_errors_exit_2_with_a_readable_message(cli, make_cli):
    missing = cli("run")
    assert missing.returncode == 2 and "Missing argument 'ACTION'" in missing.stderr
    not_a_pair = cli("run", "core.echo", "message")
    assert not_a_pair.returncode == 2 and "'message' is not key=value" in not_a_pair.stderr
    unknown = cli("run", "nope.nope")
    assert unknown.returncode == 2
    assert "attune: error: Action nope.nope not found (404 not_found)" in unknown.stderr
    invalid = cli("executions", "list", "--limit", "0")
    assert invalid.returncode == 2
    nobody = make_cli("nobody")("whoami", ATTUNE_URL="http://127.0.0.1:1", ATTUNE_TOKEN="x")
    assert nobody.returncode == 2
    assert "cannot reach the Attune API at http://127.0.0.1:1: connection refused" in (
        nobody.stderr)


def test_executions_list_and_get_show_a_with_items_parent_and_its_children(cli, api):
    action = make_action(api, "fruit", "upper", ITEM_CODE, with_items="{{ items }}",
                         parameters={"items": {"type": "array", "required": True}})
    parent = cli.json("run", action["ref"], 'items=["apple", "kiwi", "plum"]')
    assert parent["status"] == "succeeded"

    shown = cli.json("executions", "get", str(parent["id"]))
    kids = shown["children"]
    assert sorted((k["item_index"], k["result"]["output"]) for k in kids) == [
        (0, "APPLE"), (1, "KIWI"), (2, "PLUM")]
    assert all(k["parent_execution_id"] == parent["id"] for k in kids)
    tree = cli("executions", "get", str(parent["id"]))
    assert tree.returncode == 0
    for kid in kids:
        assert f"{kid['id']} item {kid['item_index']} fruit.upper succeeded" in tree.stdout

    # The items run the parent's action: the list has all four, newest first.
    listed = cli.json("executions", "list", "--action", action["ref"], "--limit", "10")
    assert [e["id"] for e in listed] == sorted([parent["id"], *(k["id"] for k in kids)],
                                               reverse=True)
    assert [e["id"] for e in cli.json("executions", "list", "--action", action["ref"],
                                      "--limit", "2")] == [e["id"] for e in listed[:2]]
