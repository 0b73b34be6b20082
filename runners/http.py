"""HTTP actions: one request from an already rendered `http_config` (packs.md, http runner).

Every connection, redirects included, goes through `destinations.connect`: internal and
own-host addresses are refused before a byte is sent (docs/security.md, "http runner
destinations"). Proxies and other settings from the worker's environment are not used.
"""

from __future__ import annotations

import codecs
import functools
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from . import destinations
from .base import Masker, Outcome, RunRequest, RunResult, error
from .destinations import DestinationPolicy, DestinationRefused
from .process import truncation_marker

CHUNK = 64 * 1024


class _CheckedConnection(HTTPConnection):
    """Connects only to an address the policy accepts, checked right before connecting."""

    def __init__(self, *args: Any, policy: DestinationPolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.policy = policy

    def _new_conn(self) -> socket.socket:
        """urllib3's own `_new_conn` (same errors), with `destinations.connect` as transport."""
        try:
            sock = destinations.connect(
                self.host.strip("[]"), self.port, self.policy, self.timeout,
                self.source_address, self.socket_options)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out."
                                            f" (connect timeout={self.timeout})") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock


class _CheckedHTTPSConnection(_CheckedConnection, HTTPSConnection):
    """TLS on top: SNI and certificate checks still use the URL's host name."""


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class _CheckedAdapter(HTTPAdapter):
    """requests' adapter whose pools make `_Checked*Connection`s, and which names the URL of
    the hop (the first request or a redirect) a refusal is about."""

    def __init__(self, policy: DestinationPolicy) -> None:
        self._policy = policy
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        # A pool passes its extra keywords on to every connection it makes.
        self.poolmanager.pool_classes_by_scheme = {
            "http": functools.partial(_CheckedHTTPPool, policy=self._policy),
            "https": functools.partial(_CheckedHTTPSPool, policy=self._policy),
        }

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
             ) -> requests.Response:
        try:
            return super().send(request, *args, **kwargs)
        except DestinationRefused as exc:
            exc.url = request.url
            raise


def checked_session(policy: DestinationPolicy) -> requests.Session:
    """A session that connects only where `policy` allows and ignores proxy variables and
    .netrc (trust_env off); a CA bundle named by REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE is kept."""
    session = requests.Session()
    session.trust_env = False
    session.verify = (os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                      or True)
    adapter = _CheckedAdapter(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _success_statuses(value: Any) -> frozenset[int] | None:
    """None means "any 2xx"."""
    if value in (None, "", []):
        return None
    items = value if isinstance(value, list | tuple) else [value]
    return frozenset(int(item) for item in items)


class HttpRunner:
    """Sends the request with `requests` (green under eventlet) and records the response."""

    def __init__(self) -> None:
        self._canceled = threading.Event()

    def cancel(self) -> None:
        """Checked between body chunks; the connect/first-byte wait is bounded by the timeout."""
        self._canceled.set()

    def run(self, request: RunRequest) -> RunResult:
        masker = request.masker()
        config: Mapping[str, Any] = request.http_config or {}
        if self._canceled.is_set():
            return RunResult(
                outcome=Outcome.CANCELED, error=error("canceled", "Execution canceled")
            )
        method = str(config.get("method") or "GET").upper()
        url = config.get("url")
        if not url or not isinstance(url, str):
            return RunResult(
                outcome=Outcome.FAILED,
                error=error("invalid_http_config", "http_config.url is missing or not a string"),
            )
        try:
            success = _success_statuses(config.get("success_status"))
            timeout = float(config.get("timeout") or request.timeout_s)
        except (TypeError, ValueError) as exc:
            return RunResult(
                outcome=Outcome.FAILED, error=error("invalid_http_config", f"http_config: {exc}")
            )
        raw_headers = config.get("headers") or {}
        if not isinstance(raw_headers, Mapping):
            return RunResult(
                outcome=Outcome.FAILED,
                error=error("invalid_http_config", "http_config.headers must be a mapping"),
            )
        headers = {
            str(k): v if isinstance(v, str) else json.dumps(v)
            for k, v in raw_headers.items()
            if v is not None
        }
        body = config.get("body")
        kwargs: dict[str, Any] = {}
        if isinstance(body, dict | list):
            kwargs["json"] = body
        elif isinstance(body, bytes):
            kwargs["data"] = body
        elif body is not None:
            kwargs["data"] = str(body).encode()

        where = masker.text(f"{method} {url}")
        started = time.monotonic()
        deadline = started + timeout

        def failed(error_type: str, message: str, **extra: Any) -> RunResult:
            return RunResult(
                outcome=Outcome.FAILED,
                error=error(error_type, masker.text(message)),
                duration_ms=round((time.monotonic() - started) * 1000),
                **extra,
            )

        try:
            with checked_session(request.destination_policy) as session, session.request(
                method, url, headers=headers, timeout=(timeout, timeout), stream=True, **kwargs
            ) as response:
                data, total = bytearray(), 0
                keep = request.max_output_bytes + max(masker.longest - 1, 0)
                for chunk in response.iter_content(CHUNK):
                    total += len(chunk)
                    room = keep - len(data)
                    if room > 0:
                        data += chunk[:room]
                    if self._canceled.is_set():
                        return RunResult(
                            outcome=Outcome.CANCELED, error=error("canceled", "Execution canceled")
                        )
                    if time.monotonic() > deadline:
                        return failed("timeout", f"{where} timed out after {timeout:g} s")
                status, reason = response.status_code, response.reason or ""
                response_headers = {k: masker.text(v) for k, v in response.headers.items()}
                encoding = response.encoding or "utf-8"
        except DestinationRefused as exc:
            hop = "" if exc.url in (None, url) else f"{where} redirected: "
            return failed("destination_refused", f"{hop}{exc}")
        except requests.Timeout:
            return failed("timeout", f"{where} timed out after {timeout:g} s")
        except requests.ConnectionError as exc:
            return failed("connection_error", f"{where} failed to connect: {exc}")
        except requests.RequestException as exc:
            return failed("http_error", f"{where} failed: {exc}")

        output, truncated = self._output(data, total, encoding, request.max_output_bytes, masker)
        ok = (200 <= status < 300) if success is None else status in success
        return RunResult(
            outcome=Outcome.SUCCEEDED if ok else Outcome.FAILED,
            output=output,
            error=None if ok else error("http_status", f"HTTP {status} {reason} from {where}"),
            truncated=truncated,
            duration_ms=round((time.monotonic() - started) * 1000),
            status_code=status,
            headers=response_headers,
        )

    @staticmethod
    def _output(
        data: bytearray, total: int, encoding: str, limit: int, masker: Masker
    ) -> tuple[Any, bool]:
        """The body parsed as JSON, else text (capped and masked)."""
        truncated = total > limit
        raw = masker.cut(bytes(data), limit)
        try:
            decoder = codecs.getincrementaldecoder(encoding)("replace")
        except LookupError:
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
        text = decoder.decode(raw, final=not truncated)
        if truncated:
            return text + truncation_marker(limit), True
        if not text.strip():
            return None, False
        try:
            return masker.value(json.loads(text)), False
        except ValueError:
            return text, False
