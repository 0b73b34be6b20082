"""T2.3 — action A writes the datastore, action B (the next task) reads the same value."""

from tests.support.e2e import wait_until
from tests.support.flows import make_action
from tests.support.orchestration import make_workflow, run_to_end, tasks

WRITE = '''
import attune

def run(key, value, encrypted=False, ttl_seconds=None):
    attune.datastore.set(key, value, encrypted=encrypted, ttl_seconds=ttl_seconds)
    return {"wrote": key}
'''
READ = '''
import attune

def run(key):
    return {"value": attune.datastore.get(key)}
'''
PARAMS = {"key": {"type": "string", "required": True}, "value": {},
          "encrypted": {"type": "boolean"}, "ttl_seconds": {"type": "integer"}}


def write_then_read(api, pack, **write):
    writer = make_action(api, pack, "write", WRITE, parameters=PARAMS)
    reader = make_action(api, pack, "read", READ,
                         parameters={"key": {"type": "string", "required": True}})
    return make_workflow(api, pack, "write_then_read", [
        {"name": "a", "action": writer["ref"], "parameters": write},
        {"name": "b", "action": reader["ref"], "depends_on": ["a"],
         "parameters": {"key": "{{ a.result.wrote }}"}},
    ], output={"read": "{{ b.result.value }}"})


def test_b_reads_exactly_what_a_wrote_and_it_persists_for_the_tenant_only(make_api):
    api, other = make_api(), make_api()
    workflow = write_then_read(api, "ds_plain", key="config.api_url",
                               value="https://api.production.com")

    done = run_to_end(api, workflow["ref"])

    assert done["status"] == "succeeded", done
    assert done["result"]["output"] == {"read": "https://api.production.com"}
    by_name = tasks(api, done["id"])
    assert by_name["a"]["status"] == by_name["b"]["status"] == "succeeded"
    stored = api.data(api.get("/api/v1/datastore/config.api_url"))
    assert (stored["value"], stored["encrypted"]) == ("https://api.production.com", False)
    assert other.get("/api/v1/datastore/config.api_url").status_code == 404


def test_a_value_written_encrypted_reads_back_decrypted_and_is_masked_in_listings(api):
    workflow = write_then_read(api, "ds_secret", key="db.password", value={"pw": "s3cr3t"},
                               encrypted=True)

    done = run_to_end(api, workflow["ref"])

    assert done["result"]["output"] == {"read": {"pw": "s3cr3t"}}
    item = api.data(api.get("/api/v1/datastore/db.password"))
    assert item["encrypted"] is True and item["value"] == {"pw": "s3cr3t"}
    listed = [i for i in api.data(api.get("/api/v1/datastore")) if i["key"] == "db.password"]
    assert listed[0]["value"] == "***"


def test_a_ttl_set_by_the_action_is_honoured(api):
    workflow = write_then_read(api, "ds_ttl", key="short.lived", value=7, ttl_seconds=2)

    done = run_to_end(api, workflow["ref"])

    assert done["result"]["output"] == {"read": 7}
    assert api.data(api.get("/api/v1/datastore/short.lived"))["expires_at"] is not None
    wait_until(lambda: api.get("/api/v1/datastore/short.lived").status_code == 404,
               timeout=15, message="the value to expire")
