"""What the shared rate limits cost per request (issue 16): the bucket statement alone, and
`GET /api/v1/me` through the gateway's app with the limits on and off.

Against the database of `--config` (its keys file gives the password), in this process, one
request at a time so the figures are latencies, not contention:

- `SELECT 1` on an autocommit connection of the pool: the round trip every statement pays;
  and in a transaction (`BEGIN`, `SELECT 1`, `COMMIT`): what a transaction adds;
- a take that is granted (one key, a bucket too large to empty), a take of a new key each time
  (the insert path), a refused take, and a peek;
- `GET /api/v1/me` through the Flask app (test client, no HTTP), limits on and off: the
  difference is what a request pays for its limit.

Its rows (bucket `bench`, a tenant of its own) are removed afterwards. Usage:

    .venv/bin/python -m bench.rate_limit --config nameko.yaml --count 2000
"""

# ruff: noqa: E402  (eventlet must patch the standard library before anything else is imported)
import eventlet

eventlet.monkey_patch()

import argparse
import copy
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, text

from gateway.app import create_app
from nameko_services.config import load_config
from nameko_services.domain import users
from nameko_services.domain.auth import in_place
from nameko_services.domain.db import make_engine, transaction
from nameko_services.domain.models import rate_limit_buckets, tenants
from nameko_services.domain.token_bucket import SharedBuckets

from .common import summary

BUCKET = "bench"
PASSWORD = "bench-password-1"


def timed(count: int, step: Callable[[int], Any]) -> list[float]:
    """Milliseconds of each of `count` calls of `step(n)`."""
    ms = []
    for n in range(count):
        began = time.perf_counter()
        step(n)
        ms.append((time.perf_counter() - began) * 1000)
    return ms


def statements(url: str, count: int) -> None:
    engine = make_engine(url, pool_size=2)
    auto = make_engine(url, pool_size=2, autocommit=True)  # as the gateway's buckets use
    large = SharedBuckets(auto, BUCKET, rate=1e9, burst=10**9)
    empty = SharedBuckets(auto, BUCKET, rate=1e-6, burst=1)
    hot, refused = f"hot-{uuid.uuid4().hex}", f"empty-{uuid.uuid4().hex}"
    empty.take(refused)
    fresh = uuid.uuid4().hex

    def select_one(_n: int) -> None:
        with auto.connect() as conn:
            conn.execute(text("SELECT 1")).scalar()

    def in_transaction(_n: int) -> None:
        with transaction(engine) as conn:
            conn.execute(text("SELECT 1")).scalar()

    try:
        for label, step in (
            ("SELECT 1 (round trip)", select_one),
            ("BEGIN, SELECT 1, COMMIT", in_transaction),
            ("take, granted", lambda _n: large.take(hot)),
            ("take, a new key", lambda n: large.take(f"{fresh}-{n}")),
            ("take, refused", lambda _n: empty.take(refused)),
            ("peek", lambda _n: large.peek(hot)),
        ):
            timed(min(200, count), step)  # warm up: pool, plans
            print(summary(label, timed(count, step)), flush=True)
    finally:
        with transaction(engine) as conn:
            conn.execute(delete(rate_limit_buckets).where(rate_limit_buckets.c.bucket == BUCKET))
        engine.dispose()
        auto.dispose()


def requests(config: dict[str, Any], count: int) -> None:
    """GET /api/v1/me in-process, limits on (buckets too large to refuse) and off."""
    on, off = copy.deepcopy(config), copy.deepcopy(config)
    on["ATTUNE"]["rate_limit"] = {"enabled": True, "user": {"rate": 1e9, "burst": 10**9},
                                  "admin": {"rate": 1e9, "burst": 10**9},
                                  "login_address": {"rate": 1e9, "burst": 10**9}}
    off["ATTUNE"]["rate_limit"] = {"enabled": False}
    apps = {"limits on": create_app(on), "limits off": create_app(off)}
    engine = apps["limits on"].extensions["attune"].engine
    name = f"bench-{uuid.uuid4().hex[:10]}"
    with transaction(engine) as conn:
        user = users.create_in_new_tenant(conn, tenant=None, username=name, password=PASSWORD,
                                          role="admin", actor_type="service", actor="bench",
                                          offload=in_place)
    try:
        for label, app in apps.items():
            client = app.test_client()
            token = client.post("/auth/login", json={"username": name, "password": PASSWORD}
                                ).json["data"]["access_token"]
            headers = {"Authorization": f"Bearer {token}"}

            def get(_n: int, client: Any = client, headers: dict[str, str] = headers) -> None:
                assert client.get("/api/v1/me", headers=headers).status_code == 200

            timed(min(200, count), get)
            print(summary(f"GET /api/v1/me, {label}", timed(count, get)), flush=True)
    finally:
        with transaction(engine) as conn:
            conn.execute(delete(tenants).where(tenants.c.id == user["tenant_id"]))
        for app in apps.values():
            app.extensions["attune"].dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="nameko.yaml")
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    config = load_config(args.config)
    statements(config["ATTUNE"]["database_url"], args.count)
    requests(config, args.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
