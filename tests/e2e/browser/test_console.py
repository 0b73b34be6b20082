"""The console (/ui) and the API docs (/api/docs) in a real browser, against the whole platform.

Each test drives the pages as an operator would (labels, buttons) while the API or the
platform changes things underneath, and checks what the page shows without reloading it.
"""

from __future__ import annotations

import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.conftest import RunningPlatform
from tests.support.e2e import ApiClient, fixture_pack_path, wait_for_execution
from tests.support.flows import make_action, make_rule, make_trigger
from tests.support.orchestration import (
    execute,
    inquiry_for,
    make_workflow,
    wait_for_task,
)

from .conftest import log_in

SHOW = "def run(**kw):\n    print('hello from', kw.get('name'))\n    return kw\n"
# Prints until the test sets its datastore key, so it is still running while the page watches.
GATED = """
import time
import attune


def run(key, token):
    deadline = time.monotonic() + 50
    n = 0
    while attune.datastore.get(key) is None and time.monotonic() < deadline:
        n += 1
        print(f"waiting {n} token={token}")
        time.sleep(0.2)
    print("done")
    return {"waited": n}
"""
FORM = {"type": "object", "required": ["name", "replicas"],
        "properties": {"name": {"type": "string", "minLength": 1},
                       "replicas": {"type": "integer", "minimum": 1}}}


def test_logging_in_and_a_run_turns_succeeded_without_a_reload(
        platform: RunningPlatform, api: ApiClient, page: Page,
        document_screenshot: Callable[[Page, str], None]):
    action = make_action(api, "console", "show", SHOW)
    page.goto(f"{platform.api_url}/ui/")
    page.get_by_label("Username").fill(api.user["username"])
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-error")).to_contain_text("nvalid")
    expect(page.locator("#content")).to_be_hidden()

    log_in(page, platform.api_url, api, "/ui/")
    expect(page.get_by_role("heading", name="Executions")).to_be_visible()
    expect(page.locator("#live")).to_contain_text("Live")
    page.evaluate("window.notReloaded = true")  # gone if the page were loaded again

    started = execute(api, action["ref"], {"name": "Ada"})
    row = page.locator(f"#execution-{started['id']}")
    expect(row).to_have_attribute("data-status", "succeeded")
    expect(row.locator(".status")).to_have_text("succeeded")
    expect(row.get_by_role("link")).to_have_attribute("href", f"/ui/executions/{started['id']}")
    assert page.evaluate("window.notReloaded") is True
    document_screenshot(page, "executions")

    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(row).to_have_count(0)  # the filter reaches the API: no failed run in this tenant

    # The token lives in the tab's sessionStorage: another tab asks to log in again.
    other_tab = page.context.new_page()
    other_tab.goto(f"{platform.api_url}/ui/executions/{started['id']}")
    expect(other_tab.get_by_label("Username")).to_be_visible()
    expect(other_tab.locator("#content")).to_be_hidden()


def test_a_workflow_execution_shows_its_tasks_and_their_timeline(
        platform: RunningPlatform, api: ApiClient, page: Page,
        document_screenshot: Callable[[Page, str], None]):
    show = make_action(api, "console", "show", SHOW)
    workflow = make_workflow(api, "console", "pipeline", [
        {"name": "build", "action": show["ref"], "parameters": {"name": "build"}},
        {"name": "test", "action": show["ref"], "depends_on": ["build"],
         "parameters": {"name": "test"}},
        {"name": "ship", "action": show["ref"], "depends_on": ["test"],
         "parameters": {"name": "ship"}},
    ])
    started = execute(api, workflow["ref"])
    wait_for_execution(api, started["id"], timeout=90)

    log_in(page, platform.api_url, api, f"/ui/executions/{started['id']}")
    expect(page.locator("#status")).to_have_text("succeeded")
    rows = page.locator("#children tbody tr")
    expect(rows).to_have_count(3)
    for n, task in enumerate(("build", "test", "ship")):
        expect(rows.nth(n).locator("td").nth(1)).to_have_text(task)
        expect(rows.nth(n).locator(".status")).to_have_text("succeeded")
        expect(rows.nth(n).locator(".timeline .bar")).to_be_visible()
    document_screenshot(page, "workflow")

    rows.nth(0).get_by_role("link").click()  # a task's own page: its output and its parent
    expect(page.locator("#stdout")).to_contain_text("hello from build")
    expect(page.locator("#parameters")).to_contain_text('"name": "build"')
    expect(page.get_by_role("link", name=f"#{started['id']}")).to_be_visible()


def test_a_running_execution_shows_its_output_live_and_masked(
        platform: RunningPlatform, api: ApiClient, page: Page):
    gated = make_action(api, "console", "gated", GATED, parameters={
        "key": {"type": "string", "required": True}, "token": {"type": "string", "secret": True}})
    token = f"tok-{uuid.uuid4().hex}"
    key = f"go-{uuid.uuid4().hex[:12]}"
    started = execute(api, gated["ref"], {"key": key, "token": token})
    wait_for_execution(api, started["id"], ("running",), timeout=60)

    log_in(page, platform.api_url, api, f"/ui/executions/{started['id']}")
    expect(page.locator("#status")).to_have_text("running")
    expect(page.locator("#stdout")).to_contain_text("token=***")  # lines as they are printed
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    assert token not in page.content()

    api.data(api.post("/api/v1/datastore", json={"key": key, "value": "go"}), 201)
    expect(page.locator("#status")).to_have_text("succeeded")
    expect(page.locator("#stdout")).to_contain_text("done")
    expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
    assert token not in page.content()


def test_answering_an_inquiry_from_its_form_finishes_the_workflow(
        platform: RunningPlatform, api: ApiClient, page: Page,
        document_screenshot: Callable[[Page, str], None]):
    deploy = make_action(api, "console", "deploy", "def run(**kw):\n    return kw\n")
    workflow = make_workflow(api, "console", "gated", [
        {"name": "approve", "action": "core.ask",
         "parameters": {"prompt": "Deploy to prod?", "schema": FORM, "ttl_seconds": 600}},
        {"name": "deploy", "action": deploy["ref"], "depends_on": ["approve"],
         "parameters": {"name": "{{ approve.result.name }}",
                        "replicas": "{{ approve.result.replicas }}"}},
    ])
    started = execute(api, workflow["ref"])
    ask = wait_for_task(api, started["id"], "approve", ("paused",))
    inquiry = inquiry_for(api, ask["id"])

    log_in(page, platform.api_url, api, "/ui/inquiries")
    form = page.locator(f"#inquiry-{inquiry['id']}")
    expect(form.get_by_role("heading")).to_have_text("Deploy to prod?")
    form.get_by_label("name").fill("web")
    form.get_by_label("replicas").fill("3")
    document_screenshot(page, "inquiries")
    form.get_by_label("replicas").fill("0")  # below the schema's minimum: refused, shown
    form.get_by_role("button", name="Respond").click()
    expect(page.locator("#notice")).to_contain_text("replicas")
    assert api.data(api.get(f"/api/v1/inquiries/{inquiry['id']}"))["status"] == "pending"
    form.get_by_label("replicas").fill("3")
    form.get_by_role("button", name="Respond").click()
    expect(page.get_by_text("No pending inquiries.")).to_be_visible()

    page.goto(f"{platform.api_url}/ui/executions/{started['id']}")
    expect(page.locator("#status")).to_have_text("succeeded")
    done = api.data(api.get(f"/api/v1/executions/{started['id']}"))
    assert done["status"] == "succeeded"
    deployed = wait_for_task(api, started["id"], "deploy", ("succeeded",))
    assert deployed["result"]["output"] == {"name": "web", "replicas": 3}


def test_a_rule_is_disabled_from_its_row_and_dry_run_from_the_box(
        platform: RunningPlatform, api: ApiClient, page: Page,
        document_screenshot: Callable[[Page, str], None]):
    show = make_action(api, "console", "show", SHOW,
                       parameters={"name": {"type": "string"}})
    trigger = make_trigger(api, "webhook")
    rule = make_rule(api, trigger, show["ref"], criteria="{{ trigger.data.env == 'prod' }}",
                     parameters={"name": "{{ trigger.data.who }}"})

    log_in(page, platform.api_url, api, "/ui/rules")
    row = page.locator(f"#rule-{rule['id']}")
    expect(row.locator("td").nth(1)).to_have_text(trigger["ref"])
    expect(row.locator("td").nth(2)).to_have_text(show["ref"])
    expect(row.locator(".enabled")).to_have_text("yes")

    page.get_by_label("Trigger payload (JSON)").fill('{"env": "prod", "who": "Ada"}')
    page.get_by_role("button", name="Test").click()
    expect(page.locator("#dry-result")).to_contain_text('"name": "Ada"')
    document_screenshot(page, "rules")

    row.get_by_role("button", name="Disable").click()
    expect(row.locator(".enabled")).to_have_text("no")
    expect(row.get_by_role("button", name="Enable")).to_be_visible()
    assert api.data(api.get(f"/api/v1/rules/{rule['id']}"))["enabled"] is False


def test_a_viewer_sees_no_cancel_button_where_an_executor_does(
        platform: RunningPlatform, api: ApiClient, make_api: Callable[..., ApiClient],
        open_page: Callable[[], Page]):
    started = execute(api, "core.ask", {"prompt": "Hold on", "ttl_seconds": 600})
    wait_for_execution(api, started["id"], ("paused",), timeout=30)
    path = f"/ui/executions/{started['id']}"

    viewer = log_in(open_page(), platform.api_url, make_api("viewer", admin=api), path)
    expect(viewer.locator("#status")).to_have_text("paused")
    expect(viewer.get_by_role("button", name="Cancel")).to_be_hidden()
    expect(viewer.get_by_role("button", name="Re-run")).to_be_hidden()

    executor = log_in(open_page(), platform.api_url, make_api("executor", admin=api), path)
    expect(executor.get_by_role("button", name="Re-run")).to_be_visible()
    executor.get_by_role("button", name="Cancel").click()
    expect(executor.locator("#status")).to_have_text("canceled")
    expect(executor.get_by_role("button", name="Cancel")).to_be_hidden()
    expect(viewer.locator("#status")).to_have_text("canceled")  # news over /ws, no reload
    assert api.data(api.get(f"/api/v1/executions/{started['id']}"))["status"] == "canceled"

    executor.get_by_role("button", name="Re-run").click()  # the same action and parameters
    expect(executor).not_to_have_url(f"{platform.api_url}{path}")
    again = int(executor.url.rsplit("/", 1)[1])
    rerun = api.data(api.get(f"/api/v1/executions/{again}"))
    assert (rerun["rerun_of"], rerun["action_ref"]) == (started["id"], "core.ask")
    expect(executor.locator("#status")).to_have_text("paused")

    viewer.goto(f"{platform.api_url}/ui/inquiries")  # nor a Respond button, nor an upload
    expect(viewer.get_by_role("heading", name="Inquiries")).to_be_visible()
    expect(viewer.get_by_role("button", name="Respond")).to_have_count(0)
    viewer.goto(f"{platform.api_url}/ui/packs")
    expect(viewer.locator("#packs tbody tr").first).to_be_visible()
    expect(viewer.get_by_role("button", name="Upload")).to_be_hidden()
    expect(viewer.get_by_role("button", name="Reload")).to_have_count(0)


def test_a_pack_archive_is_uploaded_and_reloaded(
        platform: RunningPlatform, api: ApiClient, page: Page, tmp_path: Path,
        document_screenshot: Callable[[Page, str], None]):
    archive = tmp_path / "test_pack.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(fixture_pack_path("test_pack"), arcname="test_pack")

    log_in(page, platform.api_url, api, "/ui/packs")
    expect(page.get_by_text("core (system)")).to_be_visible()
    expect(page.get_by_role("row", name="core (system)").get_by_role("button")).to_have_count(0)
    page.get_by_label("Pack archive (.tar.gz)").set_input_files(str(archive))
    page.get_by_role("button", name="Upload").click()
    row = page.get_by_role("row").filter(has_text="test_pack")
    expect(row.locator("td").nth(1)).to_have_text("1.0.0")
    [pack] = [p for p in api.data(api.get("/api/v1/packs")) if p["ref"] == "test_pack"]
    assert pack["archive_sha256"]
    row.get_by_role("button", name="Reload").click()
    expect(page.locator("#notice")).to_have_text("")
    document_screenshot(page, "packs")


def test_the_datastore_page_hides_encrypted_values(
        platform: RunningPlatform, api: ApiClient, page: Page,
        document_screenshot: Callable[[Page, str], None]):
    api.data(api.post("/api/v1/datastore", json={"key": "region", "value": "eu-west"}), 201)
    api.data(api.post("/api/v1/datastore", json={"key": "db_password", "value": "s3cr3t-v4lue",
                                                 "encrypted": True}), 201)
    log_in(page, platform.api_url, api, "/ui/datastore")
    expect(page.get_by_role("row", name="region")).to_contain_text('"eu-west"')
    expect(page.get_by_role("row", name="db_password")).to_contain_text("(hidden)")
    assert "s3cr3t-v4lue" not in page.content()
    document_screenshot(page, "datastore")


def test_swagger_ui_lists_the_executions_routes(platform: RunningPlatform, page: Page,
                                                 document_screenshot: Callable[[Page, str], None]):
    page.goto(f"{platform.api_url}/api/docs")
    for method, path in (("get", "/api/v1/executions"), ("post", "/api/v1/executions"),
                         ("get", "/api/v1/executions/{execution_id}"),
                         ("post", "/api/v1/executions/{execution_id}/cancel"),
                         ("post", "/api/v1/executions/{execution_id}/rerun")):
        operation = page.locator(f".opblock-{method}").filter(
            has=page.locator(f'[data-path="{path}"]'))
        expect(operation).to_have_count(1)
    expect(page.get_by_text("Attune API")).to_be_visible()
    document_screenshot(page, "api-docs")
