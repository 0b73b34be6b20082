"""The Attune SDK inside python actions (packs.md): `import attune`.

- `attune.params`: the execution's parameters; `attune.context`: execution_id, action_ref,
  attempt, item, item_index, api_url, api_socket (the gateway inside a sandbox), token.
- `attune.secrets.get(name)`: a tenant secret the action declared in `secrets:`.
- `attune.datastore.get(key, default=None)`, `.set(key, value, encrypted=False,
  ttl_seconds=None)`, `.delete(key)`: the tenant's datastore through the gateway, authenticated
  with the execution's short-lived token.
- `attune.webhooks.fire(trigger_id, payload)`: a webhook of the tenant, with the same token.

Standard library only: actions may run in a virtualenv that has nothing else installed.
"""

from __future__ import annotations

import json

# No `typing` import: every python action loads this module, so it stays cheap.
TYPE_CHECKING = False  # typing's flag without importing typing (mypy reads it the same way)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["AttuneError", "DatastoreError", "WebhookError", "context", "datastore", "params",
           "secrets", "webhooks"]

params: dict[str, object] = {}
context: dict[str, object] = {}
_secrets: dict[str, str] = {}
_TIMEOUT_SECONDS = 30.0


class AttuneError(Exception):
    """Base of the SDK's errors."""


class DatastoreError(AttuneError):
    """The datastore call failed (other than a missing key on `get`)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Secrets:
    """Read-only access to the secrets delivered on stdin."""

    def get(self, name: str, default: str | None = None) -> str | None:
        return _secrets.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in _secrets

    def __repr__(self) -> str:
        return f"<attune.secrets {sorted(_secrets)}>"


class _Datastore:
    """The tenant's key-value store, through the gateway's /api/v1/datastore routes."""

    def get(self, key: str, default: object = None) -> object:
        """The value of `key`; a missing (or expired) key returns `default`, not an error."""
        status, body = _request("GET", _key_path(key))
        if status == 404:
            return default
        _check(status, body, "get", key)
        return (body or {}).get("data", {}).get("value", default)

    def set(
        self, key: str, value: object, encrypted: bool = False, ttl_seconds: int | None = None
    ) -> None:
        """Create or replace `key`; encrypted values are stored with AES-GCM by the platform."""
        payload: dict[str, object] = {"key": key, "value": value, "encrypted": bool(encrypted)}
        if ttl_seconds is not None:
            payload["ttl_seconds"] = ttl_seconds
        status, body = _request("POST", "/api/v1/datastore", payload)
        _check(status, body, "set", key)

    def delete(self, key: str) -> bool:
        """Delete `key`; returns False when it did not exist."""
        status, body = _request("DELETE", _key_path(key))
        if status == 404:
            return False
        _check(status, body, "delete", key)
        return True


class WebhookError(AttuneError):
    """Firing a webhook failed."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _Webhooks:
    """Webhooks of this tenant, fired with the execution's token (its events record that this
    execution caused them: chain depth, loop protection)."""

    def fire(self, trigger_id: int, payload: object = None) -> dict:
        """POST `payload` to the webhook of trigger `trigger_id`; the receipt (event_id…)."""
        try:
            status, body = _request("POST", f"/api/v1/webhooks/{int(trigger_id)}",
                                    {} if payload is None else payload)
        except DatastoreError as exc:
            raise WebhookError(str(exc).replace("Datastore", "Webhook", 1)) from None
        if not 200 <= status < 300:
            error = body.get("error") if isinstance(body, dict) else None
            message = f" {error.get('message')}" if isinstance(error, dict) else ""
            raise WebhookError(f"Webhook {trigger_id} failed: HTTP {status}{message}", status)
        return (body or {}).get("data") or {}


secrets = _Secrets()
datastore = _Datastore()
webhooks = _Webhooks()


def _configure(document: dict[str, Any]) -> None:
    """Called once by the wrapper with the stdin document, before the action is imported."""
    params.clear()
    params.update(document.get("parameters") or {})
    context.clear()
    context.update(document.get("context") or {})
    _secrets.clear()
    _secrets.update(document.get("secrets") or {})


def _key_path(key: str) -> str:
    from urllib.parse import quote

    return "/api/v1/datastore/" + quote(str(key), safe="")


def _connection() -> object:
    """An HTTP connection to the gateway: its unix socket inside a sandbox (`api_socket`), else
    `api_url` (a container action with a network)."""
    import http.client

    socket_path = str(context.get("api_socket") or "")
    if socket_path:

        class UnixConnection(http.client.HTTPConnection):
            def connect(self) -> None:
                import socket

                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(self.timeout)
                self.sock.connect(socket_path)

        return UnixConnection("attune", timeout=_TIMEOUT_SECONDS)
    from urllib.parse import urlsplit

    api_url = urlsplit(str(context.get("api_url") or ""))
    if not api_url.hostname:
        raise DatastoreError("attune.context has no api_socket or api_url: not running inside "
                             "Attune?")
    return http.client.HTTPConnection(api_url.hostname, api_url.port or 80,
                                      timeout=_TIMEOUT_SECONDS)


def _request(method: str, path: str, payload: object = None) -> tuple[int, Any]:
    headers = {"Accept": "application/json", "Authorization": f"Bearer {context.get('token')}"}
    data = None
    if payload is not None:
        data = json.dumps(payload).encode()
        headers["Content-Type"] = "application/json"
    connection = _connection()
    try:
        connection.request(method, path, body=data, headers=headers)  # type: ignore[attr-defined]
        response = connection.getresponse()  # type: ignore[attr-defined]
        return response.status, _json(response.read())
    except OSError as exc:
        raise DatastoreError(f"Datastore {method} {path} failed: {exc}") from exc
    finally:
        connection.close()  # type: ignore[attr-defined]


def _json(raw: bytes) -> Any:  # whatever JSON the gateway sent
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _check(status: int, body: object, operation: str, key: str) -> None:
    if 200 <= status < 300:
        return
    message = ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = str(body["error"].get("message") or "")
    detail = f" {message}" if message else ""
    raise DatastoreError(f"Datastore {operation} of {key!r} failed: HTTP {status}{detail}", status)
