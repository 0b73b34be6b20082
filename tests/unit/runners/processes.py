"""Looking at processes: this process's zombies, liveness, and host processes found by a
marker in their command line (a sandboxed action's own pids are its namespace's)."""

from __future__ import annotations

import os
import uuid


def marker_seconds() -> str:
    """A `sleep` duration no other process on the host uses: its command line is the marker."""
    return f"300.{uuid.uuid4().int % 10**9:09d}"


def processes_with(marker: str) -> list[int]:
    """Live host processes whose command line contains `marker`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and process_alive(int(name)):
            found.append(int(name))
    return found


def zombie_children() -> list[str]:
    """This process's children that are zombies (never reaped), as "pid (command)"."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                head, _, tail = handle.read().rpartition(")")
        except OSError:
            continue
        fields = tail.split()
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            found.append(f"{name} ({head.partition('(')[2]})")
    return found


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
