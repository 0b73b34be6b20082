"""The README's five-minute tour works as written: a user made by `attune create-user` logs in,
then packs/hello, its webhook, its execution."""

import os
import subprocess

from tests.support.e2e import PROJECT_ROOT, login, unique_name, wait_for_execution, wait_until
from tests.support.flows import fire_webhook, list_all

ATTUNE = PROJECT_ROOT / ".venv" / "bin" / "attune"


def test_the_readme_tour_greets_ada(platform):
    # Sign-up is closed by default: the operator's command makes the user, which logs in.
    username = unique_name("demo")
    made = subprocess.run(  # printf '%s\n' demo-password | attune create-user ... --password-stdin
        [str(ATTUNE), "create-user", username, "--password-stdin",
         "--config", str(platform.config)],
        input="demo-password\n", env=platform.env or dict(os.environ), cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=60, check=False)
    assert made.returncode == 0, made.stdout + made.stderr
    assert made.stdout.strip().endswith("role admin"), made.stdout
    api = login(platform.api_url, username, "demo-password", ws_url=platform.ws_url)

    pack = api.data(api.post("/api/v1/packs",
                             json={"path": str(PROJECT_ROOT / "packs" / "hello")}), 201)
    assert pack["actions"] == ["hello.greet"] and pack["rules"] == ["hello.greet_on_webhook"]
    trigger = next(t for t in api.data(api.get("/api/v1/triggers"))
                   if t["ref"] == "hello.greeting")
    # A payload without a name fails the rule's criteria: an event, but no enforcement.
    quiet = fire_webhook(api, trigger, {"nobody": True})
    receipt = fire_webhook(api, trigger, {"name": "Ada"})
    enforcement = wait_until(
        lambda: list_all(api, "/api/v1/enforcements", event_id=receipt["event_id"]), timeout=15,
        message="the enforcement")[0]
    execution = wait_for_execution(api, enforcement["execution_id"])
    assert (execution["action_ref"], execution["status"]) == ("hello.greet", "succeeded")
    assert execution["result"]["output"] == {"message": "Hello, Ada!"}
    assert api.data(api.get(f"/api/v1/events/{quiet['event_id']}"))["payload"] == {"nobody": True}
    assert list_all(api, "/api/v1/enforcements", event_id=quiet["event_id"]) == []
    api.close()
