"""Replicas and their supervision on one host: the plan, restart decisions, and the state file.

`attune supervise` (nameko_services/cli.py) writes `<run_dir>/supervisor.json` whenever a
process starts, exits or is scheduled to restart; `attune status` and the gateway's /health read
it. The rules live here so that the writer and its readers agree, and so that the sensor's own
supervisor of pack sensors backs off the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

SERVICES = ("executor", "worker", "sensor", "notifier")
GATEWAY = "gateway"
ROLES = (*SERVICES, GATEWAY)
MAX_REPLICAS = 16
STATE_FILE = "supervisor.json"
# Each replica's name (`worker-2`), in its environment: the worker's name in executions shows it.
REPLICA_VARIABLE = "ATTUNE_REPLICA"
# Exits that mean "asked to stop" (systemd's Restart=on-failure treats them the same way).
CLEAN_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE)
RUNNING = "running"
BACKOFF = "backoff"  # exited on failure, restarting after a delay
STOPPED = "stopped"  # exited cleanly (or on failure with restarts off): left stopped


def replica_name(role: str, number: int) -> str:
    """`worker` for the first replica (its pid file and log keep their names), `worker-2`…"""
    return role if number == 1 else f"{role}-{number}"


def role_of(name: str) -> tuple[str, int]:
    """`worker-2` → ("worker", 2); `worker` → ("worker", 1)."""
    role, _, number = name.partition("-")
    return role, int(number) if number.isdigit() else 1


def parse_count(value: Any, where: str, maximum: int = MAX_REPLICAS) -> int:
    """A whole number 1..maximum (text from ${VAR:default} included); fails naming `where`."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if type(value) is not int or not 1 <= value <= maximum:
        raise ConfigurationError(f"{where} must be a whole number from 1 to {maximum}, "
                                 f"not {value!r}")
    return value


def parse_replicas(text: str) -> dict[str, int]:
    """`worker=3,executor=2,gateway=2` → {"worker": 3, …}; an unknown role, a repeat or a bad
    count fails naming it."""
    counts: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        role, sep, count = item.partition("=")
        role = role.strip()
        if not sep or role not in ROLES:
            raise ConfigurationError(f"--replicas: {item!r} is not ROLE=COUNT with ROLE one of "
                                     f"{', '.join(ROLES)}")
        if role in counts:
            raise ConfigurationError(f"--replicas: {role} given twice")
        counts[role] = parse_count(count.strip(), f"--replicas {role}")
    return counts


def backoff_seconds(failures: int, *, base: float = 1.0, factor: float = 2.0,
                    maximum: float = 60.0) -> float:
    """Delay before restart number `failures` (base, base·factor, … capped at `maximum`)."""
    return min(base * factor ** max(0, failures - 1), maximum)


def describe_exit(returncode: int | None) -> str:
    """`exit 1`, `killed by SIGKILL`, or `exit unknown` (a process we did not start)."""
    if returncode is None:
        return "exit unknown"
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
        return f"killed by signal {-returncode}"
    return f"exit {returncode}"


def failed(returncode: int | None) -> bool:
    """Did the process end on failure (restart it), rather than stop as it was asked?"""
    if returncode is None:
        return True  # vanished without our seeing why: assume the worst
    return returncode > 0 or (returncode < 0 and -returncode not in CLEAN_SIGNALS)


def state_path(run_dir: Path) -> Path:
    return run_dir / STATE_FILE


def write_state(run_dir: Path, state: Mapping[str, Any]) -> None:
    """Replace the state file atomically (readers never see half of it); readable by all."""
    path = state_path(run_dir)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(state, indent=1, sort_keys=True))
    partial.chmod(0o644)
    os.replace(partial, path)


def read_state(run_dir: Path) -> dict[str, Any] | None:
    """The supervisor's state, or None when there is none (no supervisor, or systemd)."""
    try:
        state = json.loads(state_path(run_dir).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def pid_alive(pid: Any) -> bool:
    """Does process `pid` exist (as anyone's)?"""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def health_summary(state: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(check, section) for /health: the check is "ok" while the supervisor lives and every
    replica runs, else an error naming what does not; the section gives each process's state,
    restarts and last exit, so repeated crashes show even when all is running again."""
    processes = {p["name"]: {"state": p.get("state"), "restarts": p.get("restarts", 0),
                             "last_exit": p.get("last_exit")}
                 for p in state.get("processes") or () if isinstance(p, dict) and "name" in p}
    section = {"restart": state.get("restart"), "processes": processes,
               "restarts": sum(p["restarts"] or 0 for p in processes.values())}
    if not pid_alive(state.get("pid")):
        return f"error: the supervisor (pid {state.get('pid')}) is not running", section
    down = sorted(name for name, p in processes.items() if p["state"] != RUNNING)
    if down:
        said = ", ".join(f"{name} {processes[name]['state']} after "
                         f"{processes[name]['last_exit'] or 'start'}" for name in down)
        return f"error: not running: {said}", section
    return "ok", section
