"""End-to-end helpers: an HTTP client with a token, users, waiting, WebSocket and service logs.

Everything here talks to a running platform over HTTP and WebSocket only (plus its log files).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import requests
import websocket

from nameko_services.config import load_config

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_PACKS = PROJECT_ROOT / "tests" / "fixtures" / "packs"
E2E_CONFIG = PROJECT_ROOT / "config.e2e.yaml"
PASSWORD = "password123"
TERMINAL_STATUSES = ("succeeded", "succeeded_with_errors", "failed", "canceled")
SERVICE_NAMES = ("executor", "worker", "sensor", "notifier", "gateway")
_ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|^Traceback \(most recent call last\)")

T = TypeVar("T")


def load_config_with(config: Path, env: dict[str, str]) -> dict[str, Any]:
    """`config` parsed as a platform started with `env` sees it (its ${VAR:default}s)."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return load_config(config)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def fixture_pack_path(name: str) -> Path:
    """tests/fixtures/packs/<name> (asserts that it exists)."""
    path = FIXTURE_PACKS / name
    assert path.is_dir(), f"no fixture pack {path}"
    return path


def unique_name(prefix: str = "e2e") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class ApiClient:
    """requests.Session bound to the API's base URL and (optionally) a Bearer token.

    `api.get("/api/v1/executions")` returns the Response; `api.data(response)` asserts the status
    and returns the body's `data`.
    """

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 15.0,
                 user: dict[str, Any] | None = None, ws_url: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.ws_url = ws_url or self.base_url.replace("http", "ws", 1) + "/ws"
        self.timeout = timeout
        self.user = user or {}
        self.token = token
        self.refresh_token: str | None = None
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    @property
    def tenant_id(self) -> int | None:
        return self.user.get("tenant_id")

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        return self.session.request(method, url, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    @staticmethod
    def data(response: requests.Response, status: int | Iterable[int] = (200, 201, 202)) -> Any:
        """Assert the status (with the body in the message) and return `data`."""
        wanted = {status} if isinstance(status, int) else set(status)
        assert response.status_code in wanted, (
            f"{response.request.method} {response.url} → {response.status_code}: {response.text}"
        )
        return response.json()["data"]

    def create_user(self, role: str, username: str | None = None) -> ApiClient:
        """A new user of this client's tenant (this client must be admin), logged in."""
        username = username or unique_name(role)
        self.data(self.post("/api/v1/users",
                            json={"username": username, "password": PASSWORD, "role": role}), 201)
        return login(self.base_url, username, PASSWORD, ws_url=self.ws_url)

    def notifications(self, timeout: float = 10.0) -> NotificationSocket:
        """A WebSocket to /ws authenticated with this client's token."""
        assert self.token, "an anonymous client has no token"
        return NotificationSocket.connect(self.ws_url, self.token, timeout=timeout)

    def close(self) -> None:
        self.session.close()


def _client_from_auth(base_url: str, body: dict[str, Any], ws_url: str | None) -> ApiClient:
    client = ApiClient(base_url, body["access_token"], user=body["user"], ws_url=ws_url)
    client.refresh_token = body.get("refresh_token")
    return client


def register_user(base_url: str, username: str | None = None, password: str = PASSWORD,
                  tenant: str | None = None, *, ws_url: str | None = None) -> ApiClient:
    """POST /auth/register (a new tenant whose admin this user is, unless `tenant`)."""
    body: dict[str, Any] = {"username": username or unique_name("user"), "password": password}
    if tenant is not None:
        body["tenant"] = tenant
    response = requests.post(f"{base_url}/auth/register", json=body, timeout=15)
    return _client_from_auth(base_url, ApiClient.data(response, 201), ws_url)


def login(base_url: str, username: str, password: str = PASSWORD, *,
          ws_url: str | None = None) -> ApiClient:
    response = requests.post(f"{base_url}/auth/login",
                             json={"username": username, "password": password}, timeout=15)
    return _client_from_auth(base_url, ApiClient.data(response, 200), ws_url)


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.2,
               message: str | Callable[[], str] = "condition") -> T:
    """Call `predicate` until it returns something truthy (returned); AssertionError at the
    deadline, naming what was awaited and the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            what = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; "
                                 f"last value: {last!r}")
        time.sleep(interval)


def wait_for_execution(api: ApiClient, execution_id: int,
                       statuses: Iterable[str] = TERMINAL_STATUSES,
                       timeout: float = 60.0) -> dict[str, Any]:
    """Poll GET /api/v1/executions/{id} until its status is one of `statuses`."""
    wanted = {statuses} if isinstance(statuses, str) else set(statuses)
    seen: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        seen.update(api.data(api.get(f"/api/v1/executions/{execution_id}"), 200))
        return dict(seen) if seen["status"] in wanted else None

    return wait_until(reached, timeout, message=lambda: (
        f"execution {execution_id} to reach {sorted(wanted)} (now {seen.get('status')!r}, "
        f"result {seen.get('result')!r})"))


def service_log_errors(run_dir: Path | str,
                       ignore: Iterable[str] = ()) -> list[str]:
    """Every ERROR/CRITICAL/Traceback line of <run_dir>/logs/*.log, as 'file:line: text'."""
    patterns = [re.compile(p) for p in ignore]
    found = []
    for path in sorted(Path(run_dir, "logs").glob("*.log")):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if _ERROR_LINE.search(line) and not any(p.search(line) for p in patterns):
                found.append(f"{path.name}:{number}: {line}")
    return found


def log_tails(run_dir: Path | str, lines: int = 30) -> str:
    """The end of every service log, for failure reports."""
    parts = []
    for path in sorted(Path(run_dir, "logs").glob("*.log")):
        body = path.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"----- {path} -----\n" + "\n".join(body))
    return "\n".join(parts)


class NotificationSocket:
    """A /ws client: subscribe, then read JSON messages with deadlines."""

    def __init__(self, ws: websocket.WebSocket) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []

    @classmethod
    def connect(cls, ws_url: str, token: str | None, *, timeout: float = 10.0,
                header_auth: bool = True) -> NotificationSocket:
        headers = [f"Authorization: Bearer {token}"] if token and header_auth else []
        ws = websocket.create_connection(ws_url, header=headers, timeout=timeout)
        sock = cls(ws)
        if token and not header_auth:
            sock.send({"action": "auth", "token": token})
        return sock

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message))

    def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next message (AssertionError when none arrives in time)."""
        self.ws.settimeout(timeout)
        try:
            text = self.ws.recv()
        except websocket.WebSocketTimeoutException as exc:
            raise AssertionError(f"no WebSocket message within {timeout:g} s") from exc
        message = json.loads(text)
        self.received.append(message)
        return message

    def sync(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Ping and wait for the pong: the server has handled everything sent before.

        Returns the messages that arrived in between."""
        self.send({"action": "ping"})
        before: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(max(0.1, deadline - time.monotonic()))
            if message.get("event") == "pong":
                return before
            before.append(message)

    def subscribe(self, entity_type: str, entity_id: int | None = None) -> None:
        """Subscribe and wait until the server has applied it."""
        message: dict[str, Any] = {"action": "subscribe", "entity_type": entity_type}
        if entity_id is not None:
            message["entity_id"] = entity_id
        self.send(message)
        self.sync()

    def collect_until(self, done: Callable[[dict[str, Any]], bool], timeout: float = 60.0,
                      keep: Callable[[dict[str, Any]], bool] = lambda m: True
                      ) -> list[dict[str, Any]]:
        """Read messages (those `keep` accepts are returned) until one satisfies `done`."""
        kept: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"condition not met within {timeout:g} s; kept {kept!r}")
            message = self.recv(remaining)
            if keep(message):
                kept.append(message)
                if done(message):
                    return kept

    def close_code(self, timeout: float = 10.0) -> int | None:
        """Read until the server closes; its close code (None if it closed without one)."""
        self.ws.settimeout(timeout)
        while True:
            opcode, payload = self.ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None

    def close(self) -> None:
        with contextlib.suppress(OSError, websocket.WebSocketException):
            self.ws.close()
