"""Per-pack virtualenvs with real pip installs (T2.12, T3.19): built once, reused, isolated."""

from __future__ import annotations

import json
import os
from pathlib import Path

import eventlet
import pytest

from runners.base import Outcome, RunRequest
from runners.environments import (
    READY,
    EnvironmentBuildError,
    Environments,
    PackEnvironment,
    PackSource,
    find_python,
)
from runners.python import PythonRunner

from .conftest import FIXTURE_PACKS, HOST, sandbox

pytestmark = pytest.mark.integration


def source_of(folder: Path, owner: str = "4242", version: str = "1.0.0", **extra) -> PackSource:
    return PackSource(owner=owner, ref=folder.name, version=version, folder=folder, **extra)


def run_action(folder: Path, env: PackEnvironment, **parameters) -> dict:
    request = RunRequest(
        execution_id=1, action_ref=f"{folder.name}.which_requests", runner_type="python",
        working_dir=folder, entry_point=folder / "actions" / "which_requests.py",
        parameters=parameters, timeout_s=60, interpreter=str(env.python),
        sandbox=sandbox(folder, env),
    )
    result = PythonRunner().run(request)
    assert result.outcome is Outcome.SUCCEEDED, result
    return result.output


def test_each_pack_imports_its_own_pinned_requests(shared_envs, http_server):
    for name, version in (("py_requests_225", "2.25.0"), ("py_requests_228", "2.28.0")):
        folder = FIXTURE_PACKS / name
        env = shared_envs.ensure(source_of(folder, python="3.11"))
        output = run_action(folder, env, url=f"{http_server}/hello")
        assert output["requests_version"] == version
        assert Path(output["sys_prefix"]) == env.python.parent.parent
        assert Path(output["requests_file"]).is_relative_to(env.python.parent.parent)
        assert (output["status_code"], output["body"]) == (200, {"path": "/hello", "ok": True})


def test_two_packs_running_at_the_same_time_do_not_interfere(shared_envs):
    runs = []
    for name in ("py_requests_225", "py_requests_228"):
        folder = FIXTURE_PACKS / name
        env = shared_envs.ensure(source_of(folder, python="3.11"))
        runs.append(eventlet.spawn(run_action, folder, env, hold_seconds=1))
    a, b = (run.wait() for run in runs)
    assert a["started_at"] < b["ended_at"] and b["started_at"] < a["ended_at"]  # overlapped
    assert (a["requests_version"], b["requests_version"]) == ("2.25.0", "2.28.0")
    assert a["sys_prefix"] != b["sys_prefix"]


def test_the_virtualenv_rests_on_an_absolute_real_interpreter(shared_envs):
    env = shared_envs.ensure(source_of(FIXTURE_PACKS / "py_requests_228", python="3.11"))
    assert env.python.is_absolute()
    config = dict(line.split(" = ", 1) for line in
                  (env.python.parent.parent / "pyvenv.cfg").read_text().splitlines()
                  if " = " in line)
    assert os.path.isabs(config["home"]) and "shims" not in config["home"]
    assert os.path.realpath(env.python) == find_python("3.11")


class CountingEnvironments(Environments):
    """Counts real builds (everything else is the production code)."""

    builds = 0

    def _build(self, source, kind, folder):
        type(self).builds += 1
        super()._build(source, kind, folder)


def test_an_environment_is_built_once_and_then_reused(open_tmp, copy_fixture):
    folder = copy_fixture("py_requests_225")
    envs = CountingEnvironments(open_tmp / "envs", HOST)
    CountingEnvironments.builds = 0
    # Three runs asking at once: one builds, the others wait for it and reuse it.
    asks = [eventlet.spawn(envs.ensure, source_of(folder)) for _ in range(3)]
    paths = {ask.wait().python for ask in asks}
    assert len(paths) == 1
    assert CountingEnvironments.builds == 1
    marker = next(iter(paths)).parent.parent / READY
    built = json.loads(marker.read_text())
    assert built["pack"] == "py_requests_225" and built["kind"] == "python"
    assert envs.state(source_of(folder)).status == "ready"
    envs.ensure(source_of(folder))
    assert CountingEnvironments.builds == 1
    assert json.loads(marker.read_text())["built_at"] == built["built_at"]


def test_changed_requirements_get_a_new_environment_and_the_old_one_stays(fresh_envs,
                                                                        copy_fixture):
    folder = copy_fixture("py_requests_225")
    old = fresh_envs.ensure(source_of(folder))
    (folder / "requirements.txt").write_text("requests==2.28.0\n")
    new = fresh_envs.ensure(source_of(folder, version="1.1.0"))
    assert new.python != old.python
    # a run that started on the old environment still has it
    assert run_action(folder, old)["requests_version"] == "2.25.0"
    assert run_action(folder, new)["requests_version"] == "2.28.0"


def test_a_failed_install_reports_pips_error_and_fails_fast_until_retried(fresh_envs):
    source = source_of(FIXTURE_PACKS / "py_broken_requirements")
    with pytest.raises(EnvironmentBuildError) as caught:
        fresh_envs.ensure(source)
    message = caught.value.message
    assert message.startswith("pip install -r requirements.txt failed (exit code 1): ERROR:")
    assert "No matching distribution found for requests==0.0.0.404" in message
    state = fresh_envs.state(source)
    assert (state.status, state.error) == ("failed", message)
    assert not fresh_envs.path(source, "python").exists()  # nothing half-built is left
    with pytest.raises(EnvironmentBuildError) as again:  # the recorded error, no new pip run
        fresh_envs.ensure(source)
    assert again.value.message == message
    with pytest.raises(EnvironmentBuildError, match="No matching distribution"):
        fresh_envs.ensure(source, retry_failed=True)


def test_a_python_version_the_worker_lacks_fails_the_build(fresh_envs):
    source = source_of(FIXTURE_PACKS / "py_requests_228", python="3.99")
    with pytest.raises(EnvironmentBuildError, match=r"asks for python 3\.99"):
        fresh_envs.ensure(source)


def test_the_attune_sdk_is_importable_inside_a_pack_virtualenv(shared_envs, copy_fixture):
    folder = copy_fixture("py_requests_228")
    env = shared_envs.ensure(source_of(folder, python="3.11"))
    entry = folder / "actions" / "sdk.py"
    entry.write_text("import attune, requests\n\n"
                     "def run(name):\n"
                     "    return [attune.params['name'], requests.__version__]\n")
    entry.chmod(0o644)
    request = RunRequest(execution_id=1, action_ref="p.sdk", runner_type="python",
                         working_dir=folder, entry_point=entry, parameters={"name": "ada"},
                         timeout_s=60, interpreter=str(env.python),
                         sandbox=sandbox(folder, env))
    result = PythonRunner().run(request)
    assert (result.outcome, result.output) == (Outcome.SUCCEEDED, ["ada", "2.28.0"]), result
