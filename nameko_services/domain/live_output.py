"""Live output of a running action: its lines, bounded, masked and batched for the notifier.

The runner hands every line of stdout and stderr to `LiveOutput.send` (runners.base
`OutputLines`) from its reader threads. What goes on is bounded per execution: at most
`lines_per_second` lines and `bytes_per_second` bytes in each second (counted over both
streams; the lines over the bound are dropped and a marker line says how many, where they
were), each line at most `line_bytes` long (cut, with a marker). Every `interval_ms` the kept
lines of each stream leave as one message with the stream's next sequence number, masked like
the final result (every secret of the run is `***`). Nothing runs while an action prints
nothing: the flushing thread starts with the first line and ends when a flush finds nothing.

Pure policy plus one thread; the worker gives it the publish function (api.md
"execution.output").
"""

from __future__ import annotations

import codecs
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runners.base import Masker, OutputLines

from .config_values import flag, reject_unknown
from .errors import ConfigurationError

log = logging.getLogger(__name__)

STREAMS = ("stdout", "stderr")
# The shortest line of a multi-line secret that is masked on its own in live lines, which
# are masked one by one (a whole multi-line secret never fits in one line).
MIN_SECRET_LINE = 4

# (stream, seq, lines, dropped): one message of one stream.
Publish = Callable[[str, int, list[str], int], None]


def dropped_marker(count: int) -> str:
    """The line that stands where `count` lines were dropped by the rate bound."""
    return f"... ({count} line{'s' if count != 1 else ''} dropped: live output rate limit)"


def cut_marker(limit: int) -> str:
    """What a live line longer than the limit ends with."""
    return f"... (line cut after {limit} bytes)"


@dataclass(frozen=True, slots=True)
class LiveOutputSettings:
    """ATTUNE.live_output: whether running actions' lines are published, how often, and how
    much per execution and second."""

    enabled: bool = True
    interval_ms: int = 200
    lines_per_second: int = 100
    bytes_per_second: int = 65536
    line_bytes: int = 4096

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any]) -> LiveOutputSettings:
        """Parse the block; an unknown key or a bad value fails naming it."""
        reject_unknown(section, cls.__dataclass_fields__, "live_output")
        default = cls()
        try:
            settings = cls(
                enabled=flag(section.get("enabled", default.enabled)),
                **{name: int(section.get(name, getattr(default, name)))
                   for name in ("interval_ms", "lines_per_second", "bytes_per_second",
                                "line_bytes")},
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"bad value in ATTUNE.live_output: {exc}") from None
        if not 10 <= settings.interval_ms <= 10_000:
            raise ConfigurationError("ATTUNE.live_output.interval_ms must be 10 to 10000")
        if min(settings.lines_per_second, settings.bytes_per_second, settings.line_bytes) < 1:
            raise ConfigurationError("ATTUNE.live_output needs lines_per_second, "
                                     "bytes_per_second and line_bytes >= 1")
        if settings.line_bytes > settings.bytes_per_second:
            raise ConfigurationError("ATTUNE.live_output.line_bytes must not exceed "
                                     "bytes_per_second (such a line could never be sent)")
        return settings


def live_masker(values: Iterable[Any]) -> Masker:
    """The run's secrets as a masker of single lines: each value, and each line (of at least
    MIN_SECRET_LINE characters) of a value that spans lines."""
    values = list(values)
    pieces = [line for value in values if isinstance(value, str) and "\n" in value
              for line in value.splitlines() if len(line.strip()) >= MIN_SECRET_LINE]
    return Masker([*values, *pieces])


class LiveOutput:
    """One execution's live output (see the module docstring). `lines()` is what the runner
    gets; `close()` publishes what is left and must be called once the run has ended."""

    def __init__(self, settings: LiveOutputSettings, masker: Masker, publish: Publish, *,
                 clock: Callable[[], float] = time.monotonic,
                 spawn: Callable[[Callable[[], None]], Any] | None = None) -> None:
        self.settings = settings
        self._masker = masker
        self._publish = publish
        self._clock = clock
        self._spawn = spawn or _thread
        self._lock = threading.Lock()  # pending lines and the window
        self._sending = threading.Lock()  # one flush at a time: messages leave in seq order
        # Per stream: kept lines as (bytes, cut), and ints standing for dropped runs.
        self._pending: dict[str, list[tuple[bytes, bool] | int]] = {s: [] for s in STREAMS}
        self._seq = dict.fromkeys(STREAMS, 0)
        self._window_start = float("-inf")
        self._window_lines = 0
        self._window_bytes = 0
        self._flushing = False
        self._closed = False
        self.dropped = 0

    def lines(self) -> OutputLines:
        """The runner's side: lines kept up to `line_bytes` plus what masking a secret that
        starts before the cut needs (Masker.cut)."""
        return OutputLines(self.send, self.settings.line_bytes + max(self._masker.longest - 1, 0))

    def send(self, stream: str, lines: list[bytes], cut: bool) -> None:
        """Take lines of `stream` (from a reader thread): keep what the bound allows, count the
        rest. Never raises: a problem here must not stop the reading of the action's output."""
        try:
            self._take(stream, lines, cut)
        except Exception:
            log.exception("live output: lines of %s lost", stream)

    def _take(self, stream: str, lines: list[bytes], cut: bool) -> None:
        limit = self.settings.line_bytes
        with self._lock:
            if self._closed:
                return
            now = self._clock()
            if now - self._window_start >= 1.0:
                self._window_start, self._window_lines, self._window_bytes = now, 0, 0
            pending = self._pending[stream]
            room_lines = self.settings.lines_per_second - self._window_lines
            room_bytes = self.settings.bytes_per_second - self._window_bytes
            kept = 0
            for line in lines[:max(room_lines, 0)]:
                size = min(len(line), limit)
                if size > room_bytes:
                    break
                room_bytes -= size
                kept += 1
            pending.extend((line, cut) for line in lines[:kept])
            self._window_lines += kept
            self._window_bytes = self.settings.bytes_per_second - room_bytes
            dropped = len(lines) - kept
            if dropped:
                self.dropped += dropped
                if pending and isinstance(pending[-1], int):
                    pending[-1] += dropped
                else:
                    pending.append(dropped)
            if self._flushing:
                return
            self._flushing = True
        self._spawn(self._run)

    def _run(self) -> None:
        """The flushing thread: a batch every interval until one finds nothing."""
        interval = self.settings.interval_ms / 1000
        while True:
            time.sleep(interval)
            if not self.flush():
                with self._lock:
                    if not any(self._pending.values()):  # a line may have come meanwhile
                        self._flushing = False
                        return

    def flush(self) -> bool:
        """Publish what is pending, one message per stream; whether there was anything."""
        with self._sending:
            with self._lock:
                taken = {s: entries for s, entries in self._pending.items() if entries}
                for stream in taken:
                    self._pending[stream] = []
            for stream, entries in taken.items():
                self._seq[stream] += 1
                texts = [self._text(entry) for entry in entries]
                dropped = sum(e for e in entries if isinstance(e, int))
                try:
                    self._publish(stream, self._seq[stream], texts, dropped)
                except Exception:  # news only: the run and its stored result go on
                    log.warning("live output: message %s of %s not published", self._seq[stream],
                                stream, exc_info=True)
            return bool(taken)

    def close(self) -> None:
        """The run ended: publish what is left; later lines are ignored."""
        with self._lock:
            self._closed = True
        self.flush()

    def _text(self, entry: tuple[bytes, bool] | int) -> str:
        if isinstance(entry, int):
            return dropped_marker(entry)
        line, cut = entry
        limit = self.settings.line_bytes
        cut = cut or len(line) > limit
        masked = self._masker.cut(line, limit) if self._masker else line[:limit]
        if not cut:
            return masked.decode("utf-8", "replace")
        # A cut may split a character, whose partial bytes are dropped.
        text = codecs.getincrementaldecoder("utf-8")("replace").decode(masked, final=False)
        return text + cut_marker(limit)


def _thread(target: Callable[[], None]) -> None:
    threading.Thread(target=target, daemon=True, name="attune-live-output").start()
