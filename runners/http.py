"""HTTP actions: one request from an already rendered `http_config` (packs.md, http runner)."""

from __future__ import annotations

import codecs
import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import requests

from .base import Masker, Outcome, RunRequest, RunResult, error
from .process import truncation_marker

CHUNK = 64 * 1024


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
            with requests.request(
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
