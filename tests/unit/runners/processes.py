"""Looking at this process's children: zombies and liveness."""

from __future__ import annotations

import os


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
