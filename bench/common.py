"""What every benchmark needs: timestamps, percentiles, and the service processes of a run dir
with their memory and CPU time read from /proc. (A registered user's client, and the webhook
load, come from tests/support: `e2e.register_user`, `chaos.Load`.)"""

from __future__ import annotations

import os
import statistics
import threading
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


class ServiceSampler:
    """Peak VmRSS (MiB) of each service process, sampled every 50 ms in a thread, and the CPU
    time each used meanwhile (robust to a busy machine, unlike wall-clock figures)."""

    def __init__(self, run_dir: Path | None) -> None:
        self.pids = service_pids(run_dir)
        self.peak: dict[str, float] = {}
        self.start_rss: dict[str, float] = {}
        self.cpu_start: dict[str, float] = {}
        self.cpu_used: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                value = rss_mib(pid)
                if value is not None:
                    self.start_rss.setdefault(name, value)
                    self.peak[name] = max(self.peak.get(name, 0.0), value)
            self._stop.wait(0.05)

    def start(self) -> ServiceSampler:
        for name, pid in self.pids.items():
            self.cpu_start[name] = cpu_seconds(pid) or 0.0
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for name, pid in self.pids.items():
            self.cpu_used[name] = (cpu_seconds(pid) or 0.0) - self.cpu_start.get(name, 0.0)

    def __enter__(self) -> ServiceSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def report(self, per: int = 1, unit: str = "") -> str:
        if not self.pids:
            return "  (no --run-dir: service memory not sampled)"
        return "\n".join(
            f"  {name:<9} start {self.start_rss.get(name, 0):6.1f} MiB  "
            f"peak {self.peak.get(name, 0):6.1f} MiB  "
            f"cpu {self.cpu_used.get(name, 0):6.2f} s"
            + (f" ({self.cpu_used.get(name, 0) / per * 1000:.1f} ms per {unit})" if unit else "")
            for name in self.pids)
