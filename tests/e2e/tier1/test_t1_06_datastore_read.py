"""T1.6 — an action reads the tenant's datastore through the attune helper."""

from tests.support.e2e import wait_for_execution
from tests.support.flows import make_action

CODE = '''
import attune

def run(key):
    return {"value": attune.datastore.get(key),
            "missing": attune.datastore.get("no.such.key"),
            "secret": attune.datastore.get("db.password")}
'''


def run_reader(api, key="api_url"):
    action = make_action(api, "reader", "read_key", CODE,
                         parameters={"key": {"type": "string", "required": True}})
    created = api.data(api.post("/api/v1/executions",
                                json={"action": action["ref"], "parameters": {"key": key}}), 201)
    return wait_for_execution(api, created["id"])


def test_action_reads_plain_and_encrypted_values_and_missing_keys_are_null(api):
    api.data(api.post("/api/v1/datastore",
                      json={"key": "api_url", "value": "https://api.example.com"}), 201)
    api.data(api.post("/api/v1/datastore", json={"key": "db.password",
                                                 "value": "s3cr3t", "encrypted": True}), 201)
    stored = api.data(api.get("/api/v1/datastore/api_url"))
    assert stored["value"] == "https://api.example.com"

    execution = run_reader(api)
    assert execution["status"] == "succeeded", execution
    assert execution["result"]["output"] == {
        "value": "https://api.example.com", "missing": None, "secret": "s3cr3t"}


def test_values_keep_their_json_type(api):
    api.data(api.post("/api/v1/datastore",
                      json={"key": "limits", "value": {"max": 5, "tags": ["a", "b"]}}), 201)
    execution = run_reader(api, "limits")
    assert execution["result"]["output"]["value"] == {"max": 5, "tags": ["a", "b"]}


def test_datastore_is_scoped_to_the_tenant(make_api):
    alice, bob = make_api(), make_api()
    alice.data(alice.post("/api/v1/datastore", json={"key": "api_url", "value": "alice-url"}),
               201)
    assert bob.get("/api/v1/datastore/api_url").status_code == 404
    execution = run_reader(bob)
    assert execution["status"] == "succeeded"
    assert execution["result"]["output"]["value"] is None
