"""A sandbox with network starts every time: slirp4netns is attached only once bwrap has set
up the sandbox's loopback (attached earlier, its `--configure` brings `lo` up first and bwrap
dies with "loopback: Failed RTM_NEWADDR", which showed as pack builds and sensors failing)."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runners import sandbox
from tests.support.e2e import wait_until
from tests.support.sandboxes import open_dir, sandbox_for

ROUNDS = 10
AT_ONCE = 6  # concurrent starts: the race needed a loaded machine to show


@pytest.fixture
def state_dir() -> Iterator[Path]:
    with open_dir() as path:
        yield path / "state"


def test_loopback_ready_waits_for_the_namespaces_own_loopback_address() -> None:
    holder = subprocess.Popen(["unshare", "--net", "sleep", "30"])
    try:
        wait_until(lambda: not _in_host_netns(holder.pid), timeout=10,
                   message="unshare --net to enter its namespace")
        # A fresh network namespace: `lo` is down and has no address yet.
        assert not sandbox._loopback_ready(holder.pid)
        subprocess.run(["nsenter", "-t", str(holder.pid), "-n", "ip", "link", "set", "lo",
                        "up"], check=True)
        assert sandbox._loopback_ready(holder.pid)
    finally:
        holder.kill()
        holder.wait()


def _in_host_netns(pid: int) -> bool:
    """`pid` is still in this process's network namespace."""
    return Path(f"/proc/{pid}/ns/net").readlink() == Path("/proc/self/ns/net").readlink()


def test_networked_sandboxes_started_at_once_all_come_up(state_dir: Path) -> None:
    box = sandbox_for(state_dir, network=True)
    results: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def start_one() -> None:
        proc = sandbox.spawn(box, ["/bin/true"], box.environment(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        err = proc.stderr.read()
        code = proc.wait()
        with lock:
            results.append((code, err))

    for _ in range(ROUNDS):
        threads = [threading.Thread(target=start_one) for _ in range(AT_ONCE)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    failed = [(code, err.decode(errors="replace")) for code, err in results if code != 0]
    assert len(results) == ROUNDS * AT_ONCE
    assert failed == [], failed
