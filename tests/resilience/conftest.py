"""Resilience tests run against the e2e harness's platform (same fixtures, same marker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import api, make_api, platform  # noqa: F401 - fixtures re-exported


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/resilience needs the whole platform: mark it e2e."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
