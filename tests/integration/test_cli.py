"""The `attune` command: keys, database preparation, process control and a whole up/down."""

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys

import pytest
import requests
from kombu import Connection
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from nameko_services import cli
from nameko_services.config import PROJECT_ROOT
from tests.integration.rows import wait_until

pytestmark = pytest.mark.integration

ATTUNE = [sys.executable, "-m", "nameko_services.cli"]


def test_keys_file_is_created_once_private_and_completed_when_a_key_is_missing(tmp_path):
    keys = tmp_path / "nested" / "keys.env"
    cli.ensure_keys(keys)
    first = keys.read_text()
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in first.splitlines() if "=" in line)
    assert len(values["ATTUNE_JWT_SECRET"]) >= 48
    assert values["ATTUNE_ENCRYPTION_KEYS"].startswith("k1:")
    cli.ensure_keys(keys)
    assert keys.read_text() == first
    keys.write_text(f"ATTUNE_JWT_SECRET={values['ATTUNE_JWT_SECRET']}\n")
    cli.ensure_keys(keys)
    assert "ATTUNE_ENCRYPTION_KEYS=k1:" in keys.read_text()
    assert f"ATTUNE_JWT_SECRET={values['ATTUNE_JWT_SECRET']}" in keys.read_text()


@pytest.mark.parametrize(("uri", "vhost"), [
    ("amqp://guest:guest@127.0.0.1:5672/attune_e2e", "attune_e2e"),
    ("amqp://guest:guest@127.0.0.1:5672/a%2Fb", "a/b"),
    ("amqp://guest:guest@127.0.0.1:5672/", "/"),
    ("amqp://guest:guest@127.0.0.1:5672", "/"),
])
def test_vhost_comes_from_the_amqp_uri(uri, vhost):
    assert cli.vhost_of(uri) == vhost


def test_fresh_recreates_the_vhost_empty_whether_or_not_it_existed(config):
    vhost = f"{cli.vhost_of(config['AMQP_URI'])}_cli"
    uri = config["AMQP_URI"].rsplit("/", 1)[0] + f"/{vhost}"
    ctl = ["rabbitmqctl", "-q"]
    try:
        cli.recreate_vhost(uri)  # did not exist
        with Connection(uri) as conn, conn.channel() as channel:
            channel.queue_declare("left-over", durable=True)
        cli.recreate_vhost(uri)  # existed, with a queue
        listed = subprocess.run([*ctl, "list_queues", "-p", vhost, "name"], check=True,
                                capture_output=True, text=True).stdout
        assert "left-over" not in listed
    finally:
        subprocess.run([*ctl, "delete_vhost", vhost], capture_output=True, check=False)


def test_the_default_vhost_is_never_recreated():
    with pytest.raises(cli.CliError, match="default RabbitMQ vhost"):
        cli.recreate_vhost("amqp://guest:guest@127.0.0.1:5672/")


@pytest.fixture
def scratch_url(settings):
    """A database of our own (role attune has CREATEDB), dropped afterwards."""
    url = make_url(settings.database_url)
    scratch = url.set(database=f"{url.database}_cli").render_as_string(hide_password=False)
    yield scratch
    engine = cli._maintenance_engine(scratch)
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}_cli" WITH (FORCE)'))
    engine.dispose()


def tables(url):
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_prepare_creates_migrate_applies_and_fresh_starts_over(scratch_url):
    cli.prepare_database(scratch_url, fresh=False)
    assert tables(scratch_url) == set()
    cli.migrate(scratch_url)
    assert {"alembic_version", "executions", "audit_log"} <= tables(scratch_url)
    cli.prepare_database(scratch_url, fresh=True)
    assert tables(scratch_url) == set()


def test_odd_database_names_are_refused():
    with pytest.raises(cli.CliError, match="plain identifier"):
        cli.prepare_database('postgresql://a:b@127.0.0.1/x"; drop', fresh=True)


def fake_process(marker, ignore_term=False):
    code = ("import signal, time\n"
            + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore_term else "")
            + "print('ready', flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, marker], stdout=subprocess.PIPE,
                            start_new_session=True)
    assert proc.stdout.readline() == b"ready\n"  # its SIGTERM disposition is in place
    return proc


def test_stop_all_terms_then_kills_and_clears_pid_files(tmp_path, config, settings):
    platform = cli.Platform(PROJECT_ROOT / "nameko.yaml", config, settings, tmp_path)
    platform.pids.mkdir()
    polite = fake_process("nameko_services.executor.service")
    stubborn = fake_process("nameko_services.worker.service", ignore_term=True)
    stranger = fake_process("not-ours")
    try:
        for name, proc in (("executor", polite), ("worker", stubborn), ("sensor", stranger)):
            platform.pid_file(name).write_text(f"{proc.pid}\n")
        assert cli.running(platform) == {"executor": polite.pid, "worker": stubborn.pid}
        assert sorted(cli.stop_all(platform, grace=0.5)) == ["executor", "worker"]
        assert polite.wait(10) == -signal.SIGTERM
        assert stubborn.wait(10) == -signal.SIGKILL
        assert stranger.poll() is None  # a pid file naming someone else's process is ignored
        assert list(platform.pids.iterdir()) == []
    finally:
        for proc in (polite, stubborn, stranger):
            proc.kill()
            proc.wait()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def attune(*args, env, timeout=180):
    return subprocess.run([*ATTUNE, *args, "--config", str(PROJECT_ROOT / "nameko.yaml")],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_up_twice_status_and_down(tmp_path, scratch_url, config):
    """The whole life cycle on a scratch database, the test vhost and a free port."""
    env = {**os.environ, "ATTUNE_DATABASE_URL": scratch_url, "ATTUNE_AMQP_URI": config["AMQP_URI"],
           "ATTUNE_API_PORT": str(free_port()), "ATTUNE_RUN_DIR": str(tmp_path / "run"),
           "ATTUNE_GATEWAY_PROCESSES": "2"}
    run = tmp_path / "run"
    try:
        up = attune("up", env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "Attune is up" in up.stdout and "/ws" in up.stdout
        assert "registered system pack core" in up.stdout
        for name in (*cli.SERVICES, cli.GATEWAY):
            assert (run / "logs" / f"{name}.log").stat().st_size > 0
            assert (run / "pids" / f"{name}.pid").is_file()
        pids = {p.name: p.read_text() for p in (run / "pids").iterdir()}

        again = attune("up", env=env)
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout.count("already running") == 5
        assert {p.name: p.read_text() for p in (run / "pids").iterdir()} == pids

        status = attune("status", env=env)
        assert status.returncode == 0, status.stdout
        assert '"status": "ok"' in status.stdout
        serving = re.search(r"serving +2 of 2 gateway process\(es\): pid (\d+), (\d+)",
                            status.stdout)
        assert serving, status.stdout  # two, forked by the gateway (the default is one)

        for role in (*cli.SERVICES, cli.GATEWAY):  # the orchestrators' exec probe
            probe = attune("health", "--role", role, env=env)
            assert probe.returncode == 0, probe.stdout + probe.stderr
            assert json.loads(probe.stdout) == {"role": role, "status": "ok"}
    finally:
        down = attune("down", env=env)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "stopped" in down.stdout
    assert list((run / "pids").iterdir()) == []
    assert attune("status", env=env).returncode == 3
    for role in ("worker", cli.GATEWAY):  # nothing answers now: unhealthy, within the timeout
        probe = attune("health", "--role", role, "--timeout", "3", env=env)
        assert probe.returncode == 1, probe.stdout + probe.stderr
        assert json.loads(probe.stdout)["status"].startswith("error: "), probe.stdout
    for pid in [*(p.strip() for p in pids.values()), *serving.groups()]:
        wait_until(lambda pid=pid: not os.path.exists(f"/proc/{pid}"), deadline=10)
    assert (run / "logs" / "gateway.log").read_text().count("closed 0 websocket(s)") == 2


def test_roles_to_start_keeps_services_before_the_gateway_and_refuses_strangers():
    assert cli.roles_to_start(None) == (*cli.SERVICES, cli.GATEWAY)
    assert cli.roles_to_start("gateway, worker,sensor") == ("worker", "sensor", "gateway")
    for bad in ("worker,janitor", " , "):
        with pytest.raises(cli.CliError, match="--roles takes"):
            cli.roles_to_start(bad)


def test_a_joining_host_starts_only_its_roles_and_never_touches_the_database(
        tmp_path, scratch_url, config):
    """`up --roles worker,sensor`: no gateway, no /health wait, no migration or core pack;
    `status` and `down` know the run dir holds those two roles only; the supervisor serves the
    host's metrics (ATTUNE.supervisor.metrics_port), there being no gateway's /metrics."""
    metrics_port = free_port()
    env = {**os.environ, "ATTUNE_DATABASE_URL": scratch_url, "ATTUNE_AMQP_URI": config["AMQP_URI"],
           "ATTUNE_API_PORT": str(free_port()), "ATTUNE_RUN_DIR": str(tmp_path / "run"),
           "ATTUNE_METRICS_PORT": str(metrics_port)}
    run = tmp_path / "run"
    cli.prepare_database(scratch_url, fresh=False)  # exists, but the first host never migrated
    early = attune("up", "--roles", "worker,sensor", env=env)
    assert early.returncode == 1 and "run `attune up`" in early.stderr, early.stderr
    assert tables(scratch_url) == set() and not (run / "pids").exists()
    fresh = attune("up", "--roles", "worker", "--fresh", env=env)
    assert fresh.returncode == 1 and "only the first host" in fresh.stderr

    cli.migrate(scratch_url)
    try:
        up = attune("up", "--roles", "worker,sensor", env=env)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "no gateway on this host" in up.stdout and "/health" not in up.stdout
        assert "registered system pack" not in up.stdout
        assert sorted(p.name for p in (run / "pids").iterdir()) == [  # and their supervisor
            "sensor.pid", "supervisor.pid", "worker.pid"]
        engine = create_engine(scratch_url)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("select count(*) from packs")).scalar() == 0
        finally:
            engine.dispose()
        status = attune("status", env=env)
        assert status.returncode == 0, status.stdout
        assert re.search(r"^worker +1 +\d+ +running", status.stdout, re.M)
        assert re.search(r"^sensor +1 +\d+ +running", status.stdout, re.M)
        assert "executor" not in status.stdout and "no gateway on this host" in status.stdout
        scraped = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        families = {f.name for f in text_string_to_metric_families(scraped)}
        assert {"attune_build_info", "attune_execution_queue_seconds",  # the worker's
                "attune_ws_dropped", "process_cpu_seconds"} <= families, sorted(families)
    finally:
        down = attune("down", env=env)
    assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
    assert list((run / "pids").iterdir()) == []
    assert attune("status", env=env).returncode == 3
