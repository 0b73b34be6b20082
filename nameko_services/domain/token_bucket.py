"""Keyed token buckets: the pure policy behind the gateway's rate limits (api.md "Rate limiting").

A bucket holds at most `burst` tokens and refills continuously at `rate` tokens per second; a
request takes one token or is refused with the time until the next token. Hand-written rather
than taken from a library (docs/security.md says why): it is this one class.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

DEFAULT_MAX_KEYS = 100_000


class TokenBuckets:
    """Buckets of one size by key, each full when first seen.

    Only the `max_keys` most recently used buckets are kept: forgetting one refills it, which
    errs toward allowing, and keeps memory bounded when a flood uses ever-new keys.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = int(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, stamp = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - stamp) * self.rate)

    def _store(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)

    def take(self, key: str) -> float:
        """Take one token: 0.0 when granted, else the seconds until one will be there."""
        with self._lock:
            now = self._clock()
            tokens = self._level(key, now)
            if tokens >= 1.0:
                self._store(key, tokens - 1.0, now)
                return 0.0
            self._store(key, tokens, now)
            return (1.0 - tokens) / self.rate

    def peek(self, key: str) -> float:
        """Like `take` but without taking: 0.0 when a token is there, else the wait."""
        with self._lock:
            tokens = self._level(key, self._clock())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after_seconds(wait: float) -> int:
    """A `Retry-After` value: whole seconds, at least 1, never earlier than the token."""
    return max(1, math.ceil(wait))
