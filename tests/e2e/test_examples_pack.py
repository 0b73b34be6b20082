"""packs/examples (the workflow language's documented examples) runs as documented."""

from tests.support.e2e import PROJECT_ROOT, wait_for_execution
from tests.support.orchestration import (
    execute,
    inquiry_for,
    respond,
    run_to_end,
    tasks,
    wait_for_task,
)


def register_examples(api):
    return api.data(api.post("/api/v1/packs",
                             json={"path": str(PROJECT_ROOT / "packs" / "examples")}), 201)


def test_the_examples_run_as_the_documentation_says(api):
    pack = register_examples(api)
    assert set(pack["actions"]) >= {"examples.hello", "examples.deploy", "examples.nested",
                                    "examples.flaky"}

    hello = run_to_end(api, "examples.hello")
    assert hello["result"]["output"] == {"greeting": "HELLO WORLD", "length": 11}
    nested = run_to_end(api, "examples.nested")
    assert nested["result"]["output"] == {"said": "inner said HELLO NESTED"}
    flaky = run_to_end(api, "examples.flaky")
    assert (flaky["status"], flaky["attempt"]) == ("succeeded", 2)

    quiet = run_to_end(api, "examples.deploy", {"ask": False})
    assert quiet["status"] == "succeeded", quiet
    assert quiet["result"]["output"]["count"] == 2
    assert quiet["result"]["tasks"]["approve"] == "skipped"


def test_the_deploy_example_waits_for_approval(api):
    register_examples(api)
    started = execute(api, "examples.deploy", {"environment": "prod"})
    ask = wait_for_task(api, started["id"], "approve", ("paused",))
    inquiry = inquiry_for(api, ask["id"])
    assert inquiry["prompt"] == "Deploy 3 hosts to prod?"
    respond(api, inquiry["id"], {"approved": True})
    done = wait_for_execution(api, started["id"], timeout=60)
    assert done["status"] == "succeeded", done
    assert done["result"]["output"]["approved"] is True
    assert done["result"]["output"]["report"] == {"hosts": ["web-1", "web-2", "web-3"],
                                                  "approved": True}
    processed = tasks(api, done["id"])["process"]
    assert processed["result"]["output"][0] == {"host": "web-1", "key_used": "prod",
                                                "ok": True}
