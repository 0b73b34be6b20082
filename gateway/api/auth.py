"""/auth/register|login|refresh|logout, /api/v1/me (and its password) and /api/v1/users."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from flask import Blueprint

from nameko_services.domain import messages, users
from nameko_services.domain.auth import issue_token, verify_token
from nameko_services.domain.db import isoformat, transaction
from nameko_services.domain.errors import ForbiddenError, UnauthorizedError
from nameko_services.green import in_os_thread

from ..app import ctx
from ..auth import PERMISSIONS, PUBLIC, permission, principal
from ..http import accepts, json_body, one, page, page_args
from .openapi import responds, returns

bp = Blueprint("auth", __name__)


def _token_pair(user: dict) -> dict:
    settings = ctx().settings
    common = {"user_id": user["id"], "tenant_id": user["tenant_id"], "role": user["role"]}
    return {
        "user": users.to_api(user),
        "access_token": issue_token(settings.jwt_secret, token_type="access",
                                    ttl_seconds=settings.access_token_ttl_seconds, **common),
        "refresh_token": issue_token(settings.jwt_secret, token_type="refresh",
                                     ttl_seconds=settings.refresh_token_ttl_seconds, **common),
        "token_type": "Bearer",
        "expires_in": settings.access_token_ttl_seconds,
    }


REGISTRATION_CLOSED = ("Registration is closed on this server: an operator creates users with "
                       "`attune create-user`")


@bp.post("/auth/register")
@permission(PUBLIC)
@responds(403, "Registration is closed (ATTUNE.auth.registration): an operator creates users "
               "with `attune create-user`")
@accepts({"username": {"type": "string"}, "password": {"type": "string"},
          "tenant": {"type": "string"}}, {"username", "password"})
@returns("TokenPair")
def register():
    """Sign up: a new tenant whose admin you are (403 while ATTUNE.auth.registration is closed)."""
    if not ctx().settings.auth.registration_open:
        raise ForbiddenError(REGISTRATION_CLOSED, {"registration": "closed"})
    body = json_body()
    with transaction(ctx().engine) as conn:
        user = users.register(conn, username=body["username"], password=body["password"],
                              tenant=body.get("tenant"), offload=in_os_thread)
    return one(_token_pair(user), 201)


@bp.post("/auth/login")
@permission(PUBLIC)
@accepts({"username": {"type": "string"}, "password": {"type": "string"}},
         {"username", "password"})
@returns("TokenPair")
def login():
    body = json_body()
    with transaction(ctx().engine) as conn:
        user = users.login(conn, str(body["username"]), str(body["password"]),
                           offload=in_os_thread)
    return one(_token_pair(user))


@bp.post("/auth/refresh")
@permission(PUBLIC)
@accepts({"refresh_token": {"type": "string"}}, {"refresh_token"})
@returns("TokenPair")
def refresh():
    body = json_body()
    claims = verify_token(ctx().settings.jwt_secret, str(body["refresh_token"]), ("refresh",))
    with transaction(ctx().engine) as conn:  # the user may have been removed or changed role
        user = users.get(conn, claims.tenant_id, claims.user_id)
    if users.tokens_revoked(user, claims.issued_at):
        raise UnauthorizedError("Token has been revoked (logout or password change); log in again")
    return one(_token_pair(user))


def _revoked_here_and_everywhere(user_id: int, at: float) -> None:
    """After the commit: this process refuses the old tokens at once, the others on the
    broadcast (and, should it be lost, on their next reload: gateway/revocations.py)."""
    ctx().revocations.note(user_id, at)
    ctx().publish(messages.GATEWAY, messages.TOKENS_REVOKED,
                  {"user_id": user_id, "valid_after": at})


@bp.post("/auth/logout")
@permission("self")
@returns("Logout")
def logout():
    """Log out everywhere: every access and refresh token you hold is refused from now.
    API keys stay valid until revoked."""
    who = principal()
    if who.token_type != "access":
        raise ForbiddenError("Log out with a login's access token", {"token_type": who.token_type})
    at = time.time()
    with transaction(ctx().engine) as conn:
        users.revoke_tokens(conn, who.tenant_id, who.user_id, at=at, reason="logout")
    _revoked_here_and_everywhere(who.user_id, at)
    return one({"logged_out": True, "tokens_valid_after": isoformat(
        datetime.fromtimestamp(at, UTC))})


@bp.post("/api/v1/me/password")
@permission("self")
@accepts({"current_password": {"type": "string"}, "new_password": {"type": "string"}},
         {"current_password", "new_password"})
@returns("TokenPair")
def change_password():
    """Change your password (`{"current_password", "new_password"}`): your other tokens are
    refused from now; the answer is a new token pair, as a login's."""
    body = json_body()
    who = principal()
    if who.token_type != "access":
        raise ForbiddenError("Change a password with a login's access token",
                             {"token_type": who.token_type})
    at = time.time()
    with transaction(ctx().engine) as conn:
        user = users.change_password(conn, who.tenant_id, who.user_id, body["current_password"],
                                     body["new_password"], at=at, offload=in_os_thread)
    _revoked_here_and_everywhere(who.user_id, at)
    return one(_token_pair(user))


@bp.get("/api/v1/me")
@permission("read")
@returns("Me")
def me():
    """You: your user, and the permissions your role holds (what the console offers you)."""
    who = principal()
    with transaction(ctx().engine) as conn:
        user = users.to_api(users.get(conn, who.tenant_id, who.user_id))
    return one({**user, "permissions": sorted(
        name for name, roles in PERMISSIONS.items() if who.role in roles)})


@bp.post("/api/v1/users")
@permission("admin")
@accepts({"username": {"type": "string"}, "password": {"type": "string"},
          "role": {"type": "string"}}, {"username", "password", "role"})
@returns("User")
def create_user():
    body = json_body()
    who = principal()
    with transaction(ctx().engine) as conn:
        user = users.create_user(conn, tenant_id=who.tenant_id, username=body["username"],
                                 password=body["password"], role=body["role"],
                                 actor_type="user", actor=who.actor, offload=in_os_thread)
    return one(users.to_api(user), 201)


@bp.get("/api/v1/users")
@permission("read")
@returns("User", many=True)
def list_users():
    limit, offset = page_args()
    with transaction(ctx().engine) as conn:
        items, total = users.list_users(conn, principal().tenant_id, limit, offset)
    return page(items, total, limit, offset)
