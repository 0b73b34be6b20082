"""Which users' access tokens are revoked (logout, password change), known to every gateway
process without a database read per request.

Each process keeps `user id → tokens valid after` for the users who revoked within an access
token's lifetime. The process that carries out a revocation notes it at once and broadcasts it
(`messages.TOKENS_REVOKED`, received by every gateway process's relay, `serve.py`); each process
also re-reads the list from the database every `RELOAD_SECONDS`, so a broadcast lost in a broker
outage is made good. Refresh tokens and API keys are checked against the database on each use.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, func, select

from nameko_services.domain.auth import Principal
from nameko_services.domain.db import transaction
from nameko_services.domain.models import users

RELOAD_SECONDS = 30.0


class Revocations:
    """`refuses(principal)`: was this access token issued before its user's last revocation?"""

    def __init__(self, engine: Engine, access_ttl_seconds: int) -> None:
        self._engine = engine
        self._ttl = access_ttl_seconds
        self._after: dict[int, float] = {}
        self._loaded = float("-inf")

    def note(self, user_id: int, valid_after: float) -> None:
        """A revocation done here or broadcast by another process."""
        self._after[user_id] = max(valid_after, self._after.get(user_id, valid_after))

    def refuses(self, who: Principal) -> bool:
        if who.token_type != "access":
            return False
        if time.monotonic() - self._loaded > RELOAD_SECONDS:
            self._reload()
        after = self._after.get(who.user_id)
        return after is not None and (who.issued_at is None or who.issued_at <= after)

    def _reload(self) -> None:
        """The revocations an unexpired access token could still predate."""
        since = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, self._ttl)
        with transaction(self._engine) as conn:
            rows = conn.execute(
                select(users.c.id, func.extract("epoch", users.c.tokens_valid_after))
                .where(users.c.tokens_valid_after > since)
            ).all()
        self._after = {user_id: float(after) for user_id, after in rows}
        self._loaded = time.monotonic()

    def on_broadcast(self, payload: dict[str, Any]) -> None:
        self.note(int(payload["user_id"]), float(payload["valid_after"]))
