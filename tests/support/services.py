"""Kill, stop and restart the platform's processes the way an operator would.

Processes are found through their pid files (<run_dir>/pids/<name>.pid) and brought back with
`attune up`, which skips live processes and starts missing ones, so the session's platform is
whole again afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import requests

from tests.support.e2e import PROJECT_ROOT, wait_until

ATTUNE = PROJECT_ROOT / ".venv" / "bin" / "attune"


def pid_of(platform: Any, name: str) -> int:
    """The pid recorded for service `name` (gateway, executor, worker, sensor, notifier)."""
    return int(Path(platform.run_dir, "pids", f"{name}.pid").read_text().strip())


def alive(pid: int) -> bool:
    """A live, non-zombie process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def kill(platform: Any, name: str, sig: int = signal.SIGKILL) -> int:
    """Send `sig` to the service's process; returns its pid."""
    pid = pid_of(platform, name)
    os.kill(pid, sig)
    return pid


def wait_gone(pid: int, timeout: float = 60.0) -> None:
    wait_until(lambda: not alive(pid), timeout, message=f"process {pid} to exit")


def bring_up(platform: Any, timeout: float = 240.0) -> str:
    """`attune up` (no --fresh): restarts missing processes and waits for /health ok."""
    done = subprocess.run(
        [str(ATTUNE), "up", "--config", str(platform.config)], cwd=PROJECT_ROOT,
        env=platform.env or {**os.environ, "ATTUNE_RUN_DIR": str(platform.run_dir)},
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"attune up failed ({done.returncode}):\n{output}"
    return output


def health(platform: Any) -> dict[str, Any]:
    """GET /health (200 or 503) as JSON; {} when the gateway does not answer."""
    try:
        return requests.get(f"{platform.api_url}/health", timeout=10).json()
    except (requests.RequestException, ValueError):
        return {}
