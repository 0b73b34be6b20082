"""Authentication (Bearer JWT or API key) and the role → permission table enforced on every
route."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request

from nameko_services.domain import api_keys
from nameko_services.domain.auth import Principal, verify_token
from nameko_services.domain.db import transaction
from nameko_services.domain.errors import ForbiddenError, UnauthorizedError
from nameko_services.domain.states import Role

F = TypeVar("F", bound=Callable[..., Any])

# What each permission means and which roles hold it (api.md "Auth and users").
PERMISSIONS: dict[str, frozenset[str]] = {
    "read": frozenset({Role.ADMIN, Role.EDITOR, Role.EXECUTOR, Role.VIEWER}),
    # the caller's own account: password, API keys, logout
    "self": frozenset({Role.ADMIN, Role.EDITOR, Role.EXECUTOR, Role.VIEWER}),
    "execute": frozenset({Role.ADMIN, Role.EDITOR, Role.EXECUTOR}),
    "write": frozenset({Role.ADMIN, Role.EDITOR}),
    "admin": frozenset({Role.ADMIN}),
}
PUBLIC = "public"


def permission(name: str, *, execution_token: bool = False) -> Callable[[F], F]:
    """Declare the permission a view needs; `execution_token` also admits an action's own token.

    A view without a declaration is refused (fail closed), so no route can forget it.
    """
    if name != PUBLIC and name not in PERMISSIONS:
        raise ValueError(f"unknown permission {name!r}")

    def mark(view: F) -> F:
        view.attune_permission = name  # type: ignore[attr-defined]
        view.attune_execution_token = execution_token  # type: ignore[attr-defined]
        return view

    return mark


API_KEY_HEADER = "X-Api-Key"


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def authenticate(token: str | None, *, execution_token: bool = False) -> Principal:
    """The caller of this request: its `X-Api-Key`, else its Bearer `token`."""
    key = request.headers.get(API_KEY_HEADER)
    if key is not None:
        return _key_principal(key)
    if token is None:
        raise UnauthorizedError(f"Missing bearer token (or {API_KEY_HEADER})")
    return principal_of(token, execution_token=execution_token)


def principal_of(credential: str, *, execution_token: bool = False) -> Principal:
    """The caller of a Bearer credential: an API key (`atk_…`, read from the database, so a
    revoked one is refused at once) or a JWT (refused once its user logged out after it was
    issued: gateway/revocations.py)."""
    if api_keys.looks_like_key(credential):
        return _key_principal(credential)
    types = ("access", "execution") if execution_token else ("access",)
    who = verify_token(current_app.config["ATTUNE_SETTINGS"].jwt_secret, credential, types)
    if current_app.extensions["attune"].revocations.refuses(who):
        raise UnauthorizedError("Token has been revoked (logout or password change); log in again")
    return who


def _key_principal(key: str) -> Principal:
    with transaction(current_app.extensions["attune"].engine) as conn:
        return api_keys.authenticate(conn, key.strip())


def check_route_access() -> None:
    """before_request hook: authenticate and authorise before the view touches anything."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None:  # 404/405: let Flask answer
        return
    needed = getattr(view, "attune_permission", None)
    if needed is None:
        raise ForbiddenError(f"Route {request.endpoint} declares no permission")
    if needed == PUBLIC:
        return
    principal = authenticate(bearer_token(), execution_token=view.attune_execution_token)
    if principal.token_type != "execution" and principal.role not in PERMISSIONS[needed]:
        raise ForbiddenError(
            f"Role '{principal.role}' lacks the '{needed}' permission needed for"
            f" {request.method} {request.path}",
            {"role": principal.role, "permission": needed},
        )
    g.principal = principal


def principal() -> Principal:
    return g.principal
