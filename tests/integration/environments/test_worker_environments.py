"""The worker builds pack environments, records env_status, and runs actions in them.

A real WorkerService in a nameko container, real PostgreSQL and RabbitMQ, real pip.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from nameko.standalone.events import event_dispatcher
from sqlalchemy import select, update

from nameko_services.domain import messages, models
from nameko_services.worker import pack_environments
from tests.integration import rows

from .conftest import FIXTURE_PACKS

pytestmark = pytest.mark.integration


@pytest.fixture
def envs_root(settings, tenant):
    """This tenant's environments under the worker's run dir; removed afterwards."""
    root = settings.run_dir.resolve() / "envs"
    yield root
    for kind in ("python", "node"):
        shutil.rmtree(root / kind / str(tenant), ignore_errors=True)


@pytest.fixture
def requests_pack(engine, pack, envs_root):
    """The `pack` row and folder turned into py_requests_228 (a fresh version each test)."""
    folder = Path(pack["source_path"])
    source = FIXTURE_PACKS / "py_requests_228"
    shutil.copy(source / "requirements.txt", folder / "requirements.txt")
    shutil.copy(source / "actions" / "which_requests.py", folder / "actions")
    return set_pack(engine, pack, version=f"1.0.{uuid.uuid4().int % 10**6}")


def set_pack(engine, pack, **values):
    with engine.begin() as conn:
        conn.execute(update(models.packs).where(models.packs.c.id == pack["id"]).values(**values))
    return pack_row(engine, pack["id"])


def pack_row(engine, pack_id):
    with engine.connect() as conn:
        return dict(conn.execute(
            select(models.packs).where(models.packs.c.id == pack_id)).mappings().one())


@pytest.fixture
def announce(config):
    """Publish pack.changed as the gateway does after a registration commits."""
    dispatch = event_dispatcher(config)

    def send(pack, op="updated"):
        dispatch(messages.GATEWAY, messages.PACK_CHANGED,
                 {"pack_id": pack["id"], "tenant_id": pack["tenant_id"], "op": op})

    return send


def wait_for_env(engine, pack_id, statuses=("ready", "failed"), deadline=120.0):
    return rows.wait_until(
        lambda: (row := pack_row(engine, pack_id))["env_status"] in statuses and row, deadline)


def test_a_registered_pack_is_built_marked_ready_and_its_actions_use_the_venv(
    engine, worker, requests_pack, announce, make_action, make_execution, schedule, finished,
    envs_root,
):
    pack = set_pack(engine, requests_pack, env_status="building")
    announce(pack)
    assert wait_for_env(engine, pack["id"])["env_status"] == "ready"
    assert pack_row(engine, pack["id"])["env_error"] is None
    action = make_action(entry_point="actions/which_requests.py")
    execution = make_execution(action)
    schedule(execution)
    row = finished(execution["id"], 60)
    assert row["status"] == "succeeded", row["result"]
    output = row["result"]["output"]
    assert output["requests_version"] == "2.28.0"
    prefix = Path(output["sys_prefix"])
    assert prefix.parent == envs_root / "python" / str(pack["tenant_id"]) / pack["ref"]
    assert prefix.name.startswith(pack["version"] + "-")


def test_a_pack_whose_requirements_fail_is_marked_failed_and_its_runs_say_why(
    engine, worker, pack, announce, make_action, make_execution, schedule, finished, write,
    envs_root,
):
    shutil.copy(FIXTURE_PACKS / "py_broken_requirements" / "requirements.txt",
                Path(pack["source_path"]) / "requirements.txt")
    entry = write("actions/noop.py", "def run():\n    return 1\n")
    pack = set_pack(engine, pack, env_status="building")
    announce(pack)
    failed = wait_for_env(engine, pack["id"])
    assert failed["env_status"] == "failed"
    assert "No matching distribution found for requests==0.0.0.404" in failed["env_error"]
    execution = make_execution(make_action(entry_point=entry))
    schedule(execution)
    row = finished(execution["id"], 60)
    assert row["status"] == "failed"
    error = row["result"]["error"]
    assert error["type"] == "environment_failed"
    assert error["message"].startswith(f"The python environment of pack {pack['ref']} could "
                                       "not be built: pip install -r requirements.txt failed")
    assert "requests==0.0.0.404" in error["message"]


def test_requirements_changed_after_registration_to_reach_outside_fail_before_pip_runs(
    engine, worker, pack, announce, envs_root
):
    # The folder changed after the registration checked it: the worker checks again.
    (Path(pack["source_path"]) / "requirements.txt").write_text("requests\n-r /etc/passwd\n")
    pack = set_pack(engine, pack, env_status="building")
    announce(pack)
    failed = wait_for_env(engine, pack["id"])
    assert failed["env_status"] == "failed"
    assert failed["env_error"] == ("refused before installing: requirements.txt, line 2: "
                                   "-r '/etc/passwd': outside the pack (an absolute path)")
    assert "root:" not in failed["env_error"]


def test_an_environment_this_host_lacks_is_built_when_the_action_runs(
    engine, worker, requests_pack, make_action, make_execution, schedule, finished
):
    assert requests_pack["env_status"] == "ready"  # e.g. a second worker host, or a wiped cache
    execution = make_execution(make_action(entry_point="actions/which_requests.py"))
    schedule(execution)
    row = finished(execution["id"], 90)
    assert row["status"] == "succeeded", row["result"]
    assert row["result"]["output"]["requests_version"] == "2.28.0"


def test_packs_left_building_are_built_when_a_worker_starts(engine, requests_pack, request):
    pack = set_pack(engine, requests_pack, env_status="building")
    request.getfixturevalue("worker")  # starts the WorkerService now
    assert wait_for_env(engine, pack["id"])["env_status"] == "ready"


def test_a_stale_build_never_overwrites_a_newer_reload(engine, requests_pack, settings):
    snapshot = requests_pack
    newer = set_pack(engine, requests_pack, version="9.9.9", env_status="building")
    assert not pack_environments.record(engine, snapshot, "ready", None)
    assert pack_row(engine, newer["id"])["env_status"] == "building"
    assert pack_environments.build_for_pack(engine, settings, newer["id"]) == "ready"
    assert pack_row(engine, newer["id"])["env_status"] == "ready"


def test_recording_the_state_a_pack_already_has_leaves_its_row_alone(engine, requests_pack):
    """A pack without dependencies is registered `ready`; the worker's `ready` must not bump
    `updated_at`, which would make the sensor service restart the pack's sensors."""
    before = pack_row(engine, requests_pack["id"])
    assert before["env_status"] == "ready"
    assert not pack_environments.record(engine, before, "ready", None)
    assert pack_row(engine, requests_pack["id"])["updated_at"] == before["updated_at"]
    assert pack_environments.record(engine, before, "failed", "pip said no")
    after = pack_row(engine, requests_pack["id"])
    assert (after["env_status"], after["env_error"]) == ("failed", "pip said no")
    assert after["updated_at"] > before["updated_at"]
