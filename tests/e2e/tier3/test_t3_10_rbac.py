"""T3.10 RBAC: each role does what api.md grants and is refused the rest, before processing."""

from tests.support.e2e import unique_name, wait_for_execution
from tests.support.flows import list_all, make_action

CODE = "def run(n=1):\n    return {'n': n}\n"


def forbidden(response, role: str, permission: str) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "forbidden"
    assert f"'{role}'" in error["message"] and f"'{permission}'" in error["message"]


def test_viewer_reads_but_cannot_create_or_execute(make_api):
    admin = make_api()
    viewer = make_api("viewer", admin=admin)
    pack = unique_name("rbac").replace("-", "_")
    action = make_action(admin, pack, "work", CODE)
    actions_before = list_all(admin, "/api/v1/actions")
    executions_before = list_all(admin, "/api/v1/executions")

    forbidden(viewer.post("/api/v1/actions", json={
        "pack": pack, "name": "sneaky", "runner_type": "python", "code": CODE}),
        "viewer", "write")
    forbidden(viewer.post("/api/v1/executions", json={"action": action["ref"]}),
              "viewer", "execute")
    forbidden(viewer.delete(f"/api/v1/actions/{action['id']}"), "viewer", "write")
    forbidden(viewer.post("/api/v1/datastore", json={"key": "k", "value": 1}), "viewer", "write")

    # Checked before processing: nothing was created, changed or run.
    assert list_all(admin, "/api/v1/actions") == actions_before
    assert list_all(admin, "/api/v1/executions") == executions_before
    assert admin.get("/api/v1/datastore/k").status_code == 404
    # GET works.
    assert action["ref"] in {a["ref"] for a in list_all(viewer, "/api/v1/actions")}
    assert viewer.data(viewer.get(f"/api/v1/actions/{action['id']}"))["ref"] == action["ref"]


def test_executor_runs_but_cannot_define_and_editor_defines_but_cannot_admin(make_api):
    admin = make_api()
    executor = make_api("executor", admin=admin)
    editor = make_api("editor", admin=admin)
    pack = unique_name("rbac").replace("-", "_")
    action = make_action(admin, pack, "work", CODE)

    run = executor.data(executor.post("/api/v1/executions", json={
        "action": action["ref"], "parameters": {"n": 7}}), 201)
    assert wait_for_execution(executor, run["id"])["status"] == "succeeded"
    forbidden(executor.post("/api/v1/actions", json={
        "pack": pack, "name": "x", "runner_type": "python", "code": CODE}), "executor", "write")
    forbidden(executor.post("/api/v1/secrets", json={"key": "k", "value": "v"}),
              "executor", "write")

    made = editor.data(editor.post("/api/v1/actions", json={
        "pack": pack, "name": "by_editor", "runner_type": "python", "code": CODE}), 201)
    assert editor.data(editor.patch(f"/api/v1/actions/{made['id']}",
                                    json={"description": "edited"}))["description"] == "edited"
    editor.data(editor.post("/api/v1/executions", json={"action": made["ref"]}), 201)
    forbidden(editor.post("/api/v1/users", json={
        "username": unique_name("u"), "password": "password123", "role": "admin"}),
        "editor", "admin")
    assert editor.delete(f"/api/v1/actions/{made['id']}").status_code == 204


def test_admin_has_full_crud(make_api):
    admin = make_api()
    pack = unique_name("rbac").replace("-", "_")
    action = make_action(admin, pack, "work", CODE)
    assert admin.data(admin.patch(f"/api/v1/actions/{action['id']}",
                                  json={"timeout": 30}))["timeout"] == 30
    trigger = admin.data(admin.post("/api/v1/triggers", json={
        "name": unique_name("t"), "type": "webhook", "parameters": {}}), 201)
    rule = admin.data(admin.post("/api/v1/rules", json={
        "name": unique_name("r"), "trigger": trigger["id"], "action": action["ref"]}), 201)
    admin.create_user("viewer")
    for path in (f"/api/v1/rules/{rule['id']}", f"/api/v1/triggers/{trigger['id']}",
                 f"/api/v1/actions/{action['id']}"):
        assert admin.delete(path).status_code == 204, path


def test_another_tenant_gets_404_not_403(make_api):
    owner, stranger = make_api(), make_api()
    action = make_action(owner, unique_name("rbac").replace("-", "_"), "work", CODE)
    for response in (stranger.get(f"/api/v1/actions/{action['id']}"),
                     stranger.delete(f"/api/v1/actions/{action['id']}"),
                     stranger.post("/api/v1/executions", json={"action": action["ref"]})):
        assert response.status_code == 404, response.text
