"""`attune`: bring the platform up and down, report its state, migrate, register packs.

    attune up --config nameko.yaml [--fresh]     keys, database, migrations, core pack, processes
    attune up --roles worker,sensor --config …   another host: only those roles, shared database
    attune down --config nameko.yaml             SIGTERM every process, SIGKILL after 30 s
    attune status --config nameko.yaml           processes and /health
    attune migrate --config nameko.yaml          alembic upgrade head
    attune register-pack PATH (--system | --tenant ID) --config nameko.yaml
    attune rotate-keys --config nameko.yaml      re-encrypt secrets under the active key
    attune create-user NAME [--role R] [--tenant ID] [--password-stdin] --config nameko.yaml
    attune keys --config nameko.yaml             create or complete the keys file; print its path
    attune shell --config nameko.yaml            nameko's shell (n.rpc.<service>.<method>())
    attune health --role R --config nameko.yaml  one role's health, exit 0/1 (exec probes)

Processes run detached (their own session), log to <run_dir>/logs/<name>.log and record their
pid in <run_dir>/pids/<name>.pid; `up` skips any whose pid file names a live process. Started by
root, they run as the configured service user (never root); each reads its keys from the keys
file itself, so no key is in any process's environment.

One module on purpose: it is the operator's whole tool and reads top to bottom (keys, database
and broker, processes, commands); nothing else imports its process handling.
"""

from __future__ import annotations

import argparse
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
from typing import Any
from urllib.parse import unquote, urlsplit

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
from .domain.crypto import new_key_spec
from .domain.errors import AttuneError
from .domain.settings import Settings
from .domain.states import Role

SERVICES = ("executor", "worker", "sensor", "notifier")
GATEWAY = "gateway"
BIN = Path(sys.executable).parent  # the venv's bin: nameko and python live beside us
HEALTH_DEADLINE_SECONDS = 90.0
PROBE_TIMEOUT_SECONDS = 5.0
STARTUP_WATCH_SECONDS = 5.0  # `up --roles` without a gateway: how long it watches the starts
DATABASE_DEADLINE_SECONDS = 30.0
STOP_GRACE_SECONDS = 30.0
LOG_TAIL_LINES = 40


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

def command_for(name: str, config_path: Path) -> list[str]:
    if name == GATEWAY:
        return [str(BIN / "python"), "-m", "gateway.serve", "--config", str(config_path)]
    return [str(BIN / "nameko"), "run", "--config", str(config_path),
            f"nameko_services.{name}.service:{name.capitalize()}Service"]


def _marker(name: str) -> str:
    return "gateway.serve" if name == GATEWAY else f"nameko_services.{name}.service"


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
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def serving_pids(platform: Platform, gateway_pid: int) -> list[int]:
    """The gateway processes that serve: the gateway itself, or the processes it forked
    (ATTUNE.gateway.processes above 1), read from /proc."""
    if platform.settings.gateway.processes == 1:
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
    """name → pid of every live platform process."""
    found = {}
    for name in (*SERVICES, GATEWAY):
        pid = read_pid(platform, name)
        if pid is not None and is_alive(pid, name):
            found[name] = pid
    return found


def service_environment(platform: Platform,
                        account: pwd.struct_passwd | None) -> dict[str, str]:
    """Ours without any key (a key given in our environment is not passed on) and, for the
    service user, its own name and a home in the run dir."""
    env = {name: value for name, value in os.environ.items() if name not in SECRET_NAMES}
    env.update(PYTHONUNBUFFERED="1", ATTUNE_CONFIG=str(platform.config_path))
    if account is not None:
        env.update(HOME=str(platform.run_dir / "home"), USER=account.pw_name,
                   LOGNAME=account.pw_name)
    return env


def prepare_run_dir(platform: Platform, account: pwd.struct_passwd | None) -> None:
    """Logs, pids and the service user's home, all of the run dir the service user's."""
    for folder in (platform.logs, platform.pids, platform.run_dir / "home"):
        folder.mkdir(parents=True, exist_ok=True)
    if account is not None:
        check_reachable(PROJECT_ROOT, account)
        check_reachable(platform.run_dir, account)
        give_to(platform.run_dir, account)


def start_process(platform: Platform, name: str,
                  account: pwd.struct_passwd | None = None) -> subprocess.Popen[bytes]:
    """Start one service detached, as `account` when given (only root can), logging to its file."""
    argv = command_for(name, platform.config_path)
    env = service_environment(platform, account)
    as_user: dict[str, Any] = {}
    if account is not None:
        as_user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    log_path = platform.log_file(name)
    with open(log_path, "ab") as log:
        if account is not None:
            os.fchown(log.fileno(), account.pw_uid, account.pw_gid)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        log.write(f"=== {stamp} attune up: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                **as_user)
    platform.pid_file(name).write_text(f"{proc.pid}\n")
    say(f"started {name} (pid {proc.pid}) → {log_path}")
    return proc


def stop_all(platform: Platform, grace: float = STOP_GRACE_SECONDS) -> list[str]:
    """SIGTERM every live process, SIGKILL (its whole group) after `grace`; clear pid files."""
    live = running(platform)
    for pid in live.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    pending = dict(live)
    while pending and time.monotonic() < deadline:
        pending = {n: p for n, p in pending.items() if is_alive(p, n)}
        if pending:
            time.sleep(0.1)
    for name, pid in pending.items():
        say(f"{name} (pid {pid}) ignored SIGTERM for {grace:g} s: SIGKILL")
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    for name in (*SERVICES, GATEWAY):
        platform.pid_file(name).unlink(missing_ok=True)
    return list(live)


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


def _print_tails(platform: Platform) -> None:
    for name in (*SERVICES, GATEWAY):
        print(f"\n----- {platform.log_file(name)} (last {LOG_TAIL_LINES} lines) -----",
              file=sys.stderr)
        print(tail(platform.log_file(name)), file=sys.stderr)


def watch_started(platform: Platform, started: dict[str, subprocess.Popen[bytes]],
                  seconds: float = STARTUP_WATCH_SECONDS) -> None:
    """Without a gateway on this host there is no /health to wait for: watch the processes
    just started for `seconds` and fail, with their log tails, if one exits."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, proc in started.items():
            if proc.poll() is not None:
                _print_tails(platform)
                raise CliError(f"{name} exited with code {proc.returncode} during start-up "
                               f"(log: {platform.log_file(name)})")
        time.sleep(0.25)


def wait_healthy(platform: Platform, started: dict[str, subprocess.Popen[bytes]],
                 deadline_s: float = HEALTH_DEADLINE_SECONDS) -> dict[str, Any]:
    """Poll /health until "ok"; fail early when a process we started exits."""
    deadline = time.monotonic() + deadline_s
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        for name, proc in started.items():
            if proc.poll() is not None:
                _print_tails(platform)
                raise CliError(f"{name} exited with code {proc.returncode} during start-up "
                               f"(log: {platform.log_file(name)})")
        last = fetch_health(platform.settings.api_url, timeout=3.0)
        if last is not None and last.get("status") == "ok":
            return last
        time.sleep(0.25)
    _print_tails(platform)
    raise CliError(f"not healthy after {deadline_s:g} s; last /health: {json.dumps(last)}")


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


def cmd_up(args: argparse.Namespace) -> int:
    began = time.monotonic()
    platform = load_platform(args.config)
    settings = platform.settings
    roles = roles_to_start(args.roles)
    joining = args.roles is not None  # another host of a platform whose first host is up
    if joining and args.fresh:
        raise CliError("--fresh drops the shared database and vhost: only the first host's "
                       "`attune up` (without --roles) may")
    account = service_account(settings.service_user)
    ensure_keys(keys_path(), account)
    live = running(platform)
    if args.fresh and live:
        say(f"--fresh: stopping the running platform first ({', '.join(live)})")
        stop_all(platform)
        live = {}
    if GATEWAY in roles and GATEWAY not in live:
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
    prepare_run_dir(platform, account)
    started: dict[str, subprocess.Popen[bytes]] = {}
    for name in roles:
        if name in live:
            say(f"{name} already running (pid {live[name]})")
        else:
            started[name] = start_process(platform, name, account)
    if GATEWAY in roles:
        say(f"waiting for {settings.api_url}/health")
        wait_healthy(platform, started)
    else:
        say(f"no gateway on this host: watching {', '.join(started) or 'nothing'} for "
            f"{STARTUP_WATCH_SECONDS:g} s")
        watch_started(platform, started)
    print(f"\nAttune is up ({time.monotonic() - began:.1f} s): {', '.join(roles)}")
    if GATEWAY in roles:
        print(f"  API:        {settings.api_url}   "
              f"(OpenAPI: {settings.api_url}/api/v1/openapi.json)")
        print(f"  WebSocket:  {platform.ws_url}")
    print(f"  run dir:    {platform.run_dir}")
    print(f"  runs as:    {account.pw_name if account else pwd.getpwuid(os.geteuid()).pw_name}")
    for name in roles:
        print(f"  log {name + ':':10} {platform.log_file(name)}")
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


def cmd_down(args: argparse.Namespace) -> int:
    began = time.monotonic()
    platform = load_platform(args.config)
    stopped = stop_all(platform, grace=args.timeout)
    if stopped:
        say(f"stopped {', '.join(stopped)} in {time.monotonic() - began:.1f} s")
    else:
        say("nothing was running")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    platform = load_platform(args.config)
    live = running(platform)
    roles = platform.roles()
    for name in roles:
        state = f"running (pid {live[name]})" if name in live else "stopped"
        print(f"{name:10} {state:24} {platform.log_file(name)}")
    if GATEWAY not in roles:  # a joining host's run dir: /health is the first host's
        print(f"health     not checked: no gateway on this host (roles {', '.join(roles)})")
        return 0 if all(name in live for name in roles) else 3
    wanted = platform.settings.gateway.processes
    serving = serving_pids(platform, live[GATEWAY]) if GATEWAY in live else []
    print(f"{'serving':10} {len(serving)} of {wanted} gateway process(es)"
          + (f": pid {', '.join(map(str, serving))}" if serving else ""))
    health = fetch_health(platform.settings.api_url) if GATEWAY in live else None
    print(f"health     {json.dumps(health) if health else 'no answer'}")
    healthy = (all(name in live for name in roles) and len(serving) == wanted and bool(health)
               and health.get("status") == "ok")
    return 0 if healthy else 3


def cmd_migrate(args: argparse.Namespace) -> int:
    platform = load_platform(args.config)
    prepare_database(platform.settings.database_url, fresh=False)
    migrate(platform.settings.database_url)
    return 0


def cmd_register_pack(args: argparse.Namespace) -> int:
    if not args.system and args.tenant is None:
        raise CliError("say whose pack it is: --system or --tenant ID")
    platform = load_platform(args.config)
    path = Path(args.path).resolve()
    if not path.is_dir():
        raise CliError(f"{args.path} is not a directory")
    register_pack(platform.settings.database_url, path, tenant_id=args.tenant,
                  system=args.system, force=args.force)
    return 0


def cmd_rotate_keys(args: argparse.Namespace) -> int:
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


def cmd_create_user(args: argparse.Namespace) -> int:
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


def cmd_keys(args: argparse.Namespace) -> int:
    """Create or complete the keys file, the service user's when we are root; print its path
    (scripts/lib.sh reads the PostgreSQL and RabbitMQ passwords from it)."""
    path = Path(args.config).resolve()
    if not path.is_file():
        raise CliError(f"config file {args.config} not found")
    section = load_config(path).get("ATTUNE") or {}
    account = service_account(str(section.get("service_user") or "attune"))
    print(ensure_keys(keys_path(), account))
    return 0


def cmd_shell(args: argparse.Namespace) -> int:
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


def cmd_health(args: argparse.Namespace) -> int:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="attune", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], text: str) -> Any:
        command = sub.add_parser(name, help=text, description=text)
        command.add_argument("--config", default=os.environ.get("ATTUNE_CONFIG", "nameko.yaml"),
                             help="nameko.yaml-style config (default: $ATTUNE_CONFIG or "
                                  "nameko.yaml)")
        command.set_defaults(func=func)
        return command

    up = add("up", cmd_up, "start the platform and wait until /health is ok")
    up.add_argument("--fresh", action="store_true",
                    help="drop and recreate the database and the RabbitMQ vhost first")
    up.add_argument("--roles", metavar="ROLE,…",
                    help="start only these roles (executor, worker, sensor, notifier, gateway) "
                         "on this host, joining a platform whose first host ran `attune up`: "
                         "the database is checked, never created, migrated or dropped")
    add("down", cmd_down, "stop every platform process").add_argument(
        "--timeout", type=float, default=STOP_GRACE_SECONDS,
        help="seconds between SIGTERM and SIGKILL")
    add("status", cmd_status, "show processes and /health (exit 3 unless all is well)")
    add("migrate", cmd_migrate, "apply the Alembic migrations")
    pack = add("register-pack", cmd_register_pack, "register a pack folder")
    pack.add_argument("path")
    owner = pack.add_mutually_exclusive_group()
    owner.add_argument("--system", action="store_true", help="a system pack (every tenant)")
    owner.add_argument("--tenant", type=int, help="the tenant id that owns the pack")
    pack.add_argument("--no-force", dest="force", action="store_false",
                      help="fail instead of replacing an existing pack of the same ref")
    add("rotate-keys", cmd_rotate_keys,
        "re-encrypt every secret and encrypted datastore value under the active key"
        ).add_argument("--batch-size", type=int, default=200, help="rows per transaction")
    add("keys", cmd_keys, "create or complete the keys file (mode 600, the service user's) and "
        "print its path")
    add("shell", cmd_shell, "an interactive nameko shell on the platform's broker "
        "(n.rpc.<service>.<method>()); reads commands from standard input when it is no terminal")
    probe = add("health", cmd_health, "check one role, for an orchestrator's exec probe: exit 0 "
                "when healthy, 1 when not (a service must answer its RPC ping; a worker must "
                "also have a live heartbeat on this host; the gateway's /health must say ok)")
    probe.add_argument("--role", required=True, choices=[*SERVICES, GATEWAY])
    probe.add_argument("--timeout", type=float, default=PROBE_TIMEOUT_SECONDS,
                       help="seconds before the probe gives up (default: %(default)s)")
    user = add("create-user", cmd_create_user,
               "create a user (with sign-up closed, the only way in); the password is read from "
               "a prompt, or from standard input with --password-stdin, never from arguments")
    user.add_argument("username")
    user.add_argument("--role", choices=[r.value for r in Role], default=Role.ADMIN.value,
                      help="default: admin")
    user.add_argument("--tenant", type=int, help="an existing tenant's id (default: a new tenant)")
    user.add_argument("--password-stdin", action="store_true",
                      help="read the password from standard input (for scripts)")
    user.add_argument("--json", action="store_true", help="print the user as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (`attune`): the operator's commands above; any other word is a
    user's command (`attune login`, `attune run`, ...: client.cli, over the REST API)."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    operator = next(a.choices for a in parser._actions
                    if isinstance(a, argparse._SubParsersAction))
    if not words or words[0] not in operator:
        from client.cli import main as user_main

        return user_main(words, operator_commands=sorted(operator))
    args = parser.parse_args(words)
    try:
        return args.func(args)
    except (CliError, AttuneError) as exc:
        print(f"attune: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
