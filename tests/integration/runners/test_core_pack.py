"""packs/core: every action does what packs.md says, run through its runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from nameko_services.config import PROJECT_ROOT
from nameko_services.domain import templating
from nameko_services.domain.pack_loader import load_pack
from runners import get_runner
from runners.base import Outcome, RunRequest, RunResult
from runners.destinations import DestinationPolicy
from tests.support.sandboxes import sandbox_for

CORE = PROJECT_ROOT / "packs" / "core"
STATE = PROJECT_ROOT / ".attune" / "test" / "sandbox"  # the sandboxes' own files


def spec(name: str) -> dict[str, Any]:
    return yaml.safe_load((CORE / "actions" / f"{name}.yaml").read_text())


def defaults(declared: dict[str, Any]) -> dict[str, Any]:
    return {k: v["default"] for k, v in declared.items() if v and "default" in v}


def run_core(name: str, allow: tuple[str, ...] = (), **parameters: Any) -> RunResult:
    """Run core.<name>; `allow` is ATTUNE.http_runner.allow (the http runner's destinations)."""
    action = spec(name)
    params = {**defaults(action.get("parameters") or {}), **parameters}
    http_config = None
    if action["runner_type"] == "http":
        http_config = templating.render(action["http_config"], {"params": params})
    request = RunRequest(
        execution_id=1, action_ref=f"core.{name}", runner_type=action["runner_type"],
        working_dir=CORE, parameters=params, timeout_s=30, http_config=http_config,
        destination_policy=DestinationPolicy.from_entries(allow),
        entry_point=CORE / action["entry_point"] if action.get("entry_point") else None,
        sandbox=sandbox_for(STATE, CORE),
    )
    return get_runner(action["runner_type"])().run(request)


def test_the_core_pack_registers():
    pack = load_pack(CORE)
    assert pack.ref == "core"
    assert {a.name for a in pack.actions} >= {"echo", "noop", "sleep", "http", "fail", "ask",
                                              "shell"}


def test_echo_prints_and_returns_its_message():
    result = run_core("echo", message="hello world")
    assert result.outcome is Outcome.SUCCEEDED
    assert result.output == "hello world"
    assert result.stdout == "hello world\n"


def test_echo_returns_structured_messages_as_they_are():
    result = run_core("echo", message={"user_id": 12345, "tags": ["a"]})
    assert result.output == {"user_id": 12345, "tags": ["a"]}
    assert result.stdout == '{"user_id": 12345, "tags": ["a"]}\n'


def test_noop_succeeds_with_no_output():
    result = run_core("noop")
    assert (result.outcome, result.output, result.exit_code) == (Outcome.SUCCEEDED, None, 0)


def test_sleep_sleeps_the_given_seconds():
    result = run_core("sleep", seconds=0.1)
    assert result.outcome is Outcome.SUCCEEDED
    assert result.output == {"seconds": 0.1}


def test_fail_exits_with_the_given_code():
    assert run_core("fail").exit_code == 1
    result = run_core("fail", exit_code=3, message="bad things")
    assert (result.outcome, result.exit_code) == (Outcome.FAILED, 3)
    assert result.stderr == "bad things\n"


def test_shell_runs_the_command():
    result = run_core("shell", cmd="echo one; echo two >&2; exit 0")
    assert result.outcome is Outcome.SUCCEEDED
    assert (result.stdout, result.stderr) == ("one\n", "two\n")
    assert run_core("shell", cmd="exit 5").exit_code == 5


def test_http_calls_the_url(datastore_server):
    datastore_server["store"]["k"] = 1
    result = run_core("http", url=f"{datastore_server['url']}/api/v1/datastore/k",
                      headers={"X-Test": "yes"}, allow=(f"127.0.0.1:{datastore_server['port']}",))
    assert result.outcome is Outcome.SUCCEEDED
    assert result.output == {"data": {"key": "k", "value": 1}}
    assert datastore_server["calls"][-1][2]["X-Test"] == "yes"


def test_http_posts_a_json_body(datastore_server):
    result = run_core("http", method="POST", url=f"{datastore_server['url']}/api/v1/datastore",
                      body={"key": "a", "value": 2},
                      allow=(f"127.0.0.1:{datastore_server['port']}",))
    assert result.status_code == 201
    assert datastore_server["store"] == {"a": 2}


def test_http_refuses_the_same_server_without_an_allow_list_entry(datastore_server):
    result = run_core("http", url=f"{datastore_server['url']}/api/v1/datastore/k")
    assert result.outcome is Outcome.FAILED
    assert result.error["type"] == "destination_refused"
    assert "a loopback address" in result.error["message"]
    assert datastore_server["calls"] == []


def test_ask_is_an_inquiry_handled_by_the_executor():
    action = spec("ask")
    assert action["runner_type"] == "inquiry"
    assert set(action["parameters"]) == {"prompt", "schema", "ttl_seconds", "default", "roles"}
    assert action["parameters"]["prompt"]["required"] is True


def test_every_entry_point_exists():
    for path in (CORE / "actions").glob("*.yaml"):
        entry = yaml.safe_load(path.read_text()).get("entry_point")
        if entry:
            assert Path(CORE / entry).is_file(), entry
