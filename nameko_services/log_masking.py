"""Service logs never show a known secret: a logging filter masks the values in use right now.

The worker registers the secret values of each run (tenant secrets, `secret: true` parameters,
the execution token) for as long as it runs (`known(...)`); `MaskingFilter`, attached to the
log handlers in nameko.yaml's LOGGING section, replaces any of them by `***` in the message and
the traceback of every record. The registry is per process because logging is: one place, no
configuration to thread through.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from runners.base import Masker


class SecretValues:
    """The secret values in use in this process, counted (two runs may share one)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._values: dict[str, Any] = {}
        self._masker = Masker(())
        self._lock = threading.Lock()

    def add(self, values: Iterable[Any]) -> list[str]:
        """Start masking `values`; returns the handle `remove` takes."""
        items = {repr(v): v for v in values if v not in (None, "") and not isinstance(v, bool)}
        with self._lock:
            fresh = [key for key in items if self._counts[key] == 0]
            self._counts.update(items.keys())
            self._values.update(items)
            if fresh:
                self._masker = Masker(self._values.values())
        return list(items)

    def remove(self, keys: list[str]) -> None:
        """Stop masking what `add` returned `keys` for (unless another run still uses it)."""
        with self._lock:
            self._counts.subtract(keys)
            gone = [key for key in keys if self._counts[key] <= 0]
            for key in gone:
                self._counts.pop(key, None)
                self._values.pop(key, None)
            if gone:
                self._masker = Masker(self._values.values())

    @property
    def masker(self) -> Masker:
        return self._masker


REGISTRY = SecretValues()


@contextlib.contextmanager
def known(values: Iterable[Any], registry: SecretValues = REGISTRY) -> Iterator[None]:
    """Mask `values` in every log record of this process while the block runs."""
    keys = registry.add(values)
    try:
        yield
    finally:
        registry.remove(keys)


class MaskingFilter(logging.Filter):
    """Rewrites each record's message (and traceback text) with known secrets as `***`."""

    def __init__(self, name: str = "", registry: SecretValues = REGISTRY) -> None:
        super().__init__(name)
        self.registry = registry

    def filter(self, record: logging.LogRecord) -> bool:
        masker = self.registry.masker
        if not masker:
            return True
        message = record.getMessage()
        masked = masker.text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = masker.text(record.exc_text)
        if record.stack_info:
            record.stack_info = masker.text(record.stack_info)
        return True
