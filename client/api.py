"""An HTTP client of the Attune API: the base URL, the credentials (a cached login refreshed
when its access token expires, or a fixed `ATTUNE_TOKEN`), the envelope and the errors."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import requests

from .credentials import CredentialStore

REQUEST_TIMEOUT_SECONDS = 30.0
REFRESH_MARGIN_SECONDS = 30.0  # refresh a little early, so a request never carries a stale token
PAGE_SIZE = 200  # the API's largest page


class ApiError(Exception):
    """The API's error envelope `{"error": {"code", "message", "details"}}` (or what stood in
    for it), with the HTTP status."""

    def __init__(self, status: int, code: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}

    @classmethod
    def from_response(cls, response: requests.Response) -> ApiError:
        try:
            error = response.json()["error"]
            return cls(response.status_code, str(error.get("code", "error")),
                       str(error.get("message", "")), error.get("details") or {})
        except (ValueError, KeyError, TypeError, AttributeError):
            text = response.text.strip()[:200] or response.reason
            return cls(response.status_code, "http_error", f"HTTP {response.status_code}: {text}")


class Unreachable(Exception):
    """No answer from the API's address (refused, unknown host, timeout)."""


class NotLoggedIn(Exception):
    """Neither a cached login nor ATTUNE_TOKEN for the URL in use."""


def resolve_url(given: str | None, store: CredentialStore) -> str:
    """`--url`, else $ATTUNE_URL, else the URL of the last login; without a trailing slash."""
    url = given or os.environ.get("ATTUNE_URL") or store.default_url()
    if not url:
        raise NotLoggedIn("no API URL: log in with `attune login --url URL --username NAME`, "
                          "or set ATTUNE_URL")
    return url.rstrip("/")


def login_entry(username: str, tokens: dict[str, Any]) -> dict[str, Any]:
    """What the store keeps of a login's (or a refresh's) answer."""
    return {"username": username, "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"],
            "expires_at": time.time() + float(tokens.get("expires_in") or 0)}


class Api:
    """One API URL and how to authenticate to it; every call returns the body's `data`."""

    def __init__(self, url: str, store: CredentialStore, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.store = store
        self.fixed_token = token  # ATTUNE_TOKEN: a JWT or an API key, never refreshed
        self.http = requests.Session()
        self.http.headers["User-Agent"] = "attune-cli"

    @classmethod
    def from_environment(cls, url: str | None = None, store: CredentialStore | None = None
                         ) -> Api:
        store = store or CredentialStore()
        return cls(resolve_url(url, store), store, os.environ.get("ATTUNE_TOKEN") or None)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/ws"

    # Tokens ------------------------------------------------------------------------------

    def token(self) -> str:
        """The Bearer token to send: ATTUNE_TOKEN, or the cached login's access token (refreshed
        first when it has expired or is about to)."""
        if self.fixed_token:
            return self.fixed_token
        entry = self.store.get(self.url)
        if entry is None:
            raise NotLoggedIn(f"not logged in to {self.url}: run `attune login --url {self.url} "
                              f"--username NAME`, or set ATTUNE_TOKEN")
        if float(entry.get("expires_at") or 0) - REFRESH_MARGIN_SECONDS <= time.time():
            entry = self.refresh()
        return str(entry["access_token"])

    def refresh(self) -> dict[str, Any]:
        """POST /auth/refresh with the cached refresh token; cache and return the new pair."""
        entry = self.store.get(self.url)
        if entry is None or self.fixed_token:
            raise NotLoggedIn(f"no login to refresh for {self.url}")
        try:
            tokens = self.call("POST", "/auth/refresh",
                               json={"refresh_token": entry["refresh_token"]}, auth=False)
        except ApiError as exc:
            if exc.status == 401:
                raise NotLoggedIn(f"your login to {self.url} has expired: run `attune login` "
                                  f"again") from exc
            raise
        fresh = login_entry(entry["username"], tokens)
        self.store.put(self.url, fresh)
        return fresh

    # Calls ---------------------------------------------------------------------------------

    def _send(self, method: str, path: str, headers: dict[str, str],
              **kwargs: Any) -> requests.Response:
        try:
            return self.http.request(method, self.url + path, headers=headers,
                                     timeout=REQUEST_TIMEOUT_SECONDS, **kwargs)
        except requests.ConnectionError as exc:
            raise Unreachable(f"cannot reach the Attune API at {self.url}: "
                              f"{_reason(exc)}. Is the platform up, and is the URL right "
                              f"(--url, ATTUNE_URL)?") from exc
        except requests.Timeout as exc:
            raise Unreachable(f"the Attune API at {self.url} did not answer within "
                              f"{REQUEST_TIMEOUT_SECONDS:g} s") from exc

    def _request(self, method: str, path: str, *, auth: bool = True,
                 **kwargs: Any) -> requests.Response:
        """One request, its error envelope raised as ApiError. A 401 with a cached login is
        retried once after a refresh (the token may have been revoked or expired early)."""
        headers = {"Authorization": f"Bearer {self.token()}"} if auth else {}
        response = self._send(method, path, headers, **kwargs)
        if response.status_code == 401 and auth and not self.fixed_token:
            headers["Authorization"] = f"Bearer {self.refresh()['access_token']}"
            response = self._send(method, path, headers, **kwargs)
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        return response

    def _body(self, response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(response.status_code, "bad_response",
                           f"the answer to {response.request.method} {response.request.path_url}"
                           f" is not JSON") from exc

    def call(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Any:
        """One request; the answer's `data` (None for an empty answer, as a 204)."""
        response = self._request(method, path, auth=auth, **kwargs)
        if not response.content:
            return None
        body = self._body(response)
        if not isinstance(body, dict) or "data" not in body:
            raise ApiError(response.status_code, "bad_response",
                           f"the answer to {method} {path} is not Attune's JSON envelope")
        return body["data"]

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        if body is not None:
            kwargs["json"] = body
        return self.call("POST", path, **kwargs)

    def patch(self, path: str, body: Any) -> Any:
        return self.call("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)

    def items(self, path: str, limit: int | None = None, **params: Any) -> Iterator[Any]:
        """The items of a list, newest first, walking its pages; at most `limit` of them."""
        offset: int | None = 0
        given = 0
        while offset is not None and (limit is None or given < limit):
            size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - given)
            query = {k: v for k, v in params.items() if v is not None}
            response = self._body(self._request("GET", path, params={
                **query, "limit": size, "offset": offset}))
            for item in response["data"]:
                yield item
                given += 1
            offset = response["pagination"]["next_offset"]

    def find(self, kind: str, path: str, ref: str, **params: Any) -> dict[str, Any]:
        """One item of a list by its ref (or its id, when all digits)."""
        if ref.isdigit():
            return self.get(f"{path}/{ref}")
        for item in self.items(path, **params):
            if item.get("ref") == ref:
                return item
        raise ApiError(404, "not_found", f"{kind} {ref} not found")


def _reason(exc: requests.ConnectionError) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "unknown host"
    return "no connection"
