"""Tier-3 security scenarios sometimes look under the API: the platform's own database."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from nameko_services.config import load_config
from nameko_services.domain.db import make_engine


@pytest.fixture(scope="session")
def platform_config(platform) -> dict:
    """config.e2e.yaml as the running platform sees it (same environment as `attune up`)."""
    saved = dict(os.environ)
    os.environ.update(platform.env)
    try:
        return load_config(platform.config)
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="session")
def database(platform_config) -> Iterator[Engine]:
    """The platform's PostgreSQL database, read directly (as an attacker with a dump would)."""
    engine = make_engine(platform_config["ATTUNE"]["database_url"], pool_size=2)
    yield engine
    engine.dispose()
