"""scripts/docker.sh: the engine's folder and socket are root's and the services' group's only
(the group when it exists, root alone otherwise), whatever state an older engine left."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown and chgrp need root")


def docker_sh(engine_dir: Path, group: str, snippet: str) -> subprocess.CompletedProcess:
    """Run `snippet` after sourcing scripts/docker.sh (which then runs no command)."""
    env = {**os.environ, "ATTUNE_DOCKER_DIR": str(engine_dir), "ATTUNE_SERVICE_GROUP": group}
    return subprocess.run(["bash", "-c", f'source "{ROOT}/scripts/docker.sh"; {snippet}'],
                          capture_output=True, text=True, env=env, timeout=30, check=False)


def access(path: Path) -> tuple[int, int, int]:
    info = path.lstat()
    return info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)


def gid_of(name: str) -> int:
    return int(subprocess.run(["getent", "group", name], capture_output=True, text=True,
                              check=True).stdout.split(":")[2])


@pytest.fixture
def engine_dir(tmp_path: Path) -> Path:
    return tmp_path / "engine"


def unix_socket(path: Path, mode: int, gid: int) -> None:
    """A socket as a dockerd with the package's defaults leaves it (group docker, say)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))
    os.chown(path, 0, gid)
    path.chmod(mode)


def test_with_the_services_group_the_folder_is_entered_and_the_socket_used_by_it_alone(
    engine_dir
):
    group = "nogroup"  # an existing system group stands in for `attune`
    done = docker_sh(engine_dir, group, "secure_engine; engine_group")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == group
    assert access(engine_dir) == (0, gid_of(group), 0o710)  # no listing, nothing for others
    unix_socket(engine_dir / "docker.sock", 0o666, 0)
    assert docker_sh(engine_dir, group, "engine_secured").returncode == 1
    done = docker_sh(engine_dir, group, "secure_engine && engine_secured")
    assert done.returncode == 0, done.stderr
    assert access(engine_dir / "docker.sock") == (0, gid_of(group), 0o660)


def test_without_the_group_folder_and_socket_are_roots_alone(engine_dir):
    engine_dir.mkdir(mode=0o755)
    unix_socket(engine_dir / "docker.sock", 0o660, gid_of("nogroup"))
    done = docker_sh(engine_dir, "no-such-group-here", "secure_engine; engine_group")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "root"
    assert access(engine_dir) == (0, 0, 0o700)
    assert access(engine_dir / "docker.sock") == (0, 0, 0o660)


def test_a_folder_someone_else_made_first_is_never_adopted(engine_dir):
    engine_dir.mkdir()
    os.chown(engine_dir, 65534, 65534)
    done = docker_sh(engine_dir, "nogroup", "secure_engine")
    assert done.returncode != 0
    assert "belongs to uid 65534, not root" in done.stderr
    assert access(engine_dir)[:2] == (65534, 65534)  # left as it was


def test_a_link_in_place_of_the_folder_is_refused(engine_dir, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    engine_dir.symlink_to(tmp_path / "elsewhere")
    done = docker_sh(engine_dir, "nogroup", "secure_engine")
    assert done.returncode != 0 and "is a symbolic link" in done.stderr


def test_dockerd_is_started_with_the_engines_group():
    """--group decides the socket's group from the start (the package's default: docker)."""
    script = (ROOT / "scripts" / "docker.sh").read_text()
    assert '--group "$(engine_group)"' in script
