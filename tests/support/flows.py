"""Building blocks for e2e flows: packs, triggers, rules, listings and log watching."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.support.e2e import ApiClient, fixture_pack_path, service_log_errors, unique_name


def register_pack(api: ApiClient, name: str = "test_pack") -> dict[str, Any]:
    """POST /api/v1/packs with a fixture pack folder (registered from its path)."""
    return api.data(api.post("/api/v1/packs", json={"path": str(fixture_pack_path(name))}), 201)


def make_trigger(api: ApiClient, type_: str, parameters: dict | None = None,
                 name: str | None = None) -> dict[str, Any]:
    body = {"name": name or unique_name(type_).replace("-", "_"), "type": type_,
            "parameters": parameters or {}}
    return api.data(api.post("/api/v1/triggers", json=body), 201)


def make_rule(api: ApiClient, trigger: dict, action: str, **fields: Any) -> dict[str, Any]:
    body = {"name": unique_name("rule").replace("-", "_"), "trigger": trigger["id"],
            "action": action, **fields}
    return api.data(api.post("/api/v1/rules", json=body), 201)


def make_action(api: ApiClient, pack: str, name: str, code: str, **fields: Any) -> dict:
    """An inline-code python action in `pack` (the pack is created empty when missing)."""
    created = api.post("/api/v1/packs", json={"ref": pack, "version": "1.0.0"})
    assert created.status_code in (201, 409), created.text
    body = {"pack": pack, "name": name, "runner_type": "python", "code": code, **fields}
    return api.data(api.post("/api/v1/actions", json=body), 201)


def list_all(api: ApiClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paginated list, walking next_offset (a long walk may meet the user's
    rate limit: it waits the answer's Retry-After and asks again)."""
    items: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        response = api.get(path, params={**params, "limit": 200, "offset": offset})
        if response.status_code == 429:
            time.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        body = response.json()
        assert "data" in body, body
        items += body["data"]
        offset = body["pagination"]["next_offset"]
    return items


def fire_webhook(api: ApiClient, trigger: dict, payload: Any, **headers: str) -> dict:
    response = api.post(trigger["webhook_url"], json=payload,
                        headers={"X-Attune-Webhook-Token": trigger["webhook_token"], **headers})
    return api.data(response, 202)


def ts(value: str) -> float:
    """RFC 3339 → epoch seconds."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class LogWatch:
    """Error lines that appeared in the service logs since this watch was made."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.before = set(service_log_errors(run_dir))

    def new_errors(self) -> list[str]:
        return [line for line in service_log_errors(self.run_dir) if line not in self.before]
