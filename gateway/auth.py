"""Authentication (Bearer JWT) and the role → permission table enforced on every route."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request

from nameko_services.domain.auth import Principal, verify_token
from nameko_services.domain.errors import ForbiddenError, UnauthorizedError
from nameko_services.domain.states import Role

F = TypeVar("F", bound=Callable[..., Any])

# What each permission means and which roles hold it (api.md "Auth and users").
PERMISSIONS: dict[str, frozenset[str]] = {
    "read": frozenset({Role.ADMIN, Role.EDITOR, Role.EXECUTOR, Role.VIEWER}),
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


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def authenticate(token: str | None, *, execution_token: bool = False) -> Principal:
    if token is None:
        raise UnauthorizedError("Missing bearer token")
    types = ("access", "execution") if execution_token else ("access",)
    return verify_token(current_app.config["ATTUNE_SETTINGS"].jwt_secret, token, types)


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
    if principal.token_type == "access" and principal.role not in PERMISSIONS[needed]:
        raise ForbiddenError(
            f"Role '{principal.role}' lacks the '{needed}' permission needed for"
            f" {request.method} {request.path}",
            {"role": principal.role, "permission": needed},
        )
    g.principal = principal


def principal() -> Principal:
    return g.principal
