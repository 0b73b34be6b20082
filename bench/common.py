"""What every benchmark needs: timestamps, percentiles, and the service processes of a run dir
with their memory and CPU time read from /proc. (A registered user's client, and the webhook
load, come from tests/support: `e2e.register_user`, `chaos.Load`.)"""

from __future__ import annotations

import os
import statistics
from datetime import datetime
from pathlib import Path


def parse_ts(value: str) -> float:
    """An API timestamp (ISO 8601, `Z` allowed) as epoch seconds."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def pct(values: list[float], q: float) -> float:
    """The q-th percentile by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(label: str, ms: list[float]) -> str:
    """One line: p50 / p95 / p99 / max / mean of millisecond figures."""
    return (f"{label:<28} n={len(ms):<5} p50 {pct(ms, 50):7.1f} ms  p95 {pct(ms, 95):7.1f} ms  "
            f"p99 {pct(ms, 99):7.1f} ms  max {max(ms):7.1f} ms  mean {statistics.mean(ms):7.1f} ms")


def service_pids(run_dir: Path | None) -> dict[str, int]:
    """Service name → pid, from `<run-dir>/pids` (empty without a run dir)."""
    if run_dir is None:
        return {}
    return {path.stem: int(path.read_text().split()[0])
            for path in sorted((run_dir / "pids").glob("*.pid"))}


def children(pid: int) -> list[int]:
    """Every descendant of `pid` (fork servers, sensor processes, running actions)."""
    found: list[int] = []
    try:
        direct = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, direct):
        found += [child, *children(child)]
    return found


def _kib_field(path: str, key: str) -> float | None:
    """A `Key:   N kB` line of a /proc file, in MiB (None when the process is gone)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def rss_mib(pid: int) -> float | None:
    """VmRSS of a process in MiB (None once it is gone)."""
    return _kib_field(f"/proc/{pid}/status", "VmRSS:")


def pss_mib(pid: int) -> float | None:
    """Proportional set size (shared pages split between their users) in MiB."""
    return _kib_field(f"/proc/{pid}/smaps_rollup", "Pss:")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
