"""CPU per warm python run, in isolation: the worker's side, the fork server, and the forked
action children (issue 15's budget counts all three).

Runs a copy of `core.echo` (printing and returning a short message; `--action allocate`: one
keeping 50,000 dicts) through
`PythonRunner.run()` as the worker calls it (eventlet's monkey patching on, the sandbox made as
`bench/runner_start.py` makes it), `--count` times one after another after `--warmup` runs,
`--repeat` times, and prints per run:
- the worker side: this process (`getrusage(RUSAGE_SELF)`), the runner and the protocol;
- the fork server itself and the children it reaped (`/proc/<server>/stat`: utime + stime, and
  cutime + cstime; the server is this process's descendant running python_forkserver.py);
- the page faults of the server and of its children: after a fork, each page either of them
  writes first costs one (copy-on-write), which is most of a warm run's CPU.
Usage:

    .venv/bin/python -m bench.forkserver_cpu --count 500 --repeat 3
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from bench.common import children
from bench.runner_start import Bench, base_python

TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
ECHO = Path(__file__).resolve().parent.parent / "packs" / "core" / "actions" / "echo.py"


# An action that keeps many objects alive, so that the garbage collector's full collections run.
ALLOCATE = """
def run(message=""):
    kept = [{"i": i, "text": str(i)} for i in range(50_000)]
    return len(kept)
"""


class EchoBench(Bench):
    """runner_start's bench whose python action is a copy of `core.echo` (or, with
    `--action allocate`, one building 50,000 dicts), given a message."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        super().__init__(args, root)
        entry = self.pack / "actions" / "echo.py"
        if args.action == "allocate":
            entry.write_text(ALLOCATE)
        else:
            shutil.copyfile(ECHO, entry)
        entry.chmod(0o644)
        self.entries["python"] = entry

    def request(self, runner: str, i: int) -> Any:
        return dataclasses.replace(super().request(runner, i), parameters={"message": "hello"})


def server_pid() -> int:
    """The host pid of the (single) fork server started by this process (a descendant)."""
    servers = []
    for pid in children(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        argv0 = os.path.basename(cmdline.split(b"\0", 1)[0])
        if b"python_forkserver.py" in cmdline and argv0.startswith(b"python"):
            servers.append(pid)
    if len(servers) != 1:
        raise SystemExit(f"expected one fork server of ours, found {servers}")
    return servers[0]


def _stat(pid: int) -> list[int]:
    """The numeric fields of /proc/<pid>/stat, index i being proc(5)'s field i + 1 (3: the
    ppid, 9: minflt, 13: utime; the pid, command and state read as 0)."""
    with open(f"/proc/{pid}/stat") as handle:
        rest = handle.read().rpartition(")")[2].split()
    return [0, 0, 0, *(int(v) if v.lstrip("-").isdigit() else 0 for v in rest[1:])]


def server_reading(pid: int) -> tuple[float, float, int, int]:
    """The server's own CPU and its reaped children's CPU (ms), and the server's and the
    children's page faults, so far."""
    fields = _stat(pid)
    own = (fields[13] + fields[14]) * TICK_MS
    reaped = (fields[15] + fields[16]) * TICK_MS
    return own, reaped, fields[9], fields[10]


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="measured runs per repetition")
    parser.add_argument("--warmup", type=int, default=20, help="runs not counted")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions")
    parser.add_argument("--network", choices=("none", "outbound"), default="outbound")
    parser.add_argument("--owner", type=int, default=4242, help="the sandbox's owner (tenant)")
    parser.add_argument("--python", default=base_python(), help="absolute python path")
    parser.add_argument("--action", choices=("echo", "allocate"), default="echo",
                        help="core.echo, or an action building 50,000 dicts")
    args = parser.parse_args()
    args.node = None

    warnings.filterwarnings("ignore", message=r"(?s)\s*Eventlet is deprecated")
    import eventlet

    eventlet.monkey_patch()  # as `nameko run` does for the worker
    from runners import forkserver

    root = Path(tempfile.mkdtemp(prefix="attune-bench-"))
    try:
        bench = EchoBench(args, root)
        for i in range(args.warmup):
            bench.one("python-warm", i)
        pid = server_pid()
        print(f"warm python runs of {args.action}: network {args.network}, python "
              f"{args.python}, server {pid}, {args.count} runs x {args.repeat}; CPU ms per run")
        totals = []
        for _ in range(args.repeat):
            bench.failures.clear()
            before, worker0, wall0 = server_reading(pid), self_cpu(), time.perf_counter()
            for i in range(args.count):
                bench.one("python-warm", i)
            wall = (time.perf_counter() - wall0) * 1000 / args.count
            worker = (self_cpu() - worker0) / args.count
            own, kids, server_faults, faults = (
                (after - earlier) / args.count
                for after, earlier in zip(server_reading(pid), before, strict=True))
            totals.append(own + kids)
            print(f"worker side {worker:5.2f}  server {own:5.2f}  children {kids:5.2f}  "
                  f"server+children {own + kids:5.2f}  (wall {wall:5.2f}; page faults: server "
                  f"{server_faults:4.0f}, child {faults:4.0f})"
                  + (f"  FAILED {len(bench.failures)}: {bench.failures[0]}"
                     if bench.failures else ""), flush=True)
        print(f"server+children median {statistics.median(totals):5.2f} ms per run")
    finally:
        forkserver.SERVERS.close()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
