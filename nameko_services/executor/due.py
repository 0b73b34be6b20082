"""What a due durable timer does, by kind: the next retry attempt, a workflow timeout, an
inquiry's expiry. The timer is claimed (deleted) in the same transaction as its effect."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine

from ..domain.crypto import Cipher
from ..domain.db import transaction
from . import inquiry, retry, timers, workflow
from .news import Dispatch, Outgoing, send

log = logging.getLogger(__name__)

RETRY_FAILED_TIMER_AFTER_SECONDS = 5.0

Handler = Callable[[Connection, Cipher, dict[str, Any]], list[Outgoing]]
HANDLERS: dict[str, Handler] = {
    timers.RETRY: retry.on_due,
    timers.WORKFLOW_TIMEOUT: workflow.on_timeout,
    timers.INQUIRY_EXPIRY: inquiry.on_expiry,
}


def fire(engine: Engine, cipher: Cipher, dispatch: Dispatch, timer_id: int) -> None:
    """Claim and run one due timer, then publish; a failing handler leaves the timer for later."""
    try:
        with transaction(engine) as conn:
            timer = timers.claim(conn, timer_id)
            if timer is None:
                return
            handler = HANDLERS.get(timer["kind"])
            if handler is None:
                log.warning("dropping timer %s of unknown kind %r", timer_id, timer["kind"])
                return
            out = handler(conn, cipher, timer)
    except Exception:
        log.exception("durable timer %s failed; trying again in %s s", timer_id,
                      RETRY_FAILED_TIMER_AFTER_SECONDS)
        timers.postpone(engine, timer_id, RETRY_FAILED_TIMER_AFTER_SECONDS)
        return
    send(dispatch, out)
