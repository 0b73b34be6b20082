"""How an e2e test learns that a running action reached a point of its code: the action sets a
datastore key through the SDK (`attune.datastore.set(key, ...)`: the sandbox's way back into the
platform), and the test polls that key through the API of the same tenant. The sandbox shows
the action none of the test's files, so a flag file can no longer serve."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.e2e import ApiClient, wait_until


def flag_key(label: str) -> str:
    """A datastore key no other test uses (`label` says what it flags)."""
    return f"e2e-ready.{label}.{uuid.uuid4().hex}"


def flag_value(api: ApiClient, key: str) -> Any:
    """The value stored under `key` in `api`'s tenant, or None while it is not set."""
    response = api.get(f"/api/v1/datastore/{key}")
    if response.status_code == 404:
        return None
    return api.data(response, 200)["value"]


def wait_for_flag(api: ApiClient, key: str, timeout: float = 60.0,
                  message: str = "the action to set its flag") -> Any:
    """Poll `key` until the action has set it (to anything but null/false/empty); its value."""
    return wait_until(lambda: flag_value(api, key), timeout=timeout, message=message)
