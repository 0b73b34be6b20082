"""The platform's own processes: never root when root starts them, no key in any environment a
child could read, and a RabbitMQ vhost that only the platform's user may use (issue 14, item 1)."""

from __future__ import annotations

import os
import pwd
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from nameko_services.config import PROJECT_ROOT, keys_path, read_keys
from tests.e2e.conftest import RunningPlatform
from tests.support.e2e import load_config_with

# With the supervisor `attune up` leaves in charge: it too runs as the service user, keyless.
SERVICES = ("executor", "worker", "sensor", "notifier", "gateway", "supervisor")


def _pids(platform: RunningPlatform) -> dict[str, int]:
    return {name: int((platform.run_dir / "pids" / f"{name}.pid").read_text())
            for name in SERVICES}


def _uid(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


@pytest.mark.skipif(os.geteuid() != 0, reason="an ordinary user runs the services as itself")
def test_started_by_root_every_service_runs_as_the_service_user_who_alone_owns_the_keys(
    platform: RunningPlatform,
) -> None:
    account = pwd.getpwnam("attune")
    assert account.pw_uid != 0
    for name, pid in _pids(platform).items():
        assert _uid(pid) == account.pw_uid, name
    keys = keys_path().stat()
    assert (keys.st_uid, stat.S_IMODE(keys.st_mode)) == (account.pw_uid, 0o600)


def test_no_service_environment_holds_a_key_or_a_password(platform: RunningPlatform) -> None:
    secrets = [value for value in read_keys().values() if len(value) >= 8]
    assert len(secrets) == 4  # JWT secret, encryption keys, PostgreSQL and RabbitMQ passwords
    for name, pid in _pids(platform).items():
        environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        assert "ATTUNE_CONFIG=" in environ, name  # it is the service's environment we read
        leaked = [value[:4] + "…" for value in secrets if value in environ]
        assert not leaked, (name, leaked)


PROBE_BROKER = """
import sys
from amqp.exceptions import NotAllowed
from kombu import Connection
for uri in sys.argv[1:]:
    try:
        with Connection(uri, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
        print("connected")
    except NotAllowed as exc:
        print("refused:", exc)
"""


def test_only_the_platform_user_may_use_its_rabbitmq_vhost(platform: RunningPlatform) -> None:
    # In a process of its own: a refused connection's socket must not linger in this one's hub.
    uri = load_config_with(platform.config, platform.env)["AMQP_URI"]
    guest = uri.replace(uri.split("://", 1)[1].split("@", 1)[0], "guest:guest", 1)
    done = subprocess.run([sys.executable, "-c", PROBE_BROKER, uri, guest],
                          capture_output=True, text=True, timeout=60, check=False)
    ours, theirs = done.stdout.splitlines()
    assert ours == "connected", done.stderr
    assert re.fullmatch(r"refused: .*access to vhost .* refused for user 'guest'.*", theirs), \
        done.stdout


def test_the_operator_shell_reaches_every_service_with_the_keys_file_alone(
    platform: RunningPlatform,
) -> None:
    env = {name: value for name, value in platform.env.items() if not name.endswith(
        ("_SECRET", "_KEYS", "_PASSWORD"))}
    done = subprocess.run(
        [str(PROJECT_ROOT / ".venv" / "bin" / "attune"), "shell", "--config",
         str(platform.config)], input="print(sorted(n.rpc.executor.ping().items()), "
        "n.rpc.worker.ping()['status'], n.rpc.notifier.ping()['status'])\n",
        env=env, capture_output=True, text=True, timeout=60, check=False)
    assert "[('service', 'executor'), ('status', 'ok')] ok ok" in done.stdout, done.stderr
    assert read_keys()["ATTUNE_AMQP_PASSWORD"] not in done.stdout + done.stderr
