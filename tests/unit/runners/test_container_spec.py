"""container_config checking and defaults (no engine needed)."""

from __future__ import annotations

import pytest

from runners.base import RunnerError
from runners.container import ContainerSpec, engine_url


def spec(make_request, entry=None, **config):
    request = make_request(entry, runner_type="container",
                           container_config={"image": "python:3.11-slim", **config})
    return ContainerSpec.from_request(request)


def test_defaults_are_isolated_and_limited(write, make_request):
    entry = write("actions/job.py", "print(1)\n")
    s = spec(make_request, entry)
    assert (s.memory, s.cpus, s.network, s.pull) == ("256m", 1.0, "none", "if_missing")
    assert s.command == ["python3", "/action/actions/job.py"]
    assert s.mount


@pytest.mark.parametrize(("name", "source", "command"), [
    ("actions/run.sh", "echo hi\n", ["sh", "/action/actions/run.sh"]),
    ("actions/run.js", "1\n", ["node", "/action/actions/run.js"]),
    ("actions/tool", "#!/usr/bin/env python3 -u\nprint(1)\n",
     ["/usr/bin/env", "python3", "-u", "/action/actions/tool"]),
    ("actions/plain", "echo hi\n", ["sh", "/action/actions/plain"]),
])
def test_the_default_command_follows_the_shebang_or_suffix(write, make_request, name, source,
                                                            command):
    assert spec(make_request, write(name, source)).command == command


def test_an_explicit_command_wins(write, make_request):
    entry = write("actions/job.py", "print(1)\n")
    assert spec(make_request, entry, command="python3 -c 'print(2)'").command == [
        "python3", "-c", "print(2)"]
    assert spec(make_request, entry, command=["echo", "a b"]).command == ["echo", "a b"]


def test_without_entry_point_a_command_is_required(make_request):
    with pytest.raises(RunnerError, match="command: required"):
        spec(make_request)
    assert spec(make_request, command=["true"]).command == ["true"]


def test_a_folder_that_is_not_a_pack_is_never_mounted(make_request, tmp_path):
    request = make_request(None, runner_type="container", working_dir=tmp_path,
                           container_config={"image": "x", "command": ["true"]})
    assert not ContainerSpec.from_request(request).mount
    (tmp_path / "pack.yaml").write_text("ref: x\n")
    assert ContainerSpec.from_request(request).mount


@pytest.mark.parametrize(("config", "field"), [
    ({"image": ""}, "image"),
    ({"memory": "lots"}, "memory"),
    ({"memory": 0}, "memory"),
    ({"cpus": 0}, "cpus"),
    ({"cpus": "many"}, "cpus"),
    ({"network": "host"}, "network"),
    ({"network": "container:abc"}, "network"),
    ({"pull": "sometimes"}, "pull"),
    ({"command": 5}, "command"),
])
def test_a_bad_field_is_named(write, make_request, config, field):
    entry = write("actions/job.py", "print(1)\n")
    with pytest.raises(RunnerError, match=f"container_config.{field}") as caught:
        spec(make_request, entry, **config)
    assert caught.value.error_type == "invalid_container_config"


def test_docker_host_names_the_engine(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/other.sock")
    assert engine_url() == "unix:///run/other.sock"


def test_a_project_socket_closed_to_this_user_is_still_the_engine(monkeypatch, tmp_path):
    """Outside the engine's group the socket's folder cannot be searched: the run must then
    fail naming that engine, never fall back to Docker's default socket."""
    import runners.container as container

    class Closed:
        def exists(self):
            raise PermissionError(13, "Permission denied")

        def __str__(self):
            return "/tmp/attune-docker/docker.sock"

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(container, "PROJECT_SOCKET", Closed())
    assert engine_url() == "unix:///tmp/attune-docker/docker.sock"
    monkeypatch.setattr(container, "PROJECT_SOCKET", tmp_path / "missing.sock")
    assert engine_url() is None
