"""Pack environments without installing anything: naming, state on disk, locks, pruning."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from runners import environments as envs_mod
from runners.environments import (
    FAILED_SUFFIX,
    LOCK_SUFFIX,
    READY,
    EnvironmentBuildError,
    Environments,
    PackEnvironment,
    PackSource,
    build_environment,
    find_python,
)
from runners.sandbox import Host


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    folder = tmp_path / "pack"
    folder.mkdir()
    (folder / "requirements.txt").write_text("requests==2.28.0\n")
    return folder


@pytest.fixture
def envs(tmp_path: Path) -> Environments:
    return Environments(tmp_path / "envs", Host(state_dir=tmp_path / "sandbox"))


def source(folder: Path, **overrides) -> PackSource:
    values = {"owner": "7", "ref": "my_pack", "version": "1.0.0", "folder": folder}
    values.update(overrides)
    return PackSource(**values)


def test_a_pack_needs_the_environments_of_its_dependency_files(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    assert source(folder).kinds() == ()
    (folder / "requirements.txt").write_text("x\n")
    assert source(folder).kinds() == ("python",)
    (folder / "package.json").write_text("{}")
    assert source(folder).kinds() == ("python", "node")


def test_the_folder_names_owner_ref_version_and_digest(envs, pack):
    path = envs.path(source(pack), "python")
    assert path.parent == envs.root / "python" / "7" / "my_pack"
    assert path.name.startswith("1.0.0-")
    assert path.is_absolute()


def test_new_requirements_or_a_new_version_make_a_new_environment(envs, pack):
    before = envs.path(source(pack), "python")
    assert envs.path(source(pack, version="1.1.0"), "python") != before
    (pack / "requirements.txt").write_text("requests==2.25.0\n")
    assert envs.path(source(pack), "python") != before
    assert envs.path(source(pack, owner="8"), "python").parent != before.parent


def test_unsafe_characters_never_leave_the_root(envs, pack):
    path = envs.path(source(pack, ref="../../etc", version="1/../../x"), "python")
    assert path.resolve().is_relative_to(envs.root)


def test_the_worker_python_is_a_real_absolute_interpreter_never_a_shim():
    python = find_python(None)
    assert os.path.isabs(python)
    assert python == os.path.realpath(python)
    assert "shims" not in python
    own = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert find_python(own) == python


@pytest.mark.parametrize("version", ["3.99", "3.1"])
def test_a_python_this_worker_lacks_is_a_clear_build_error(version):
    with pytest.raises(EnvironmentBuildError, match=f"python {version}"):
        find_python(version)


def test_a_malformed_python_version_is_refused():
    with pytest.raises(EnvironmentBuildError, match=r"runtime\.python"):
        find_python("latest")


def test_installers_never_see_the_platform_settings(monkeypatch):
    monkeypatch.setenv("ATTUNE_JWT_SECRET", "top-secret")
    monkeypatch.setenv("ATTUNE_ENCRYPTION_KEYS", "k:v")
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple")
    env = build_environment()
    assert not [k for k in env if k.startswith("ATTUNE_")]
    assert env["PIP_INDEX_URL"] == "https://mirror.example/simple"
    assert env["PIP_NO_INPUT"] == "1"


def test_the_environment_feeds_only_its_own_runner():
    env = PackEnvironment(python=Path("/e/bin/python"), node_modules=Path("/n/node_modules"))
    assert env.interpreter("python") == "/e/bin/python"
    assert env.interpreter("node") is None
    assert env.module_paths("node") == ("/n/node_modules",)
    assert env.module_paths("python") == ()


def test_state_is_missing_then_ready_once_the_marker_exists(envs, pack):
    src = source(pack)
    assert envs.state(src).status == "missing"
    folder = envs.path(src, "python")
    folder.mkdir(parents=True)
    assert envs.state(src).status == "missing"  # a crashed build: no marker
    (folder / READY).write_text("{}")
    assert envs.state(src).status == "ready"
    assert envs.ensure(src).python == folder / "bin" / "python"


def test_a_recent_failure_fails_fast_with_the_recorded_error(envs, pack):
    src = source(pack)
    folder = envs.path(src, "python")
    folder.parent.mkdir(parents=True)
    failed = folder.with_name(folder.name + FAILED_SUFFIX)
    failed.write_text(json.dumps({"error": "pip install failed: ERROR: no such version"}))
    state = envs.state(src)
    assert (state.status, state.error) == ("failed", "pip install failed: ERROR: no such version")
    with pytest.raises(EnvironmentBuildError, match="no such version") as caught:
        envs.ensure(src)
    assert caught.value.error_type == "environment_failed"
    assert not folder.exists()  # nothing was built


def test_an_old_failure_is_retried(envs, pack, monkeypatch):
    src = source(pack)
    folder = envs.path(src, "python")
    folder.parent.mkdir(parents=True)
    failed = folder.with_name(folder.name + FAILED_SUFFIX)
    failed.write_text(json.dumps({"error": "old"}))
    old = time.time() - envs.failure_retry_s - 10
    os.utime(failed, (old, old))
    built = []
    monkeypatch.setattr(Environments, "_build",
                        lambda self, s, kind, f: built.append(kind) or _mark_ready(f))
    envs.ensure(src)
    assert built == ["python"]


def _mark_ready(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / READY).write_text("{}")


def test_a_build_in_progress_shows_as_building(envs, pack):
    src = source(pack)
    folder = envs.path(src, "python")
    lock = folder.with_name(folder.name + LOCK_SUFFIX)
    with envs_mod._locked(lock, 1, "test"):
        assert envs.state(src).status == "building"
        second = envs_mod._locked(lock, 0.1, "x")
        with pytest.raises(EnvironmentBuildError, match="waiting for another build"), second:
            pass
    assert envs.state(src).status == "missing"


def test_prune_keeps_the_newest_and_the_recently_used(envs, pack):
    src = source(pack)
    parent = envs.path(src, "python").parent
    now = time.time()
    ages = {"0.1-a": 5 * 3600, "0.2-b": 4 * 3600, "0.3-c": 3 * 3600, "0.4-d": 60}
    for name, age in ages.items():
        _mark_ready(parent / name)
        os.utime(parent / name / READY, (now - age, now - age))
    _mark_ready(envs.path(src, "python"))
    removed = envs.prune(src, "python", keep=2, idle_s=3600)
    # current + the most recently used one stay; of the rest, only idle ones go
    assert sorted(p.name for p in removed) == ["0.1-a", "0.2-b", "0.3-c"]
    assert (parent / "0.4-d").is_dir()
    assert envs.path(src, "python").is_dir()


def test_node_modules_is_linked_into_the_pack_and_relinked_atomically(tmp_path):
    pack = tmp_path / "pack"
    pack.mkdir()
    first, second = tmp_path / "e1" / "node_modules", tmp_path / "e2" / "node_modules"
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    envs_mod._link_node_modules(pack, first)
    assert os.readlink(pack / "node_modules") == str(first)
    envs_mod._link_node_modules(pack, second)
    assert os.readlink(pack / "node_modules") == str(second)
    assert sorted(p.name for p in pack.iterdir()) == ["node_modules"]  # no temp links left


def test_a_pack_that_ships_node_modules_keeps_them(tmp_path):
    pack = tmp_path / "pack"
    (pack / "node_modules").mkdir(parents=True)
    envs_mod._link_node_modules(pack, tmp_path / "env" / "node_modules")
    assert not (pack / "node_modules").is_symlink()


def test_a_build_refuses_dependency_files_that_reach_outside_before_any_installer_runs(
    envs, pack
):
    (pack / "requirements.txt").write_text("requests==2.28.0\n-r /etc/passwd\n")
    folder = envs.path(source(pack), "python")
    with pytest.raises(EnvironmentBuildError) as caught:
        envs.ensure(source(pack))
    assert caught.value.message == ("refused before installing: requirements.txt, line 2: "
                                    "-r '/etc/passwd': outside the pack (an absolute path)")
    assert not folder.exists()  # not even the virtualenv was made
    assert envs.state(source(pack)).error == caught.value.message  # what env_error shows
    (pack / "package.json").write_text('{"dependencies": {"x": "file:/etc"}}')
    with pytest.raises(EnvironmentBuildError, match=r"dependencies\.x: 'file:/etc'"):
        envs.ensure(source(pack), ["node"])
