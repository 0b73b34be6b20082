"""Fixtures for runner integration tests."""

import pytest

from tests.support.datastore_stub import datastore_stub


@pytest.fixture
def datastore_server():
    """The stand-in datastore routes (tests.support.datastore_stub)."""
    with datastore_stub() as server:
        yield server
