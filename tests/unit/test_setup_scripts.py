"""scripts/lib.sh: progress never lands in a captured value (a minimal Debian broke on it)."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def lib_sh(snippet: str, path_prefix: Path | None = None) -> subprocess.CompletedProcess:
    """Run `snippet` in bash after sourcing scripts/lib.sh."""
    env = dict(os.environ)
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}:{env['PATH']}"
    return subprocess.run(["bash", "-c", f'source "{ROOT}/scripts/lib.sh"; {snippet}'],
                          capture_output=True, text=True, env=env, timeout=30, check=False)


def test_progress_lines_go_to_standard_error():
    done = lib_sh('captured="$(say installing something)"; printf "[%s]" "$captured"')
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]"
    assert "installing something" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="apt_install asks for sudo when not root")
def test_apt_output_is_not_captured_by_a_caller(tmp_path):
    fake = tmp_path / "apt-get"
    fake.write_text('#!/bin/sh\necho "apt says: $*"\necho "apt warns" >&2\n')
    fake.chmod(0o755)
    done = lib_sh('captured="$(apt_install curl)"; printf "[%s]" "$captured"', tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]"
    assert "installing curl with apt" in done.stderr and "apt warns" in done.stderr


def test_the_interpreter_found_is_one_absolute_path_that_makes_virtualenvs():
    done = lib_sh("find_python")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("/"), done.stdout
    probe = subprocess.run([lines[0], "-c", "import ensurepip, sys; print(sys.version_info[:2])"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "(3, 11)"


def test_the_readme_tour_that_fresh_check_runs_is_found():
    done = subprocess.run(["bash", "-c", f'source <(sed -n "/^readme_tour()/,/^}}/p" '
                           f'"{ROOT}/scripts/fresh-check.sh"); ROOT="{ROOT}"; readme_tour'],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# 1.") and "```" not in done.stdout
    assert "attune create-user" in done.stdout and "attune login" in done.stdout
    assert "attune executions list" in done.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="the RabbitMQ configuration is root's")
def test_rabbitmq_is_configured_to_listen_on_loopback_only(tmp_path):
    (tmp_path / "rabbitmq.conf").write_text("listeners.tcp.default = 5672\nloopback_users = none\n")
    snippet = f'RABBITMQ_CONF_DIR="{tmp_path}"; need_root_or_sudo x; '
    first = lib_sh(snippet + "if rabbitmq_on_loopback; then echo changed; else echo same; fi")
    again = lib_sh(snippet + "if rabbitmq_on_loopback; then echo changed; else echo same; fi")
    assert (first.stdout, again.stdout) == ("changed\n", "same\n"), first.stderr + again.stderr
    assert (tmp_path / "rabbitmq.conf").read_text() == (
        "loopback_users = none\nlisteners.tcp.local = 127.0.0.1:5672\n")
