"""Security tests build the app without rate limits (but test_rate_limit.py), so walking every
route as every role measures RBAC, not the buckets; and with sign-up open, so the fuzzer reaches
the register route's own parsing instead of its closed-registration 403."""

from __future__ import annotations

import copy

import pytest


@pytest.fixture
def unlimited_config(config):
    cfg = copy.deepcopy(config)
    cfg["ATTUNE"]["rate_limit"] = {"enabled": False}
    cfg["ATTUNE"]["auth"] = {"registration": "open"}
    return cfg


@pytest.fixture
def app(unlimited_config, engine, published):
    from gateway.app import create_app

    app = create_app(unlimited_config, publish=lambda *args: published.append(args))
    yield app
    app.extensions["attune"].dispose()  # each app has its own pool: give it back


@pytest.fixture
def make_app():
    """Factory for extra apps (other keyrings, other limits); their pools closed afterwards."""
    from gateway.app import create_app

    made = []

    def make(config):
        made.append(create_app(config))
        return made[-1]

    yield make
    for app in made:
        app.extensions["attune"].dispose()
