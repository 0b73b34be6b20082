"""GET /health: database, broker and a ping of every service, checked concurrently; with a
supervisor (`attune up`), whether it and every replica it runs are up, and their restarts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from flask import Blueprint, current_app, jsonify
from kombu import Connection
from sqlalchemy import text

from nameko_services.domain import health as probes
from nameko_services.domain import messages as m
from nameko_services.domain import sandboxing, supervision

from ..app import ctx
from ..auth import PUBLIC, permission
from .openapi import returns

bp = Blueprint("health", __name__)

SERVICES = (m.EXECUTOR, m.WORKER, m.SENSOR, m.NOTIFIER)
CHECK_TIMEOUT_SECONDS = 2.0
OK = probes.OK


def _check_database() -> None:
    with ctx().engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _check_broker() -> None:
    with Connection(ctx().settings.amqp_uri, connect_timeout=CHECK_TIMEOUT_SECONDS) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                               timeout=CHECK_TIMEOUT_SECONDS)


def _check_service(name: str) -> Callable[[], None]:
    def ping() -> None:
        pool = ctx().rpc
        if pool is None:
            raise RuntimeError("RPC is not configured in this process")
        with pool.get() as rpc:
            probes.check_pong(name, getattr(rpc, name).ping())

    return ping


def _check_worker() -> None:
    """A worker answers the ping, and no worker that claims to be online has gone silent."""
    _check_service(m.WORKER)()
    with ctx().engine.connect() as conn:
        silent = probes.silent_workers(conn)
    if silent:
        raise RuntimeError(f"no heartbeat from worker {', '.join(silent)}")


def _reason(exc: BaseException) -> str:
    """A short, credential-free reason (the driver's first line, not the whole chain)."""
    cause = getattr(exc, "orig", None) or exc
    first = (str(cause).strip().splitlines() or [""])[0][:200]
    return f"error: {type(cause).__name__}" + (f": {first}" if first else "")


def run_checks(checks: dict[str, Callable[[], None]], timeout: float) -> dict[str, str]:
    """Run every check in its own (green) thread; anything unfinished by `timeout` is an error."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    results: dict[str, str] = {}

    def run(name: str, check: Callable[[], None]) -> None:
        try:
            with app.app_context():
                check()
            results[name] = OK
        except Exception as exc:
            results[name] = _reason(exc)

    threads = [
        threading.Thread(target=run, args=item, daemon=True, name=f"health-{item[0]}")
        for item in checks.items()
    ]
    for thread in threads:
        thread.start()
    end = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    return {name: results.get(name, f"error: no answer within {timeout:g} s") for name in checks}


@bp.get("/health")
@permission(PUBLIC)
@returns("Health", envelope=False)
def health():
    """Platform health: database, broker and every service (and, under `attune up`, the
    supervisor and each replica: `supervisor` gives their state, restarts and last exit);
    200 when ok, 503 when degraded. `gateway_process` says which gateway process answered."""
    checks: dict[str, Callable[[], None]] = {"database": _check_database, "broker": _check_broker}
    checks.update({name: _check_service(name) for name in SERVICES})
    checks[m.WORKER] = _check_worker
    results = run_checks(checks, CHECK_TIMEOUT_SECONDS)
    body: dict[str, object] = {"gateway_process": ctx().process}
    state = supervision.read_state(sandboxing.run_dir(ctx().settings))
    if state is not None:  # none under systemd, or for a gateway started by hand
        results["supervisor"], body["supervisor"] = supervision.health_summary(state)
    healthy = all(value == OK for value in results.values())
    response = jsonify({"status": "ok" if healthy else "degraded", "checks": results, **body})
    response.status_code = 200 if healthy else 503
    return response
