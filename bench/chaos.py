"""The long chaos run (issue 10): steady webhook load; 20 kill -9s of a random service and
`attune up`; one RabbitMQ restart and one PostgreSQL restart; then the promise is audited.

Run it by hand, on a platform of its own (it restarts the broker and database every other
platform on the machine shares, so run nothing else meanwhile):

    export ATTUNE_RUN_DIR=.attune/chaos ATTUNE_API_PORT=18300 \
        ATTUNE_DATABASE_URL=postgresql+psycopg2://attune:attune@127.0.0.1:5432/attune_chaos \
        ATTUNE_AMQP_URI=amqp://guest:guest@127.0.0.1:5672/attune_chaos
    .venv/bin/attune up --config config.e2e.yaml --fresh   # creates that database and vhost
    .venv/bin/python -m bench.chaos --config config.e2e.yaml --kills 20 --seed 11
    .venv/bin/attune down --config config.e2e.yaml

Record the figures it prints in docs/reliability.md.

Replicas mode (`--supervised`): the platform runs several replicas of every role under
`attune up`'s supervisor with restarts on; each round SIGKILLs a random replica (any role) and
waits for the supervisor to restart it, nobody calling `attune up`:

    ATTUNE_RESTART=true .venv/bin/attune up --config config.e2e.yaml --fresh \
        --replicas worker=3,executor=2,sensor=2,notifier=2,gateway=2
    .venv/bin/python -m bench.chaos --config config.e2e.yaml --kills 20 --seed 11 \
        --supervised --skip-infra
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from nameko_services.config import load_config
from tests.support.chaos import (
    Load,
    assert_queues_drained,
    audit_outcome,
    chaos_rounds,
    setup_flow,
)
from tests.support.e2e import PROJECT_ROOT, register_user, wait_until
from tests.support.services import health

# The project's own stop-and-start steps (scripts/lib.sh), which work with or without systemd.
BROKER_RESTART = "bash -c 'source scripts/lib.sh; restart_rabbitmq'"
DATABASE_RESTART = "bash -c 'source scripts/lib.sh; restart_postgres'"


@dataclass
class Target:
    """The platform under test (the shape tests.support.services expects)."""

    api_url: str
    run_dir: Path
    config: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))


def restart(command: str, platform: Target, what: str) -> float:
    """Run a restart command, wait for /health ok; seconds until healthy."""
    began = time.monotonic()
    subprocess.run(shlex.split(command), check=True, cwd=PROJECT_ROOT)
    wait_until(lambda: health(platform).get("status") == "ok", timeout=300, interval=1.0,
               message=f"/health ok after the {what} restart")
    return time.monotonic() - began


def processes(platform: Target) -> list[dict]:
    """`attune status --json`'s processes (role, replica, pid, state, restarts)."""
    done = subprocess.run([str(PROJECT_ROOT / ".venv" / "bin" / "attune"), "status", "--json",
                           "--config", str(platform.config)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    return json.loads(done.stdout)["processes"]


def supervised_rounds(platform: Target, rounds: int, pause: float,
                      seed: int | None) -> list[dict[str, object]]:
    """SIGKILL a random replica per round; the seconds until its supervisor had it running."""
    rng = random.Random(seed)
    done = []
    for _ in range(rounds):
        victim = rng.choice([p for p in processes(platform) if p["pid"]])
        began = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)
        wait_until(lambda v=victim: any(
            p["name"] == v["name"] and p["state"] == "running" and p["pid"] not in (None, v["pid"])
            for p in processes(platform)), timeout=60, interval=0.2,
            message=f"{victim['name']} restarted")
        seconds = round(time.monotonic() - began, 1)
        print(f"killed {victim['name']} (pid {victim['pid']}); running again in {seconds} s",
              flush=True)
        done.append({"name": victim["name"], "back_s": seconds})
        time.sleep(pause)  # steady load between faults (a pacing choice, not an assertion)
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.e2e.yaml")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--pause", type=float, default=5.0, help="load seconds between faults")
    parser.add_argument("--rate", type=float, default=5.0, help="webhooks per second")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--action", default="core.noop",
                        help="what the rule runs (core.echo: a python action, forked warm)")
    parser.add_argument("--broker-restart", default=BROKER_RESTART)
    parser.add_argument("--database-restart", default=DATABASE_RESTART)
    parser.add_argument("--skip-infra", action="store_true",
                        help="no RabbitMQ/PostgreSQL restarts (service kills only)")
    parser.add_argument("--supervised", action="store_true",
                        help="replicas mode: kill any replica and let the supervisor restart "
                             "it (no `attune up`)")
    args = parser.parse_args()

    config = (PROJECT_ROOT / args.config).resolve()
    section = load_config(config)["ATTUNE"]
    api_url = f"http://127.0.0.1:{section['api_port']}"
    platform = Target(api_url, (PROJECT_ROOT / section["run_dir"]).resolve(), config)
    api = register_user(api_url)
    trigger, rule = setup_flow(api, args.action)
    load = Load(api, trigger, rate=args.rate)
    figures: dict[str, object] = {"kills": args.kills, "action": args.action}
    began = time.monotonic()
    load.start()
    try:
        half = args.kills // 2
        rounds = (lambda n, seed: supervised_rounds(platform, n, args.pause, seed)) \
            if args.supervised else (lambda n, seed: chaos_rounds(platform, n, args.pause, seed))
        figures["killed"] = rounds(half, args.seed)
        if not args.skip_infra:
            figures["broker_restart_s"] = round(restart(args.broker_restart, platform,
                                                        "RabbitMQ"), 1)
        figures["killed"] += rounds(args.kills - half,
                                    None if args.seed is None else args.seed + 1)
        if not args.skip_infra:
            figures["database_restart_s"] = round(restart(args.database_restart, platform,
                                                          "PostgreSQL"), 1)
        time.sleep(args.pause)
    finally:
        load.stop()
    figures["load_seconds"] = round(time.monotonic() - began, 1)
    figures["refused"] = load.refused
    settle = time.monotonic()
    figures.update(audit_outcome(api, trigger, rule, load.accepted, timeout=900))
    figures["settle_seconds"] = round(time.monotonic() - settle, 1)
    print(json.dumps(figures, indent=2), flush=True)  # the audit passed: shown whatever follows
    assert_queues_drained(platform)
    print("queues drained: the vhost holds no message")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
