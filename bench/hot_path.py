"""CPU of the hot path's two steps in isolation: a webhook received by the gateway's app, and
its event evaluated by the executor's code (one rule, one execution scheduled); then the
gateway's answer to `GET /api/v1/executions`, a page of 50 of those executions (issue 15).

Runs the gateway app (Flask test client, publishing nothing) and `enforcement.handle_events` in
this process against the platform's database, and prints the process CPU time per webhook and
per event: figures that hold on a busy machine, where end-to-end throughput does not. Run it
from a checkout (its own code is measured) as the service user, with the platform stopped so
no executor takes the events; its tenant, trigger and rule are removed afterwards:

    ./scripts/down.sh
    setpriv --reuid=attune --regid=attune --init-groups \\
        .venv/bin/python -m bench.hot_path --config nameko.yaml --count 300
"""

# ruff: noqa: E402  (eventlet must patch the standard library before anything else is imported)
import eventlet

eventlet.monkey_patch()

import argparse
import sys
import time
import uuid
from typing import Any

from sqlalchemy import delete, insert

from gateway.app import create_app
from nameko_services.config import load_config
from nameko_services.domain import auth
from nameko_services.domain.db import transaction
from nameko_services.domain.models import actions, rules, tenants, triggers
from nameko_services.executor import enforcement

BATCH = 10  # events per handle_events call: what a saturated executor takes per batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="nameko.yaml")
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()

    app = create_app(load_config(args.config))
    gateway = app.extensions["attune"]
    tenant_id, trigger = _flow(gateway.engine)
    try:
        client = app.test_client()
        url = f"/api/v1/webhooks/{trigger['id']}"
        headers = {"X-Attune-Webhook-Token": trigger["webhook_token"]}
        event_ids: list[int] = []

        def post(n: int) -> None:
            for i in range(n):
                answer = client.post(url, json={"i": i}, headers=headers)
                assert answer.status_code == 202, answer.get_data(as_text=True)
                event_ids.append(answer.get_json()["data"]["event_id"])

        post(20)  # warm-up: pools, statement caches
        started = time.process_time()
        post(args.count)
        webhook_ms = (time.process_time() - started) / args.count * 1000

        def evaluate(ids: list[int]) -> None:
            for first in range(0, len(ids), BATCH):
                enforcement.handle_events(
                    gateway.engine, gateway.cipher, lambda *news: None,
                    [(event_id, tenant_id) for event_id in ids[first:first + BATCH]])

        evaluate(event_ids[:20])
        started = time.process_time()
        evaluate(event_ids[20:])
        event_ms = (time.process_time() - started) / args.count * 1000

        token = auth.issue_token(gateway.settings.jwt_secret, user_id=0, tenant_id=tenant_id,
                                 role="viewer", token_type="access", ttl_seconds=600)
        bearer = {"Authorization": f"Bearer {token}"}

        def list_pages(n: int) -> None:
            for _ in range(n):
                answer = client.get("/api/v1/executions", headers=bearer)
                assert answer.status_code == 200, answer.get_data(as_text=True)

        list_pages(20)
        rounds = []  # the least of 5 rounds: the share of a busy machine's noise is smallest
        for _ in range(5):
            started = time.process_time()
            list_pages(args.count)
            rounds.append((time.process_time() - started) / args.count * 1000)
        list_ms = min(rounds)
    finally:
        with transaction(gateway.engine) as conn:
            conn.execute(delete(tenants).where(tenants.c.id == tenant_id))
    print(f"gateway: {webhook_ms:.2f} ms CPU per webhook (receipt, event stored)")
    print(f"executor: {event_ms:.2f} ms CPU per event (rule evaluated, execution scheduled; "
          f"batches of {BATCH})")
    print(f"gateway: {list_ms:.2f} ms CPU per GET /api/v1/executions (a page of "
          f"{min(50, args.count + 20)}, the least of 5 rounds)")
    return 0


def _flow(engine: Any) -> tuple[int, dict[str, Any]]:
    """A tenant of its own with a webhook trigger and a rule to core.noop."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    with transaction(engine) as conn:
        tenant_id = conn.execute(
            insert(tenants).values(name=name).returning(tenants.c.id)).scalar_one()
        trigger = conn.execute(insert(triggers).values(
            tenant_id=tenant_id, ref=f"{name}.hook", name="hook", type="webhook", parameters={},
            webhook_token=uuid.uuid4().hex,
        ).returning(triggers)).mappings().one()
        action_id = conn.execute(actions.select().where(
            actions.c.ref == "core.noop", actions.c.tenant_id.is_(None))).mappings().one()["id"]
        conn.execute(insert(rules).values(
            tenant_id=tenant_id, ref=f"{name}.rule", name="rule", trigger_id=trigger["id"],
            action_id=action_id, criteria=None, parameters={}, enabled=True))
    return tenant_id, dict(trigger)


if __name__ == "__main__":
    sys.exit(main())
