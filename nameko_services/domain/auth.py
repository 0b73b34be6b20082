"""Password hashing (argon2id) and JWTs (HS256) of the three types api.md names."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .errors import UnauthorizedError

_hasher = PasswordHasher()
# Verifying against this keeps "unknown user" as slow as "wrong password" (no user enumeration).
_DUMMY_HASH = _hasher.hash("attune-dummy-password")

TOKEN_TYPES = ("access", "refresh", "execution")

# How the argon2 work runs: `offload(fn, *args)` returns `fn(*args)`. The gateway passes one that
# runs it in an OS thread (its eventlet hub keeps serving meanwhile); the CLI runs it in place.
Offload = Callable[..., Any]


def in_place(fn: Callable[..., Any], *args: Any) -> Any:
    """The Offload of a process without an event loop to keep free: just call."""
    return fn(*args)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant-work check; also burns the same time when there is no user."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user (access token or API key) or an action (execution token).

    `issued_at`: the token's `iat` (a user's tokens issued before a logout are refused)."""

    user_id: int
    tenant_id: int
    role: str
    token_type: str
    execution_id: int | None = None
    issued_at: float | None = None
    key_id: int | None = None

    @property
    def actor(self) -> str:
        if self.token_type == "execution":
            return f"execution:{self.execution_id}"
        if self.key_id is not None:
            return f"user:{self.user_id}:key:{self.key_id}"
        return f"user:{self.user_id}"


def issue_token(
    secret: str,
    *,
    user_id: int,
    tenant_id: int,
    role: str,
    token_type: str,
    ttl_seconds: int,
    execution_id: int | None = None,
) -> str:
    now = time.time()
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "tenant_id": tenant_id,
        "role": role,
        "type": token_type,
        "iat": now,  # not rounded: a token made just after a logout must be later than it
        "exp": int(now) + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    if execution_id is not None:
        claims["execution_id"] = execution_id
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_token(secret: str, token: str, expected_types: tuple[str, ...]) -> Principal:
    """Decode and check signature, expiry and type; anything wrong is UnauthorizedError (401).

    A token verified before is not decoded again (its signature and claims cannot change;
    60 µs of every authenticated request, issue 15): only its expiry and type are checked."""
    principal, expires = _verified(secret, token)
    if expires <= time.time():  # as PyJWT: expired once `exp` is not after now
        raise UnauthorizedError("Token has expired")
    if principal.token_type not in expected_types:
        raise UnauthorizedError(
            f"A token of type '{principal.token_type}' is not accepted here"
            f" (expected {' or '.join(expected_types)})"
        )
    return principal


@functools.lru_cache(maxsize=4096)
def _verified(secret: str, token: str) -> tuple[Principal, float]:
    """The caller of a token with a valid signature and claims, and its `exp`; refused tokens
    raise, so only valid ones are remembered (the 4,096 used last, a few MB at most)."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"require": ["sub", "exp", "iat", "type", "tenant_id", "role", "jti"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise UnauthorizedError("Token has expired") from exc
    except jwt.PyJWTError as exc:
        raise UnauthorizedError("Invalid token") from exc
    try:
        return Principal(
            user_id=int(claims["sub"]),
            tenant_id=int(claims["tenant_id"]),
            role=str(claims["role"]),
            token_type=str(claims["type"]),
            execution_id=claims.get("execution_id"),
            issued_at=float(claims["iat"]),
        ), float(claims["exp"])
    except (TypeError, ValueError) as exc:
        raise UnauthorizedError("Invalid token claims") from exc
