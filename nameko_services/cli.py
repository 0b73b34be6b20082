"""`attune`: bring the platform up and down, report its state, migrate, register packs.

    attune up --config nameko.yaml [--fresh] [--replicas worker=3,gateway=2]
                                                 keys, database, migrations, core pack, processes
    attune up --roles worker,sensor --config …   another host: only those roles, shared database
    attune down --config nameko.yaml             SIGTERM every process, SIGKILL after 30 s
    attune status --config nameko.yaml [--json]  processes, restarts and /health
    attune supervise --config nameko.yaml        what `up` leaves running: starts and restarts
    attune migrate --config nameko.yaml          alembic upgrade head
    attune register-pack PATH (--system | --tenant ID) --config nameko.yaml
    attune rotate-keys --config nameko.yaml      re-encrypt secrets under the active key
    attune create-user NAME [--role R] [--tenant ID] [--password-stdin] --config nameko.yaml
    attune keys --config nameko.yaml             create or complete the keys file; print its path
    attune shell --config nameko.yaml            nameko's shell (n.rpc.<service>.<method>())
    attune health --role R --config nameko.yaml  one role's health, exit 0/1 (exec probes)

`up` starts one detached process, the supervisor (`attune supervise`), which starts every
replica of every role (worker, worker-2 …: ATTUNE.supervisor.replicas or --replicas) in its own
session, logging to <run_dir>/logs/<name>.log with its pid in <run_dir>/pids/<name>.pid,
restarts one that fails with backoff, records all of it in <run_dir>/supervisor.json (read by
`status` and /health) and stops them all on SIGTERM (`down`). `up` again adopts what runs and
has the supervisor start what does not. Started by root, the supervisor and every process run
as the configured service user (never root); each reads its keys from the keys file itself,
so no key is in any process's environment.

One module on purpose: it is the operator's whole tool and reads top to bottom (keys, database
and broker, processes, commands); nothing else imports its process handling.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlsplit

import click

from . import metrics
from .config import (
    AMQP_PASSWORD,
    DATABASE_PASSWORD,
    ENCRYPTION_KEYS,
    JWT_SECRET,
    PROJECT_ROOT,
    SECRET_NAMES,
    keys_path,
    load_config,
)
from .domain import supervision
from .domain.crypto import new_key_spec
from .domain.errors import AttuneError, ConfigurationError
from .domain.settings import Settings
from .domain.states import Role
from .domain.supervision import GATEWAY, ROLES, SERVICES, replica_name, role_of

SUPERVISOR = "supervisor"
BIN = Path(sys.executable).parent  # the venv's bin: nameko and python live beside us
HEALTH_DEADLINE_SECONDS = 90.0
PROBE_TIMEOUT_SECONDS = 5.0
STARTUP_WATCH_SECONDS = 5.0  # `up --roles` without a gateway: how long it watches the starts
DATABASE_DEADLINE_SECONDS = 30.0
STOP_GRACE_SECONDS = 30.0
LOG_TAIL_LINES = 40


Args = SimpleNamespace  # what each cmd_* reads: its command's options as attributes


class CliError(Exception):
    """A failure the user can act on; printed without a traceback."""


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


# Configuration and keys -------------------------------------------------------------------

@dataclass(frozen=True)
class Platform:
    """What one config file says about where things are."""

    config_path: Path
    config: dict[str, Any]
    settings: Settings
    run_dir: Path

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    @property
    def pids(self) -> Path:
        return self.run_dir / "pids"

    @property
    def metrics_dir(self) -> Path:
        """The host's Prometheus values, one file per process (nameko_services/metrics.py)."""
        return self.run_dir / "metrics"

    @property
    def ws_url(self) -> str:
        return self.settings.api_url.replace("http", "ws", 1) + "/ws"

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.pids / f"{name}.pid"

    @property
    def roles_file(self) -> Path:
        """The roles the last `up` started here (`status` expects them)."""
        return self.run_dir / "roles"

    def roles(self) -> tuple[str, ...]:
        """The roles of this run dir: as recorded by `up`, else all of them."""
        try:
            return roles_to_start(self.roles_file.read_text().strip())
        except (OSError, CliError):
            return (*SERVICES, GATEWAY)


KEY_MAKERS: dict[str, Callable[[], str]] = {
    JWT_SECRET: lambda: secrets.token_urlsafe(48),
    ENCRYPTION_KEYS: lambda: new_key_spec("k1"),
    DATABASE_PASSWORD: lambda: secrets.token_urlsafe(24),
    AMQP_PASSWORD: lambda: secrets.token_urlsafe(24),
}


def ensure_keys(path: Path, owner: pwd.struct_passwd | None = None) -> Path:
    """Create the keys file once (mode 600); add any key it lacks; give it to `owner`. Nothing
    is exported: every process reads the file itself (config.load_config)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        present = path.read_text(encoding="utf-8") if path.exists() else ""
    except PermissionError as exc:
        raise CliError(f"cannot read the keys file {path}: run this as root or as its owner"
                       ) from exc
    names = {line.partition("=")[0].strip() for line in present.splitlines()}
    missing = [name for name in KEY_MAKERS if name not in names]
    if missing:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            if not present:
                handle.write("# Attune secrets, made by `attune keys`. Keep this file private.\n")
            for name in missing:
                handle.write(f"{name}={KEY_MAKERS[name]()}\n")
        say(f"{'created' if not present else 'completed'} {path} (mode 600): "
            f"{', '.join(missing)}")
    # Tightened when written or open to everyone; a complete file that is not (a secret that
    # an orchestrator mounts read-only, group-readable by the pod's group) is left as it is.
    if missing or stat.S_IMODE(path.stat().st_mode) & 0o007:
        os.chmod(path, 0o600)
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    return path


def service_account(name: str) -> pwd.struct_passwd | None:
    """Whom the services run as: `name` when we are root (it must exist), else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        raise CliError(f"services never run as root, and the service user {name!r} does not "
                       f"exist: scripts/up.sh creates it (or set ATTUNE_SERVICE_USER)") from None
    if account.pw_uid == 0:
        raise CliError(f"the service user {name!r} is root: services never run as root")
    return account


def check_reachable(path: Path, account: pwd.struct_passwd) -> None:
    """Every folder down to `path` must let the service user through (a checkout under /root
    does not): said before anything starts, not as a service's obscure crash."""
    for folder in (*reversed(path.parents), path):
        info = folder.stat()
        bit = (0o100 if info.st_uid == account.pw_uid else
               0o010 if info.st_gid == account.pw_gid else 0o001)
        if not info.st_mode & bit:
            raise CliError(f"{folder} is closed to the service user {account.pw_name!r} (mode "
                           f"{stat.S_IMODE(info.st_mode):o}): keep the checkout where it can "
                           f"read (for example under /srv or /opt), or open that folder")


def give_to(path: Path, account: pwd.struct_passwd | None) -> None:
    """Make `path` and everything below it the service user's (what root made there before)."""
    if account is None:
        return
    for folder, dirs, files in os.walk(path):
        for name in (folder, *(os.path.join(folder, n) for n in (*dirs, *files))):
            info = os.lstat(name)
            if (info.st_uid, info.st_gid) != (account.pw_uid, account.pw_gid):
                os.lchown(name, account.pw_uid, account.pw_gid)


def load_platform(config_path: str) -> Platform:
    """Make sure the keys file exists, then read the config (completed from it)."""
    path = Path(config_path).resolve()
    if not path.is_file():
        raise CliError(f"config file {config_path} not found")
    ensure_keys(keys_path())
    config = load_config(path)
    settings = Settings.from_mapping(config)
    return Platform(path, config, settings, PROJECT_ROOT / settings.run_dir)


# Database and broker -------------------------------------------------------------------------

def _database_name(url: str) -> str:
    from sqlalchemy.engine import make_url

    name = make_url(url).database or ""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):
        raise CliError(f"refusing to manage database {name!r}: not a plain identifier")
    return name


def _maintenance_engine(url: str) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    target = make_url(url).set(database="postgres")
    return create_engine(target, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


def prepare_database(url: str, *, fresh: bool) -> None:
    """Wait for PostgreSQL; create the database if missing (drop it first with --fresh)."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    name = _database_name(url)
    engine = _maintenance_engine(url)
    deadline = time.monotonic() + DATABASE_DEADLINE_SECONDS
    try:
        while True:
            try:
                with engine.connect() as conn:
                    if fresh:
                        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    exists = conn.execute(
                        text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
                    ).scalar()
                    if not exists:
                        conn.execute(text(f'CREATE DATABASE "{name}"'))
                say(f"database {name} {'recreated' if fresh else 'ready'}")
                return
            except OperationalError as exc:
                if time.monotonic() > deadline:
                    raise CliError(f"PostgreSQL not reachable for {name}: {exc.orig}") from exc
                time.sleep(0.5)
    finally:
        engine.dispose()


def vhost_of(amqp_uri: str) -> str:
    path = urlsplit(amqp_uri).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def recreate_vhost(amqp_uri: str) -> None:
    """Delete and re-add the config's vhost, so no stale message survives a fresh start."""
    vhost = vhost_of(amqp_uri)
    if vhost == "/":
        raise CliError("refusing to recreate the default RabbitMQ vhost '/': use a named vhost")
    ctl = shutil.which("rabbitmqctl") or next(
        (p for p in ("/usr/sbin/rabbitmqctl", "/usr/lib/rabbitmq/bin/rabbitmqctl")
         if os.access(p, os.X_OK)), None)
    if ctl is None:
        raise CliError(f"--fresh needs rabbitmqctl (on this host, as root) to recreate vhost "
                       f"{vhost!r}; it was not found")
    user = urlsplit(amqp_uri).username or "guest"
    for args in (["delete_vhost", vhost], ["add_vhost", vhost],
                 ["set_permissions", "-p", vhost, unquote(user), ".*", ".*", ".*"]):
        done = subprocess.run([ctl, "-q", *args], capture_output=True, text=True, check=False)
        said = (done.stdout + done.stderr).lower()
        absent = args[0] == "delete_vhost" and ("does not exist" in said or "not_found" in said)
        if done.returncode != 0 and not absent:
            raise CliError(f"rabbitmqctl {' '.join(args)} failed: "
                           f"{(done.stderr or done.stdout).strip()}")
    say(f"RabbitMQ vhost {vhost} recreated")


def check_migrated(url: str) -> None:
    """A joining host's check: the shared database exists and is at the migrations' head (the
    first host creates and migrates it; this one never does)."""
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.exc import OperationalError

    from .domain.db import make_engine

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    heads = set(ScriptDirectory.from_config(cfg).get_heads())
    engine = make_engine(url, pool_size=1)
    deadline = time.monotonic() + DATABASE_DEADLINE_SECONDS
    try:
        while True:
            try:
                with engine.connect() as conn:
                    current = set(MigrationContext.configure(conn).get_current_heads())
                break
            except OperationalError as exc:
                if time.monotonic() > deadline:
                    raise CliError(f"PostgreSQL database {_database_name(url)} not reachable "
                                   f"({exc.orig}): the first host's `attune up` makes it"
                                   ) from exc
                time.sleep(0.5)
    finally:
        engine.dispose()
    if current != heads:
        raise CliError(f"database {_database_name(url)} is at revision "
                       f"{', '.join(sorted(current)) or 'none'}, not {', '.join(sorted(heads))}:"
                       f" run `attune up` (or `attune migrate`) on the first host first")
    say(f"database {_database_name(url)} at the migrations' head")


def migrate(url: str) -> None:
    from alembic.config import Config

    from alembic import command

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["skip_logging"] = True
    command.upgrade(cfg, "head")
    say("migrations at head")


def register_pack(url: str, path: Path, *, tenant_id: int | None, system: bool,
                  force: bool = True) -> Any:
    """Register a pack folder through domain.packs (the same code the API uses)."""
    try:
        from .domain import packs
    except ImportError as exc:
        raise CliError(f"cannot register {path}: nameko_services.domain.packs is missing "
                       f"({exc})") from exc
    if not hasattr(packs, "register_from_path"):
        raise CliError("nameko_services.domain.packs has no register_from_path()")
    from .domain.db import make_engine, transaction

    engine = make_engine(url, pool_size=1)
    try:
        with transaction(engine) as conn:
            pack = packs.register_from_path(conn, path, tenant_id=tenant_id, system=system,
                                            force=force, actor_type="service", actor="cli")
    finally:
        engine.dispose()
    ref = pack.get("ref", path.name) if isinstance(pack, dict) else path.name
    version = pack.get("version", "") if isinstance(pack, dict) else ""
    say(f"registered {'system ' if system else ''}pack {ref} {version}".rstrip())
    return pack


# Processes ---------------------------------------------------------------------------------

def replica_plan(platform: Platform, asked: str | None,
                 roles: Sequence[str] = ROLES) -> dict[str, int]:
    """How many processes of each of `roles` (those this host runs): ATTUNE.supervisor.replicas
    and gateway.processes, overridden by `--replicas worker=3,gateway=2`. The gateway's count
    is how many processes its one supervised parent forks (they share the port and the
    sandboxes' socket)."""
    counts = {**dict(platform.settings.supervisor.replicas),
              GATEWAY: platform.settings.gateway.processes}
    if asked:
        try:
            counts.update(given := supervision.parse_replicas(asked))
        except ConfigurationError as exc:
            raise CliError(str(exc)) from None
        if set(given) - set(roles):
            raise CliError(f"--replicas names {', '.join(sorted(set(given) - set(roles)))}, "
                           f"which this host does not run (--roles {','.join(roles)})")
    return {role: counts[role] for role in ROLES if role in roles}


def plan_text(plan: dict[str, int]) -> str:
    return ",".join(f"{role}={count}" for role, count in plan.items())


def supervised(plan: dict[str, int]) -> list[str]:
    """The names the supervisor runs, services first (their queues exist before the gateway
    takes work): worker, worker-2 …, and one gateway (when this host runs it)."""
    return [replica_name(role, n) for role in SERVICES for n in range(1, plan.get(role, 0) + 1)
            ] + ([GATEWAY] if GATEWAY in plan else [])


def command_for(name: str, config_path: Path, *, gateway_processes: int | None = None,
                replicas: str | None = None) -> list[str]:
    """The command of a role (`worker-2` runs the worker's), or of the supervisor."""
    role = role_of(name)[0]
    if role == SUPERVISOR:
        return [str(BIN / "python"), "-m", "nameko_services.cli", "supervise", "--config",
                str(config_path), *(["--replicas", replicas] if replicas else [])]
    if role == GATEWAY:
        return [str(BIN / "python"), "-m", "gateway.serve", "--config", str(config_path),
                *(["--processes", str(gateway_processes)] if gateway_processes else [])]
    return [str(BIN / "nameko"), "run", "--config", str(config_path),
            f"nameko_services.{role}.service:{role.capitalize()}Service"]


def _marker(name: str) -> str:
    role = role_of(name)[0]
    if role == SUPERVISOR:
        return "supervise"
    return "gateway.serve" if role == GATEWAY else f"nameko_services.{role}.service"


def is_alive(pid: int, name: str) -> bool:
    """A live (non-zombie) process whose command line is really ours (pids get reused)."""
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            if proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return False
            return _marker(name) in proc.joinpath("cmdline").read_bytes().decode(errors="replace")
        except (OSError, IndexError):
            return False
    return supervision.pid_alive(pid)


def serving_pids(gateway_pid: int, processes: int) -> list[int]:
    """The gateway processes that serve: the gateway itself, or the `processes` it forked
    (more than 1), read from /proc."""
    if processes == 1:
        return [gateway_pid]
    try:
        forked = Path(f"/proc/{gateway_pid}/task/{gateway_pid}/children").read_text().split()
    except OSError:
        return []
    return [pid for pid in map(int, forked) if is_alive(pid, GATEWAY)]


def read_pid(platform: Platform, name: str) -> int | None:
    try:
        return int(platform.pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None


def running(platform: Platform) -> dict[str, int]:
    """name → pid of every live platform process with a pid file (supervisor and replicas)."""
    found = {}
    for path in sorted(platform.pids.glob("*.pid")):
        pid = read_pid(platform, path.stem)
        if pid is not None and is_alive(pid, path.stem):
            found[path.stem] = pid
    return found


def service_environment(platform: Platform,
                        account: pwd.struct_passwd | None) -> dict[str, str]:
    """Ours without any key (a key given in our environment is not passed on) and, for the
    service user, its own name and a home in the run dir."""
    env = {name: value for name, value in os.environ.items() if name not in SECRET_NAMES}
    env.update(PYTHONUNBUFFERED="1", ATTUNE_CONFIG=str(platform.config_path))
    env[metrics.MULTIPROC_VARIABLE] = str(platform.metrics_dir)
    if account is not None:
        env.update(HOME=str(platform.run_dir / "home"), USER=account.pw_name,
                   LOGNAME=account.pw_name)
    return env


def prepare_run_dir(platform: Platform, account: pwd.struct_passwd | None) -> None:
    """Logs, pids and the service user's home, all of the run dir the service user's."""
    for folder in (platform.logs, platform.pids, platform.metrics_dir, platform.run_dir / "home"):
        folder.mkdir(parents=True, exist_ok=True)
    if account is not None:
        check_reachable(PROJECT_ROOT, account)
        check_reachable(platform.run_dir, account)
        give_to(platform.run_dir, account)


def _unblock_signals() -> None:
    """In the child before exec: the supervisor blocks the signals it waits for, and a blocked
    mask survives exec (a service would never see its SIGTERM)."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def start_process(platform: Platform, name: str, argv: list[str],
                  account: pwd.struct_passwd | None = None) -> subprocess.Popen[bytes]:
    """Start one process detached (its own session), as `account` when given (only root can),
    logging to its file, its name in ATTUNE_REPLICA; records its pid file."""
    env = {**service_environment(platform, account), supervision.REPLICA_VARIABLE: name}
    as_user: dict[str, Any] = {}
    if account is not None:
        as_user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    log_path = platform.log_file(name)
    with open(log_path, "ab") as log:
        if account is not None:
            os.fchown(log.fileno(), account.pw_uid, account.pw_gid)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        log.write(f"=== {stamp} attune: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_unblock_signals, **as_user)
    platform.pid_file(name).write_text(f"{proc.pid}\n")
    say(f"started {name} (pid {proc.pid}) → {log_path}")
    return proc


def stop_all(platform: Platform, grace: float = STOP_GRACE_SECONDS) -> list[str]:
    """SIGTERM the supervisor (which stops its processes) or, without one, every live process;
    SIGKILL (each process group) whatever is left after `grace`; clear pid and state files."""
    live = running(platform)
    supervisor = live.get(SUPERVISOR)
    for pid in [supervisor] if supervisor else live.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    pending = dict(live)
    while pending and time.monotonic() < deadline:
        pending = {n: p for n, p in {**pending, **running(platform)}.items() if is_alive(p, n)}
        if pending:
            time.sleep(0.1)
    for name, pid in pending.items():
        say(f"{name} (pid {pid}) ignored SIGTERM for {grace:g} s: SIGKILL")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if name == SUPERVISOR:
                os.kill(pid, signal.SIGKILL)
            else:
                os.killpg(pid, signal.SIGKILL)
    for path in platform.pids.glob("*.pid"):
        path.unlink(missing_ok=True)
    supervision.state_path(platform.run_dir).unlink(missing_ok=True)
    return list(live)


@dataclass
class Child:
    """One supervised process: its current pid (None while stopped) and its history."""

    name: str
    proc: subprocess.Popen[bytes] | None = None  # None for one adopted from an earlier run
    pid: int | None = None
    state: str = supervision.STOPPED
    started: float = 0.0  # time.monotonic() of the last start
    restarts: int = 0
    failures: int = 0  # consecutive quick failures: the backoff's exponent
    last_exit: str | None = None
    last_exit_at: float | None = None  # time.time()
    due: float | None = None  # time.monotonic() of the next start

    def exited(self) -> tuple[bool, int | None]:
        """Has it ended, and with what return code (None: not our child, so unknown)?"""
        if self.pid is None:
            return False, None
        if self.proc is not None:
            code = self.proc.poll()
            return code is not None, code
        return not is_alive(self.pid, self.name), None

    def to_json(self) -> dict[str, Any]:
        role, number = role_of(self.name)
        return {"name": self.name, "role": role, "replica": number, "pid": self.pid,
                "state": self.state, "restarts": self.restarts, "last_exit": self.last_exit,
                "last_exit_at": self.last_exit_at,
                "restart_in": (round(max(0.0, self.due - time.monotonic()), 1)
                               if self.due is not None else None)}


class Supervisor:
    """`attune supervise`: start every planned process, restart one that fails with backoff,
    start the stopped ones on SIGHUP (`attune up` again), stop them all on SIGTERM.

    Signals are taken synchronously (sigtimedwait), so nothing runs in a handler; children
    are polled at each wake-up (SIGCHLD, or at the latest every second: an adopted process is
    not our child and sends none).
    """

    SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    FIRST_BACKOFF_SECONDS = 0.5
    STABLE_SECONDS = 30.0  # a process that ran this long starts its backoff afresh

    def __init__(self, platform: Platform, plan: dict[str, int]) -> None:
        self.platform = platform
        self.plan = plan
        self.settings = platform.settings.supervisor
        self.account = service_account(platform.settings.service_user)
        self.children = [Child(name) for name in supervised(plan)]
        self.began = time.time()
        self.stopping = False
        self.stop_deadline = 0.0
        self.written: dict[str, Any] = {}

    def run(self) -> int:
        signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)  # the exporter thread's too
        if self.settings.metrics_port is not None:
            metrics.serve_host(self.platform.settings.api_host, self.settings.metrics_port)
            print(f"serving this host's metrics on port {self.settings.metrics_port}", flush=True)
        now = time.monotonic()
        for child in self.children:  # adopt what an earlier supervisor left running
            pid = read_pid(self.platform, child.name)
            if pid is not None and is_alive(pid, child.name):
                child.pid, child.state, child.started = pid, supervision.RUNNING, now
                print(f"adopted {child.name} (pid {pid})", flush=True)
            else:
                child.due = now
        while True:
            self._reap()
            if self.stopping and all(c.pid is None for c in self.children):
                break
            if self.stopping:
                self._escalate()
            else:
                self._start_due()
            self._write_state()
            signum = signal.sigtimedwait(self.SIGNALS, self._wait_seconds())
            if signum is None:
                continue
            if signum.si_signo in (signal.SIGTERM, signal.SIGINT):
                self._begin_stop()
            elif signum.si_signo == signal.SIGHUP and not self.stopping:
                for child in self.children:
                    if child.pid is None:
                        child.due, child.failures = time.monotonic(), 0
        supervision.state_path(self.platform.run_dir).unlink(missing_ok=True)
        self.platform.pid_file(SUPERVISOR).unlink(missing_ok=True)
        print("every process stopped", flush=True)
        return 0

    def _wait_seconds(self) -> float:
        dues = [c.due - time.monotonic() for c in self.children if c.due is not None]
        return max(0.05, min([1.0, *dues]))

    def _reap(self) -> None:
        for child in self.children:
            ended, code = child.exited()
            if not ended:
                continue
            ran = time.monotonic() - child.started
            child.last_exit, child.last_exit_at = supervision.describe_exit(code), time.time()
            self.platform.pid_file(child.name).unlink(missing_ok=True)
            metrics.process_ended(child.pid)
            said = f"{child.name} (pid {child.pid}) ended: {child.last_exit}"
            child.pid, child.proc = None, None
            if not self.stopping and self.settings.restart and supervision.failed(code):
                child.failures = 1 if ran >= self.STABLE_SECONDS else child.failures + 1
                delay = supervision.backoff_seconds(
                    child.failures, base=self.FIRST_BACKOFF_SECONDS,
                    maximum=self.settings.max_backoff_seconds)
                child.state, child.due = supervision.BACKOFF, time.monotonic() + delay
                said += f"; restart in {delay:g} s"
            else:
                child.state, child.due = supervision.STOPPED, None
                said += "; left stopped" if not self.stopping else ""
            print(said, flush=True)

    def _start_due(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.due is None or child.due > now:
                continue
            argv = command_for(child.name, self.platform.config_path,
                               gateway_processes=self.plan.get(GATEWAY))
            try:
                proc = start_process(self.platform, child.name, argv, self.account)
            except OSError as exc:
                print(f"{child.name} could not start: {exc}", flush=True)
                child.failures += 1
                child.due = now + supervision.backoff_seconds(
                    child.failures, base=self.FIRST_BACKOFF_SECONDS,
                    maximum=self.settings.max_backoff_seconds)
                continue
            if child.state == supervision.BACKOFF:
                child.restarts += 1
            child.proc, child.pid, child.started = proc, proc.pid, now
            child.state, child.due = supervision.RUNNING, None

    def _begin_stop(self) -> None:
        """SIGTERM every process, once; nothing is restarted from now on."""
        if self.stopping:
            return
        print("stopping every process", flush=True)
        self.stopping = True
        self.stop_deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in self.children:
            child.due = None
            if child.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGTERM)

    def _escalate(self) -> None:
        """SIGKILL the groups of those still there STOP_GRACE_SECONDS after SIGTERM."""
        if time.monotonic() < self.stop_deadline:
            return
        for child in self.children:
            if child.pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)

    def _write_state(self) -> None:
        state = {"pid": os.getpid(), "started_at": self.began, "replicas": self.plan,
                 "restart": self.settings.restart,
                 "processes": [child.to_json() for child in self.children]}
        if state != self.written:
            supervision.write_state(self.platform.run_dir, state)
            self.written = state


def fetch_health(url: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """GET <url>/health; the JSON body (also on 503), or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            return json.loads(exc.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _print_tails(platform: Platform, names: Sequence[str]) -> None:
    for name in names:
        print(f"\n----- {platform.log_file(name)} (last {LOG_TAIL_LINES} lines) -----",
              file=sys.stderr)
        print(tail(platform.log_file(name)), file=sys.stderr)


START_CRASHES = 3  # restarts during `up` after which it gives up waiting


def wait_ready(platform: Platform, plan: dict[str, int], supervisor: subprocess.Popen[bytes] | None,
               since: float, deadline_s: float = HEALTH_DEADLINE_SECONDS) -> dict[str, Any]:
    """Poll until every planned process runs and /health is "ok" (without a gateway here: they
    still run STARTUP_WATCH_SECONDS later); fail early when the
    supervisor we started exits, a process stops during start-up (restarts off) or keeps
    crashing. `since` (time.time()) tells exits of this start from older ones."""
    deadline = time.monotonic() + deadline_s
    names = [SUPERVISOR, *supervised(plan)]
    first = supervision.read_state(platform.run_dir) or {}
    restarts_before = {p["name"]: p["restarts"] for p in first.get("processes") or ()}
    last: dict[str, Any] | None = None
    steady_since: float | None = None
    while time.monotonic() < deadline:
        if supervisor is not None and supervisor.poll() is not None:
            _print_tails(platform, [SUPERVISOR])
            raise CliError(f"the supervisor exited with code {supervisor.returncode} "
                           f"(log: {platform.log_file(SUPERVISOR)})")
        state = supervision.read_state(platform.run_dir) or {}
        processes = {p["name"]: p for p in state.get("processes") or ()}
        for name, process in processes.items():
            crashes = process["restarts"] - restarts_before.get(name, 0)
            stopped = (process["state"] == supervision.STOPPED
                       and (process["last_exit_at"] or 0) >= since)
            if stopped or crashes >= START_CRASHES:
                _print_tails(platform, names)
                raise CliError(f"{name} {'stopped' if stopped else 'keeps failing'} during "
                               f"start-up ({process['last_exit']}; log: "
                               f"{platform.log_file(name)})")
        ready = (set(processes) == set(names[1:])
                 and all(p["state"] == supervision.RUNNING and is_alive(p["pid"], name)
                         for name, p in processes.items()))  # not yet reaped: not running
        if GATEWAY not in plan:  # no /health here: running, and still so a while later
            steady_since = (steady_since or time.monotonic()) if ready else None
            if steady_since and time.monotonic() - steady_since >= STARTUP_WATCH_SECONDS:
                return {}
        else:
            last = fetch_health(platform.settings.api_url, timeout=3.0) if ready else None
            if last is not None and last.get("status") == "ok":
                return last
        time.sleep(0.25)
    _print_tails(platform, names)
    raise CliError(f"not ready after {deadline_s:g} s; last /health: {json.dumps(last)}")


# Commands ----------------------------------------------------------------------------------

def roles_to_start(given: str | None) -> tuple[str, ...]:
    """The processes `up` starts, services before the gateway (their queues exist first):
    every role, or those of `--roles` (comma-separated names)."""
    everything = (*SERVICES, GATEWAY)
    if given is None:
        return everything
    names = {name.strip() for name in given.split(",") if name.strip()}
    unknown = sorted(names - set(everything))
    if unknown or not names:
        raise CliError(f"--roles takes a comma-separated list of {', '.join(everything)}"
                       + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    return tuple(name for name in everything if name in names)


def cmd_up(args: Args) -> int:
    began, since = time.monotonic(), time.time()
    platform = load_platform(args.config)
    settings = platform.settings
    roles = roles_to_start(args.roles)
    joining = args.roles is not None  # another host of a platform whose first host is up
    if joining and args.fresh:
        raise CliError("--fresh drops the shared database and vhost: only the first host's "
                       "`attune up` (without --roles) may")
    account = service_account(settings.service_user)
    ensure_keys(keys_path(), account)
    plan = replica_plan(platform, args.replicas, roles)
    live = running(platform)
    if args.fresh and live:
        say(f"--fresh: stopping the running platform first ({', '.join(live)})")
        stop_all(platform)
        live = {}
    state = supervision.read_state(platform.run_dir) if SUPERVISOR in live else None
    if state is not None:
        if args.replicas and state.get("replicas") != plan:
            raise CliError(f"the platform runs with {plan_text(state['replicas'])}, not "
                           f"{plan_text(plan)}: `attune down` first to change the replicas")
        plan = state.get("replicas") or plan
    if GATEWAY in plan and GATEWAY not in live:
        check_port_free(platform)
    if joining:
        check_migrated(settings.database_url)
    else:
        if args.fresh:  # first: it fails fast where rabbitmqctl is missing, before any drop
            recreate_vhost(settings.amqp_uri)
        prepare_database(settings.database_url, fresh=args.fresh)
        migrate(settings.database_url)
        register_pack(settings.database_url, PROJECT_ROOT / "packs" / "core", tenant_id=None,
                      system=True)
    platform.run_dir.mkdir(parents=True, exist_ok=True)
    platform.roles_file.write_text(",".join(roles) + "\n")
    if not live:  # nothing of this host runs: its metrics start from zero
        metrics.reset(platform.metrics_dir)
    prepare_run_dir(platform, account)
    for name in supervised(plan):
        if name in live:
            say(f"{name} already running (pid {live[name]})")
    started = None
    if SUPERVISOR in live:
        say(f"supervisor (pid {live[SUPERVISOR]}) in charge: it starts what is not running")
        os.kill(live[SUPERVISOR], signal.SIGHUP)
    else:
        argv = command_for(SUPERVISOR, platform.config_path, replicas=plan_text(plan))
        started = start_process(platform, SUPERVISOR, argv, account)
    if GATEWAY in plan:
        say(f"waiting for {plan_text(plan)} and {settings.api_url}/health")
    else:
        say(f"no gateway on this host: waiting for {plan_text(plan)}, then watching them for "
            f"{STARTUP_WATCH_SECONDS:g} s")
    wait_ready(platform, plan, started, since)
    print(f"\nAttune is up ({time.monotonic() - began:.1f} s): {', '.join(plan)}")
    if GATEWAY in plan:
        print(f"  API:        {settings.api_url}   "
              f"(OpenAPI: {settings.api_url}/api/v1/openapi.json)")
        print(f"  WebSocket:  {platform.ws_url}")
    print(f"  run dir:    {platform.run_dir}")
    print(f"  runs as:    {account.pw_name if account else pwd.getpwuid(os.geteuid()).pw_name}")
    print(f"  processes:  {plan_text(plan)}, supervised"
          f" ({'restarted on failure' if settings.supervisor.restart else 'no restarts'})")
    for name in (SUPERVISOR, *supervised(plan)):
        print(f"  log {name + ':':12} {platform.log_file(name)}")
    print(f"  status:     attune status --config {platform.config_path}")
    print(f"  stop:       {stop_hint(platform.config_path)}")
    return 0


def stop_hint(config_path: Path) -> str:
    """How to stop what `up` started (down.sh reads $ATTUNE_CONFIG, default nameko.yaml)."""
    if config_path == PROJECT_ROOT / "nameko.yaml":
        return "./scripts/down.sh"
    hint = f"ATTUNE_CONFIG={config_path} ./scripts/down.sh"
    if os.environ.get("ATTUNE_RUN_DIR"):
        hint = f"ATTUNE_RUN_DIR={os.environ['ATTUNE_RUN_DIR']} {hint}"
    return hint


def check_port_free(platform: Platform) -> None:
    """Refuse to start a gateway when something else already answers on its port: /health
    would then report on a stranger (say, a platform started with another run dir)."""
    host = "127.0.0.1" if platform.settings.api_host in ("0.0.0.0", "::") else (
        platform.settings.api_host)
    with socket.socket() as probe:
        probe.settimeout(1.0)
        if probe.connect_ex((host, platform.settings.api_port)) == 0:
            raise CliError(f"port {platform.settings.api_port} is already in use, but not by a "
                           f"gateway of {platform.run_dir}; stop that process (or "
                           f"`attune down` with its ATTUNE_RUN_DIR) first")


def cmd_down(args: Args) -> int:
    began = time.monotonic()
    platform = load_platform(args.config)
    stopped = stop_all(platform, grace=args.timeout)
    if stopped:
        say(f"stopped {', '.join(stopped)} in {time.monotonic() - began:.1f} s")
    else:
        say("nothing was running")
    return 0


def status_report(platform: Platform) -> dict[str, Any]:
    """What `attune status` shows: the supervisor, every process (role, replica, pid, state,
    restarts, last exit), the gateway's serving processes, /health; `ok` when all is well."""
    live = running(platform)
    state = supervision.read_state(platform.run_dir) if SUPERVISOR in live else None
    plan = (state or {}).get("replicas") or replica_plan(platform, None, platform.roles())
    known = {p["name"]: p for p in (state or {}).get("processes") or ()}
    processes = []
    for name in dict.fromkeys([*supervised(plan), *(n for n in live if n != SUPERVISOR)]):
        role, number = role_of(name)
        entry = known.get(name) or {"state": "running" if name in live else "stopped",
                                    "restarts": None, "last_exit": None}
        processes.append({"name": name, "role": role, "replica": number,
                          "pid": live.get(name), "state": entry["state"],
                          "restarts": entry["restarts"], "last_exit": entry["last_exit"],
                          "log": str(platform.log_file(name))})
    serving = serving_pids(live[GATEWAY], plan[GATEWAY]) if GATEWAY in live else []
    health = fetch_health(platform.settings.api_url) if GATEWAY in live else None
    ok = SUPERVISOR in live and all(p["pid"] and p["state"] == supervision.RUNNING
                                    for p in processes)
    if GATEWAY in plan:  # else a joining host's run dir: /health is the first host's
        ok = (ok and len(serving) == plan[GATEWAY] and bool(health)
              and health.get("status") == "ok")
    return {"ok": ok, "supervisor": {"pid": live.get(SUPERVISOR),
                                     "restart": (state or {}).get("restart"),
                                     "log": str(platform.log_file(SUPERVISOR))},
            "replicas": plan, "processes": processes,
            "gateway_processes": {"wanted": plan.get(GATEWAY, 0), "serving": serving},
            "health": health}


def cmd_status(args: Args) -> int:
    report = status_report(load_platform(args.config))
    if args.json:
        print(json.dumps(report, indent=2))
        return 0 if report["ok"] else 3
    boss = report["supervisor"]
    said = f"running (pid {boss['pid']})" if boss["pid"] else "not running"
    print(f"supervisor {said:24}{' restarts on failure' if boss['restart'] else ''}")
    print(f"{'ROLE':10} {'#':>2} {'PID':>8}  {'STATE':9} {'RESTARTS':>8}  {'LAST EXIT':18} LOG")
    for p in report["processes"]:
        print(f"{p['role']:10} {p['replica']:>2} {p['pid'] or '-':>8}  {p['state']:9} "
              f"{'-' if p['restarts'] is None else p['restarts']:>8}  "
              f"{p['last_exit'] or '-':18} {p['log']}")
    gateways = report["gateway_processes"]
    serving = gateways["serving"]
    if not gateways["wanted"]:
        print(f"health     not checked: no gateway on this host "
              f"(roles {', '.join(report['replicas'])})")
        return 0 if report["ok"] else 3
    print(f"{'serving':10} {len(serving)} of {gateways['wanted']} gateway process(es)"
          + (f": pid {', '.join(map(str, serving))}" if serving else ""))
    health = report["health"]
    print(f"health     {json.dumps(health) if health else 'no answer'}")
    return 0 if report["ok"] else 3


def cmd_supervise(args: Args) -> int:
    """Run as `attune up` starts it (detached, logging to <run_dir>/logs/supervisor.log)."""
    platform = load_platform(args.config)
    roles = tuple(supervision.parse_replicas(args.replicas)) if args.replicas else ROLES
    return Supervisor(platform, replica_plan(platform, args.replicas, roles)).run()


def cmd_migrate(args: Args) -> int:
    platform = load_platform(args.config)
    prepare_database(platform.settings.database_url, fresh=False)
    migrate(platform.settings.database_url)
    return 0


def cmd_register_pack(args: Args) -> int:
    if args.system == (args.tenant is not None):
        raise click.UsageError("say whose pack it is: --system or --tenant ID (one of them)")
    platform = load_platform(args.config)
    path = Path(args.path).resolve()
    if not path.is_dir():
        raise CliError(f"{args.path} is not a directory")
    register_pack(platform.settings.database_url, path, tenant_id=args.tenant,
                  system=args.system, force=args.force)
    return 0


def cmd_rotate_keys(args: Args) -> int:
    """Re-encrypt every secret and encrypted datastore value under the first key of the keyring
    (online, docs/security.md); exit 1 while anything failed or remains under an old key."""
    from .domain import rotation
    from .domain.crypto import Cipher
    from .domain.db import make_engine

    settings = load_platform(args.config).settings
    engine = make_engine(settings.database_url, pool_size=2)
    try:
        report = rotation.rotate(engine, Cipher(settings.encryption_keys, settings.active_key_id),
                                 batch_size=args.batch_size)
    finally:
        engine.dispose()
    print(json.dumps(report, indent=2))
    if report["failed"] or any(report["remaining"].values()):
        say("some values are not under the active key yet: run it again, and investigate"
            " `failed` rows (their key is missing from the keyring, or they were altered)")
        return 1
    return 0


def cmd_prune(args: Args) -> int:
    """Prune old history now (docs/operations.md "Retention"): what ATTUNE.retention keeps, or
    executions and events older than --older-than; print the rows per table (--dry-run: the
    rows it would delete, deleting nothing). A pass in progress hands over at its next batch."""
    import dataclasses

    from .domain import retention
    from .domain.db import make_engine

    platform = load_platform(args.config)
    settings = platform.settings.retention
    ages = settings.ages()
    if args.older_than is not None:
        age = retention.parse_age(args.older_than)
        ages = dataclasses.replace(ages, executions=age, events=age)
    engine = make_engine(platform.settings.database_url, pool_size=2)
    try:
        if args.dry_run:
            rows = retention.count(engine, ages)
        else:
            pruned = retention.prune(engine, ages, batch_size=args.batch_size or
                                     settings.batch_size, pause_seconds=settings.pause_seconds,
                                     duty_cycle=settings.duty_cycle, take_over=True)
            assert pruned is not None  # take_over waits for the lock
            rows = pruned
    finally:
        engine.dispose()
    print(json.dumps({"dry_run": args.dry_run, "rows": rows}, indent=2))
    return 0


def read_password(from_stdin: bool) -> str:
    """The new user's password: all of standard input less its final newline, or typed twice at
    a prompt. Never argv or the environment, which other local users and logs can read."""
    if from_stdin:
        return sys.stdin.read().removesuffix("\n").removesuffix("\r")
    if not sys.stdin.isatty():
        raise CliError("no terminal to prompt for the password on: give it on standard input "
                       "with --password-stdin")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Password (again): ") != password:
        raise CliError("the two passwords differ")
    return password


def cmd_create_user(args: Args) -> int:
    """Create a user as an operator (the way in while sign-up is closed), through the domain code
    the API uses: same checks, same audit entry (actor `cli`)."""
    from .domain import users
    from .domain.auth import in_place
    from .domain.db import make_engine, transaction
    from .domain.errors import ValidationError

    settings = load_platform(args.config).settings
    password = read_password(args.password_stdin)
    given = {"username": args.username, "password": password, "role": args.role,
             "actor_type": "service", "actor": "cli", "offload": in_place}
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        with transaction(engine) as conn:
            if args.tenant is None:
                user = users.create_in_new_tenant(conn, tenant=None, **given)
            else:
                user = users.create_user(conn, tenant_id=args.tenant, **given)
    except ValidationError as exc:
        problems = "; ".join(f"{field} {text}" for field, text in exc.fields.items())
        raise CliError(f"{exc.message}: {problems}") from exc
    finally:
        engine.dispose()
    shown = users.to_api(user)
    if args.json:
        print(json.dumps(shown))
    else:
        print(f"created user {shown['username']}: id {shown['id']}, tenant {shown['tenant_id']}, "
              f"role {shown['role']}")
    return 0


def cmd_keys(args: Args) -> int:
    """Create or complete the keys file, the service user's when we are root; print its path
    (scripts/lib.sh reads the PostgreSQL and RabbitMQ passwords from it)."""
    path = Path(args.config).resolve()
    if not path.is_file():
        raise CliError(f"config file {args.config} not found")
    section = load_config(path).get("ATTUNE") or {}
    account = service_account(str(section.get("service_user") or "attune"))
    print(ensure_keys(keys_path(), account))
    return 0


def cmd_shell(args: Args) -> int:
    """nameko's operator shell (`n.rpc.<service>.<method>()`) on the config completed from the
    keys file, which `nameko shell --config` cannot read; the banner shows no password."""
    from nameko.cli.shell import ShellRunner, make_nameko_helper

    platform = load_platform(args.config)
    broker = urlsplit(platform.settings.amqp_uri)
    shown = broker._replace(netloc=broker.netloc.rpartition("@")[2]).geturl()
    banner = (f"Attune operator shell (Python {sys.version.split()[0]}), broker {shown}\n"
              f"n.rpc.<service>.<method>(...), e.g. n.rpc.executor.ping()")
    ShellRunner(banner, {"n": make_nameko_helper(platform.config)}).start_shell(name=None)
    return 0


def _probe(platform: Platform, role: str) -> None:
    """Raise unless `role` is healthy: the gateway's /health says ok; a service answers its RPC
    `ping` as the gateway's /health pings it; a worker also has a live heartbeat on this host
    (the probe runs beside its own worker: another replica's answer must not vouch for it)."""
    from .domain import health

    if role == GATEWAY:
        answer = fetch_health(platform.settings.api_url)
        if not answer or answer.get("status") != health.OK:
            raise RuntimeError(f"/health answered {json.dumps(answer)}")
        return
    from nameko.standalone.rpc import ClusterRpcProxy

    with ClusterRpcProxy(platform.config, timeout=PROBE_TIMEOUT_SECONDS) as rpc:
        health.check_pong(role, getattr(rpc, role).ping())
    if role == "worker":
        from .domain.db import make_engine

        engine = make_engine(platform.settings.database_url, pool_size=1)
        try:
            with engine.connect() as conn:
                live = health.live_workers_on(conn, socket.gethostname())
        finally:
            engine.dispose()
        if not live:
            raise RuntimeError(f"no worker on {socket.gethostname()} has a recent heartbeat")


def cmd_health(args: Args) -> int:
    """One role's health for an orchestrator's exec probe: a JSON line, exit 0 when healthy,
    1 when not (an error, or no answer within --timeout seconds)."""
    platform = load_platform(args.config)

    def give_up(_signum: int, _frame: Any) -> None:
        raise TimeoutError(f"no answer within {args.timeout:g} s")

    signal.signal(signal.SIGALRM, give_up)
    signal.setitimer(signal.ITIMER_REAL, args.timeout)
    try:
        _probe(platform, args.role)
        status = "ok"
    except Exception as exc:  # any failure is an unhealthy answer, never a traceback
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        status = f"error: {type(exc).__name__}" + (f": {first}" if first else "")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    print(json.dumps({"role": args.role, "status": status}), flush=True)
    return 0 if status == "ok" else 1


def cmd_metrics(args: Args) -> int:
    """Serve the metrics every process of this host counts into $PROMETHEUS_MULTIPROC_DIR until
    SIGTERM or SIGINT: the exporter of a host or pod where neither a gateway nor `attune
    supervise` serves them (systemd units, Kubernetes pods; docs/observability.md)."""
    folder = metrics.multiproc_dir()
    if folder is None or not folder.is_dir():
        raise CliError(f"{metrics.MULTIPROC_VARIABLE} must name the folder this host's "
                       "processes count into (the same value as theirs)")
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # the exporter thread's too
    metrics.serve_host(args.host, args.port)
    print(f"serving the metrics of {folder} on {args.host}:{args.port}", flush=True)
    signal.sigwait(stop)
    return 0


# The operator's commands on click, beside the user's (client.cli): one `attune` command.
REPLICAS_HELP = ("Processes per role, e.g. worker=3,executor=2,sensor=2,notifier=2,gateway=2 "
                 "(default: ATTUNE.supervisor.replicas, one each; gateway: "
                 "ATTUNE.gateway.processes).")


def _operator(name: str, run: Callable[[Args], int], text: str) -> Callable[..., click.Command]:
    """A click command `name` running `run` with its options (and `--config`); a CliError or
    AttuneError is `attune: error: …` and exit 1."""

    def make(*options: Callable[[Any], Any]) -> click.Command:
        def callback(**params: Any) -> None:
            try:
                code = run(Args(**params))
            except (CliError, AttuneError) as exc:
                click.echo(f"attune: error: {exc}", err=True)
                code = 1
            except KeyboardInterrupt:
                code = 130
            raise click.exceptions.Exit(code)

        command = click.command(name, help=text)(callback)
        for option in (*options, click.option(
                "--config", default=lambda: os.environ.get("ATTUNE_CONFIG", "nameko.yaml"),
                show_default="$ATTUNE_CONFIG or nameko.yaml",
                help="The platform's nameko.yaml-style config.")):
            command = option(command)
        return command

    return make


OPERATOR_COMMANDS: tuple[click.Command, ...] = (
    _operator("up", cmd_up, "Start the platform under its supervisor and wait until every "
              "process runs and /health is ok.")(
        click.option("--fresh", is_flag=True,
                     help="Drop and recreate the database and the RabbitMQ vhost first."),
        click.option("--roles", metavar="ROLE,…",
                     help="Start only these roles (executor, worker, sensor, notifier, gateway) "
                          "on this host, joining a platform whose first host ran `attune up`: "
                          "the database is checked, never created, migrated or dropped."),
        click.option("--replicas", help=REPLICAS_HELP)),
    _operator("supervise", cmd_supervise, "Run the platform's processes and restart one that "
              "fails (what `up` starts, detached; SIGHUP starts the stopped ones, SIGTERM "
              "stops all).")(click.option("--replicas", help=REPLICAS_HELP)),
    _operator("down", cmd_down, "Stop every platform process.")(
        click.option("--timeout", type=float, default=STOP_GRACE_SECONDS, show_default=True,
                     help="Seconds between SIGTERM and SIGKILL.")),
    _operator("status", cmd_status, "Show the supervisor, every process (role, replica, pid, "
              "state, restarts, last exit) and /health (exit 3 unless all is well).")(
        click.option("--json", is_flag=True, help="The same as one JSON document, for scripts.")),
    _operator("migrate", cmd_migrate, "Apply the Alembic migrations.")(),
    _operator("register-pack", cmd_register_pack, "Register a pack folder.")(
        click.argument("path"),
        click.option("--system", is_flag=True, help="A system pack (every tenant's)."),
        click.option("--tenant", type=int, help="The tenant id that owns the pack."),
        click.option("--no-force", "force", flag_value=False, default=True,
                     help="Fail instead of replacing an existing pack of the same ref.")),
    _operator("rotate-keys", cmd_rotate_keys, "Re-encrypt every secret and encrypted datastore "
              "value under the active key.")(
        click.option("--batch-size", type=click.IntRange(1), default=200, show_default=True,
                     help="Rows per transaction.")),
    _operator("metrics", cmd_metrics, "Serve this host's metrics (the folder in "
              "$PROMETHEUS_MULTIPROC_DIR) at http://HOST:PORT/metrics until stopped, where no "
              "gateway or supervisor serves them (systemd units, Kubernetes pods).")(
        click.option("--host", default="0.0.0.0", show_default=True,
                     help="Address to listen on."),
        click.option("--port", type=click.IntRange(1, 65535), default=9464, show_default=True,
                     help="Port to listen on.")),
    _operator("prune", cmd_prune, "Delete old executions (whole finished trees), events, "
              "enforcements and audit entries now, in small batches, and print the rows per "
              "table (ATTUNE.retention says how old; the executor also does this on a "
              "schedule).")(
        click.option("--older-than", metavar="AGE",
                     help="Executions and events older than this go (7d, 12h, 30m; default: "
                          "ATTUNE.retention). Audit entries keep their own retention."),
        click.option("--dry-run", is_flag=True,
                     help="Count what would go, deleting nothing."),
        click.option("--batch-size", type=click.IntRange(1),
                     help="Rows per transaction (default: ATTUNE.retention.batch_size).")),
    _operator("keys", cmd_keys, "Create or complete the keys file (mode 600, the service "
              "user's) and print its path.")(),
    _operator("shell", cmd_shell, "An interactive nameko shell on the platform's broker "
              "(n.rpc.<service>.<method>()); reads commands from standard input when it is no "
              "terminal.")(),
    _operator("health", cmd_health, "Check one role, for an orchestrator's exec probe: exit 0 "
              "when healthy, 1 when not (a service must answer its RPC ping; a worker must also "
              "have a live heartbeat on this host; the gateway's /health must say ok).")(
        click.option("--role", required=True, type=click.Choice([*SERVICES, GATEWAY])),
        click.option("--timeout", type=float, default=PROBE_TIMEOUT_SECONDS, show_default=True,
                     help="Seconds before the probe gives up.")),
    _operator("create-user", cmd_create_user, "Create a user (with sign-up closed, the only "
              "way in); the password is read from a prompt, or from standard input with "
              "--password-stdin, never from arguments.")(
        click.argument("username"),
        click.option("--role", type=click.Choice([r.value for r in Role]),
                     default=Role.ADMIN.value, show_default=True),
        click.option("--tenant", type=int, help="An existing tenant's id (default: a new one)."),
        click.option("--password-stdin", is_flag=True,
                     help="Read the password from standard input (for scripts)."),
        click.option("--json", is_flag=True, help="Print the user as JSON.")),
)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (`attune`): the operator's commands above and the user's
    (`attune login`, `attune run`, ...: client.cli, over the REST API) in one click group."""
    from client.cli import cli as group
    from client.cli import main as run

    for command in OPERATOR_COMMANDS:
        group.add_command(command)
    return run(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
