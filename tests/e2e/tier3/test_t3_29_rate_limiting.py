"""T3.29 rate limiting at the e2e configuration's 10 requests/second per user: the burst, then
429 with Retry-After, back after the window; admins in a larger bucket of their own (limited too:
tests/e2e/security/test_signup.py); webhook triggers limited too."""

from __future__ import annotations

import time

from tests.support.e2e import wait_until
from tests.support.flows import make_trigger

RATE = 10  # config.e2e.yaml rate_limit.user


def hammer(api, n, path="/api/v1/me"):
    began = time.monotonic()
    statuses = [api.get(path) for _ in range(n)]
    return statuses, time.monotonic() - began


def test_a_user_is_limited_to_the_burst_then_refused_until_tokens_return(make_api):
    admin = make_api()
    viewer = make_api("viewer", admin=admin)
    responses, elapsed = hammer(viewer, 100)
    codes = [r.status_code for r in responses]
    assert codes[:RATE] == [200] * RATE
    assert set(codes) <= {200, 429}
    refused = [r for r in responses if r.status_code == 429]
    assert refused, codes
    # A token bucket refills continuously: at most the burst plus what `elapsed` earned.
    assert codes.count(200) <= RATE + RATE * elapsed + 1, (codes.count(200), elapsed)
    first = refused[0]
    assert first.json()["error"]["code"] == "rate_limited"
    retry_after = int(first.headers["Retry-After"])
    assert 1 <= retry_after <= 2

    time.sleep(1.0 + 0.2)  # a full window: the bucket is full again
    again = [viewer.get("/api/v1/me").status_code for _ in range(RATE)]
    assert again == [200] * RATE


def test_admins_have_a_larger_bucket_than_users(api):
    responses, _ = hammer(api, 100)  # ten times a user's burst, half an admin's (200)
    assert {r.status_code for r in responses} == {200}


def test_limits_are_per_user(make_api):
    admin = make_api()
    one, two = make_api("executor", admin=admin), make_api("executor", admin=admin)
    assert 429 in {r.status_code for r in hammer(one, 30)[0]}
    assert [two.get("/api/v1/me").status_code for _ in range(RATE)] == [200] * RATE


def test_a_webhook_trigger_is_limited_whoever_calls(api):
    trigger = make_trigger(api, "webhook")
    headers = {"X-Attune-Webhook-Token": trigger["webhook_token"]}
    codes = [api.post(trigger["webhook_url"], json={"i": i}, headers=headers).status_code
             for i in range(60)]
    assert codes[0] == 202 and 429 in codes, codes
    wait_until(lambda: api.post(trigger["webhook_url"], json={}, headers=headers
                                ).status_code == 202, timeout=10, interval=0.5,
               message="the webhook bucket to refill")
