"""Starts of a trivial action in isolation, no platform: python warm (fork server) and cold,
shell, node.

Each kind runs a do-nothing action `--count` times one after another (after `--warmup` runs
that are not counted) through its runner's `run()`, as the worker calls it, and prints the
wall time per run (p50/p95/p99); then `--count` more runs from `--concurrency` greenthreads
at once, and the runs per second they complete (runs that fail are counted and the first
error shown). eventlet's monkey patching is on, as in the worker (`nameko run`). Usage:

    .venv/bin/python -m bench.runner_start --count 200
    .venv/bin/python -m bench.runner_start --only python-warm --network none

Each run gets a sandbox made as the worker makes it (nameko_services/domain/sandboxing.py:
the pack folder read-only, `nameko.yaml`'s default limits, network as `--network`; the
platform's default is `outbound`, which attaches slirp4netns to every new sandbox) and owned
by `--owner`. On a checkout from before the sandbox (no `RunRequest.sandbox`), the same runs
go without one, so one script measures both sides. The python interpreter is an absolute path
(`--python`, default the base interpreter of this virtualenv), passed as the run's
interpreter on both sides.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

KINDS = ("python-warm", "python-cold", "shell", "node")
ACTIONS = {
    "python": ("action.py", "def run():\n    return 1\n"),
    "shell": ("action.sh", "#!/bin/sh\nexit 0\n"),
    "node": ("action.js", "module.exports.run = async () => 1;\n"),
}


def pct(values: list[float], q: float) -> float:
    """The q-th percentile by nearest rank (as bench/common.py)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def base_python() -> str:
    """This virtualenv's base interpreter, resolved (never a shim, never the virtualenv)."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def node_binary() -> str | None:
    found = shutil.which("node") or shutil.which("nodejs")
    return os.path.realpath(found) if found else None


class Bench:
    """The pack folder, the sandbox (when this checkout has one) and a request per kind."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        from runners.base import RunRequest

        self.args = args
        self.failures: list[str] = []
        self.pack = root / "pack"
        (self.pack / "actions").mkdir(parents=True)
        for folder in (root, self.pack, self.pack / "actions"):
            folder.chmod(0o755)  # the sandbox's uid must traverse and read them
        self.entries = {}
        for runner, (name, source) in ACTIONS.items():
            path = self.pack / "actions" / name
            path.write_text(source)
            path.chmod(0o755)
            self.entries[runner] = path
        self.sandboxed = "sandbox" in {f.name for f in dataclasses.fields(RunRequest)}
        self.sandbox = None
        if self.sandboxed:
            from runners.sandbox import Host, Limits, Sandbox

            # As sandboxing.for_action: the pack folder, the default limits, the network.
            self.sandbox = Sandbox(
                host=Host(state_dir=root / "sandbox", api_socket=root / "api.sock"),
                owner=args.owner, read_only=(str(self.pack),),
                network=args.network == "outbound", limits=Limits())

    def request(self, runner: str, i: int) -> Any:
        from runners.base import RunRequest

        values: dict[str, Any] = {
            "execution_id": i, "action_ref": f"bench.{runner}", "runner_type": runner,
            "working_dir": self.pack, "entry_point": self.entries[runner],
            "context": {"execution_id": i, "action_ref": f"bench.{runner}", "attempt": 1,
                        "item": None, "item_index": None, "api_url": "http://127.0.0.1:9",
                        "token": "bench-token"},
            "timeout_s": 30, "kill_grace_s": 5,
        }
        if runner == "python":
            values["interpreter"] = self.args.python
        if runner == "node":
            values["interpreter"] = self.args.node
        if self.sandbox is not None:
            values["sandbox"] = self.sandbox
        return RunRequest(**values)

    def runner(self, kind: str) -> tuple[str, Callable[[], Any]]:
        """(runner type, a factory of a fresh runner: one per run, as the worker makes)."""
        from runners.node import NodeRunner
        from runners.process import ProcessRunner
        from runners.python import PythonRunner
        from runners.shell import ShellRunner

        class ColdPythonRunner(PythonRunner):
            """The cold path the runner falls back to: a new interpreter (and sandbox) per run."""

            def start(self, request: Any, argv: Any, env: Any, stdio: Any) -> Any:
                return ProcessRunner.start(self, request, argv, env, stdio)

        return {"python-warm": ("python", PythonRunner),
                "python-cold": ("python", ColdPythonRunner),
                "shell": ("shell", ShellRunner), "node": ("node", NodeRunner)}[kind]

    def one(self, kind: str, i: int) -> float | None:
        """One run's wall time in ms; None (and the error kept) when it did not succeed."""
        runner_type, factory = self.runner(kind)
        request = self.request(runner_type, i)
        t0 = time.perf_counter()
        result = factory().run(request)
        elapsed = (time.perf_counter() - t0) * 1000
        if result.outcome != "succeeded":
            self.failures.append(f"{result.error} {result.stderr[-300:]!r}")
            return None
        return elapsed

    def measure(self, kind: str) -> str:
        import eventlet

        for i in range(self.args.warmup):
            self.one(kind, i)
        self.failures.clear()
        serial = [t for t in (self.one(kind, i) for i in range(self.args.count)) if t]
        pool = eventlet.GreenPool(self.args.concurrency)
        t0 = time.perf_counter()
        concurrent = [t for t in pool.imap(lambda i: self.one(kind, i), range(self.args.count))
                      if t]
        span = time.perf_counter() - t0
        failed = 2 * self.args.count - len(serial) - len(concurrent)
        return (f"{kind:<12} n={len(serial):<4} p50 {pct(serial, 50):6.1f} ms  "
                f"p95 {pct(serial, 95):6.1f} ms  p99 {pct(serial, 99):6.1f} ms  "
                f"mean {statistics.mean(serial):6.1f} ms  | x{self.args.concurrency}: "
                f"{len(concurrent) / span:6.1f} runs/s (p50 {pct(concurrent, 50):6.1f} ms)"
                + (f"  FAILED {failed}: {self.failures[0]}" if failed else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="measured runs per kind")
    parser.add_argument("--warmup", type=int, default=20, help="runs per kind not counted")
    parser.add_argument("--concurrency", type=int, default=8, help="greenthreads at once")
    parser.add_argument("--only", default=",".join(KINDS), help=f"comma list of {KINDS}")
    parser.add_argument("--network", choices=("none", "outbound"), default="outbound",
                        help="the sandbox's network (the platform's default: outbound)")
    parser.add_argument("--owner", type=int, default=4242, help="the sandbox's owner (tenant)")
    parser.add_argument("--python", default=base_python(), help="absolute python path")
    parser.add_argument("--node", default=node_binary(), help="absolute node path")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    if unknown := set(kinds) - set(KINDS):
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    if not os.path.isabs(args.python) or (args.node and not os.path.isabs(args.node)):
        parser.error("interpreters are given by absolute path")
    if "node" in kinds and not args.node:
        print("node is not installed: skipping the node runner")
        kinds.remove("node")

    warnings.filterwarnings("ignore", message=r"(?s)\s*Eventlet is deprecated")
    import eventlet

    eventlet.monkey_patch()  # as `nameko run` does for the worker
    import runners

    root = Path(tempfile.mkdtemp(prefix="attune-bench-"))
    try:
        bench = Bench(args, root)
        where = (f"sandboxed (owner {args.owner}, network {args.network})" if bench.sandboxed
                 else "no sandbox (this checkout predates it)")
        print(f"runner starts: {where}; runners from {Path(runners.__file__).parent}; python "
              f"{args.python}; node {args.node}; uid {os.getuid()}; {args.warmup} warm-up + "
              f"{args.count} runs per kind")
        for kind in kinds:
            print(bench.measure(kind), flush=True)
    finally:
        with_servers = sys.modules.get("runners.forkserver")
        if with_servers is not None:
            with_servers.SERVERS.close()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
