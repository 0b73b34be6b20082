"""What every benchmark needs: timestamps, percentiles, a keep-alive HTTP connection, and the
service processes of a run dir with their memory and CPU time read from /proc. (A registered
user's client, and the chaos run's webhook load, come from tests/support: `e2e.register_user`,
`chaos.Load`.)"""

from __future__ import annotations

import http.client
import os
import statistics
import threading
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit


class Client:
    """One keep-alive HTTP/1.1 connection sending the same headers with every request; it
    reconnects after a failure. Cheap on the client's CPU, which shares the platform's cores."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = headers
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def get(self, path: str) -> int:
        """The status of GET `path` (its body read), or 0 when the connection failed."""
        return self.fetch(path)[0]

    def fetch(self, path: str, method: str = "GET", body: str | None = None) -> tuple[int, bytes]:
        """The status and body of `method` `path`; (0, b"") when the connection failed."""
        try:
            self.conn.request(method, path, body=body, headers=self.headers)
            response = self.conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            return 0, b""


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


def cpu_seconds(pid: int, *, reaped: bool = False) -> float | None:
    """utime + stime of a process, in seconds; with `reaped`, plus what its children that it has
    waited for used (cutime + cstime)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def pids_named(*names: str) -> list[int]:
    """Every process whose command name (`/proc/<pid>/comm`: `postgres`, `beam.smp`) is one of
    `names`."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if proc.joinpath("comm").read_text().strip() in names:
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def family(pids: list[int]) -> set[int]:
    """These processes and all their descendants."""
    return {member for pid in pids for member in (pid, *children(pid))}


def family_cpu_seconds(pids: list[int]) -> float:
    """CPU time of these processes, their descendants and every child they have reaped: the
    difference of two readings is what the whole family used in between, including processes
    that started and ended meanwhile (an action's, a PostgreSQL backend's)."""
    return sum(cpu_seconds(pid, reaped=True) or 0.0 for pid in family(pids))


# Shared infrastructure whose CPU the benchmarks count beside the services' (comm names).
INFRASTRUCTURE = {"postgresql": ("postgres",), "rabbitmq": ("beam.smp", "epmd")}


def machine_times() -> tuple[int, int]:
    """(all, stolen) clock ticks of this machine since boot (/proc/stat's `cpu` line): stolen
    is the time its hypervisor ran something else while this machine wanted to run."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:9]]
    return sum(fields), fields[7]


class ServiceSampler:
    """Per service of a run dir (its process and descendants: the gateway's forked processes,
    the worker's fork servers, sandboxes and actions): the peak summed VmRSS (MiB), sampled
    every 50 ms in a thread, and the CPU time used meanwhile, its own process's apart; and the
    CPU time of PostgreSQL and RabbitMQ (every process of theirs on this machine, whoever it
    serves). CPU time is robust to a busy machine, unlike wall-clock figures."""

    def __init__(self, run_dir: Path | None) -> None:
        self.pids = service_pids(run_dir)
        self.peak: dict[str, float] = {}
        self.start_rss: dict[str, float] = {}
        self._cpu_start: dict[str, tuple[float, float]] = {}
        self.cpu_used: dict[str, float] = {}  # service or infrastructure → seconds, family
        self.own_cpu_used: dict[str, float] = {}  # service → seconds of its own process
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in self.pids.items():
                values = [rss_mib(member) for member in family([pid])]
                if any(value is not None for value in values):
                    value = sum(v for v in values if v is not None)
                    self.start_rss.setdefault(name, value)
                    self.peak[name] = max(self.peak.get(name, 0.0), value)
            self._stop.wait(0.05)

    def _cpu(self) -> dict[str, tuple[float, float]]:
        """name → (family CPU, own CPU) of every service and piece of infrastructure now. A
        tracked process under another (every service under the supervisor) counts only
        in its own row."""
        tracked = set(self.pids.values())
        now = {}
        for name, pid in self.pids.items():
            members = family([pid])
            nested = [m for m in members if m in tracked and m != pid]
            mine = members - family(nested)
            own = cpu_seconds(pid, reaped=not nested) or 0.0  # a reaped child may be nested
            now[name] = (own + sum(cpu_seconds(m, reaped=True) or 0.0 for m in mine - {pid}),
                         cpu_seconds(pid) or 0.0)
        if self.pids:
            for name, comms in INFRASTRUCTURE.items():
                now[name] = (family_cpu_seconds(pids_named(*comms)), 0.0)
        return now

    def start(self) -> ServiceSampler:
        self._cpu_start = self._cpu()
        self._machine_start = machine_times()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        (total, stolen), (total0, stolen0) = machine_times(), self._machine_start
        self.steal = (stolen - stolen0) / max(total - total0, 1)
        for name, (whole, own) in self._cpu().items():
            began = self._cpu_start.get(name, (0.0, 0.0))
            self.cpu_used[name] = whole - began[0]
            if name in self.pids:
                self.own_cpu_used[name] = own - began[1]

    def __enter__(self) -> ServiceSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def report(self, per: int = 1, unit: str = "", budget_ms: float | None = None) -> str:
        """One line per service and piece of infrastructure, then the total; with `unit`, CPU
        per `unit` (`per` of them), the total against `budget_ms` when given."""
        if not self.pids:
            return "  (no --run-dir: services not sampled)"

        def cpu(seconds: float) -> str:
            return f"cpu {seconds:6.2f} s" + (f" ({seconds / per * 1000:5.1f} ms per {unit})"
                                              if unit else "")

        lines = [f"  {name:<10} {cpu(self.cpu_used[name])}, its own process "
                 f"{self.own_cpu_used[name]:.2f} s; RSS start "
                 f"{self.start_rss.get(name, 0):.1f} MiB, peak {self.peak.get(name, 0):.1f} MiB"
                 for name in self.pids]
        lines += [f"  {name:<10} {cpu(self.cpu_used[name])} (all of this machine's)"
                  for name in INFRASTRUCTURE]
        total = sum(self.cpu_used.values())
        verdict = ""
        if unit and budget_ms is not None:
            verdict = (f": {'within' if total / per * 1000 <= budget_ms else 'over'} the "
                       f"budget of {budget_ms:g} ms")
        lines.append(f"  {'total':<10} {cpu(total)}{verdict}")
        lines.append(f"  {'steal':<10} {self.steal:.0%} of the machine's time went to other "
                     "guests of its hypervisor (above a few %, every figure is slowed)")
        return "\n".join(lines)
