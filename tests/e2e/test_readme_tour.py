"""The README's five-minute tour works as written: its bash block is read from README.md and
run as it stands (only the config, the API URL and the user name are this platform's), then
what it claims is checked over the API."""

import os
import re
import subprocess

from tests.support.e2e import PROJECT_ROOT, login, unique_name, wait_until
from tests.support.flows import fire_webhook, list_all

README_URL = "http://127.0.0.1:8080"
README_CONFIG = "--config nameko.yaml"


def tour_script() -> str:
    """The first bash block under "## A five-minute tour"."""
    section = (PROJECT_ROOT / "README.md").read_text().split("## A five-minute tour", 1)[1]
    return section.split("```bash\n", 1)[1].split("\n```", 1)[0]


def test_the_readme_tour_greets_ada_and_grace(platform, tmp_path):
    username = unique_name("demo")
    script = tour_script()
    assert README_URL in script and README_CONFIG in script, script
    script = (re.sub(r"\bdemo\b(?!-)", username, script)
              .replace(README_URL, platform.api_url)
              .replace(README_CONFIG, f"--config {platform.config}"))
    env = {k: v for k, v in (platform.env or os.environ).items()
           if k not in ("ATTUNE_URL", "ATTUNE_TOKEN")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / ".config"))
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "role admin" in done.stdout  # create-user
    assert f"Logged in to {platform.api_url} as {username}" in done.stdout
    assert "pack hello" in done.stdout and "environment ready" in done.stdout
    assert "hello.greet succeeded" in done.stdout
    assert '"message": "Hello, Ada!"' in done.stdout

    # Step 4's webhook: the rule ran the action for Grace.
    api = login(platform.api_url, username, "demo-password", ws_url=platform.ws_url)

    def outputs() -> list:
        return [e["result"]["output"] for e in list_all(
            api, "/api/v1/executions", action="hello.greet") if e["status"] == "succeeded"]

    wait_until(lambda: {"message": "Hello, Grace!"} in outputs(), timeout=30,
               message=lambda: f"the webhook's execution (outputs so far: {outputs()})")
    # A payload without a name fails the rule's criteria: an event, but no enforcement.
    trigger = next(t for t in api.data(api.get("/api/v1/triggers"))
                   if t["ref"] == "hello.greeting")
    quiet = fire_webhook(api, trigger, {"nobody": True})
    assert api.data(api.get(f"/api/v1/events/{quiet['event_id']}"))["payload"] == {"nobody": True}
    assert list_all(api, "/api/v1/enforcements", event_id=quiet["event_id"]) == []
    api.close()
