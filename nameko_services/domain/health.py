"""What a healthy role answers, shared by the gateway's `GET /health` and `attune health --role`
(the orchestrators' exec probes): a service's RPC `ping` says `ok`, and a worker that claims to
be online has beaten its heartbeat recently."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

OK = "ok"
# Two worker heartbeat periods (worker/runtime.py); then the executor declares the worker lost.
STALE_WORKER_SECONDS = 10.0


def check_pong(service: str, answer: Any) -> None:
    """Raise unless `answer` is `service`'s `ping()` saying ok."""
    if not isinstance(answer, dict) or answer.get("status") != OK:
        raise RuntimeError(f"unexpected answer from {service}: {answer!r}")


def silent_workers(conn: Connection) -> list[str]:
    """Workers that claim to be online but have not beaten their heartbeat for too long."""
    return list(conn.execute(text(
        "SELECT name FROM workers WHERE status = 'online'"
        " AND heartbeat_at < now() - make_interval(secs => :secs) ORDER BY name"
    ), {"secs": STALE_WORKER_SECONDS}).scalars())


def live_workers_on(conn: Connection, hostname: str) -> list[str]:
    """This host's workers that are online with a recent heartbeat (a pod's own worker)."""
    return list(conn.execute(text(
        "SELECT name FROM workers WHERE status = 'online' AND hostname = :host"
        " AND heartbeat_at >= now() - make_interval(secs => :secs) ORDER BY name"
    ), {"host": hostname, "secs": STALE_WORKER_SECONDS}).scalars())
