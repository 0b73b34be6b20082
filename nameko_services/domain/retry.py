"""Retry policy (packs.md `retry:`): how many attempts, and how long to wait before each one.

Pure. Attempt n (1-based) that failed is followed, if attempts remain, by attempt n + 1 after
`min(delay_seconds * backoff_multiplier^(n-1), max_delay_seconds)`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_MAX_DELAY_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The `retry:` block of an action or workflow task, with packs.md's defaults."""

    max_attempts: int = 1
    delay_seconds: float = 0.0
    backoff_multiplier: float = 1.0
    max_delay_seconds: float = DEFAULT_MAX_DELAY_SECONDS

    @classmethod
    def from_mapping(cls, block: Mapping[str, Any] | None, **overrides: Any) -> RetryPolicy:
        """Build from a (validated) `retry:` block; missing keys take the defaults."""
        values = {**dict(block or {}), **{k: v for k, v in overrides.items() if v is not None}}
        return cls(
            max_attempts=max(1, int(values.get("max_attempts", 1))),
            delay_seconds=max(0.0, float(values.get("delay_seconds", 0.0))),
            backoff_multiplier=max(1.0, float(values.get("backoff_multiplier", 1.0))),
            max_delay_seconds=max(
                0.0, float(values.get("max_delay_seconds", DEFAULT_MAX_DELAY_SECONDS))
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def delay_after(self, attempt: int) -> float:
        """Seconds to wait after attempt `attempt` failed, before the next one."""
        return compute_backoff(
            attempt,
            delay_seconds=self.delay_seconds,
            multiplier=self.backoff_multiplier,
            max_delay_seconds=self.max_delay_seconds,
        )

    def allows_another(self, attempt: int) -> bool:
        """True when attempt `attempt` failing still leaves an attempt to make."""
        return attempt < self.max_attempts


# A task with `on_failure: retry` but no `retry:` block (and an action without one) gets this.
DEFAULT_TASK_RETRY = RetryPolicy(max_attempts=3, delay_seconds=1.0, backoff_multiplier=2.0,
                                 max_delay_seconds=60.0)


def compute_backoff(
    attempt: int, *, delay_seconds: float, multiplier: float, max_delay_seconds: float
) -> float:
    """`min(delay * multiplier^(attempt-1), max_delay)`; attempt 1 waits exactly `delay`."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    exponent = attempt - 1
    # Cap the exponent so huge attempt counts cannot overflow float.
    if multiplier > 1 and exponent * math.log2(multiplier) > 64:
        return float(max_delay_seconds)
    return float(min(delay_seconds * multiplier**exponent, max_delay_seconds))
