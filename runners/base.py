"""The runner interface: one complete request in, one result out, cancel from another thread.

Runners are pure: they import nothing from `nameko_services` or `gateway`. The worker renders
templates, loads secrets and issues the execution token before it builds a `RunRequest`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .sandbox import Sandbox

from .container_policy import ContainerPolicy
from .destinations import DestinationPolicy

MASK = "***"
DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024


class RunnerError(Exception):
    """A runner could not even start the action (bad request, missing interpreter...)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class Outcome(StrEnum):
    """How a run ended; the worker maps it onto the execution state machine."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass(frozen=True, slots=True)
class OutputLines:
    """Where a runner hands the lines of the action's stdout and stderr while it runs (the
    worker's live output), in order per stream: `send(stream, lines, cut)` with `stream`
    "stdout" or "stderr" and each line without its newline. A line longer than `keep_bytes`
    arrives alone as its first `keep_bytes` bytes with `cut` true; its rest is skipped, so a
    runner never holds more than `keep_bytes` of an unfinished line."""

    send: Callable[[str, list[bytes], bool], None]
    keep_bytes: int


class LineSplitter:
    """One stream's chunks → `OutputLines.send` calls: one call per chunk for its whole
    lines, so a chatty action costs one call per read, not one per line."""

    __slots__ = ("_lines", "_partial", "_skipping", "_stream")

    def __init__(self, stream: str, lines: OutputLines) -> None:
        self._stream = stream
        self._lines = lines
        self._partial = b""
        self._skipping = False  # the rest of a line already sent cut

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes read from the stream."""
        pieces = chunk.split(b"\n")
        rest = pieces.pop()  # what follows the last newline: an unfinished line
        whole: list[bytes] = []
        for index, piece in enumerate(pieces):
            if index == 0:
                if self._skipping:
                    self._skipping = False
                    continue
                piece, self._partial = self._partial + piece, b""
            if len(piece) > self._lines.keep_bytes:
                self._send(whole)
                whole = []
                self._lines.send(self._stream, [piece[:self._lines.keep_bytes]], True)
            else:
                whole.append(piece)
        self._send(whole)
        if rest and not self._skipping:
            self._partial += rest
            if len(self._partial) > self._lines.keep_bytes:
                self._lines.send(self._stream, [self._partial[:self._lines.keep_bytes]], True)
                self._partial, self._skipping = b"", True

    def end(self) -> None:
        """End of the stream: a last line without a newline is still a line."""
        if self._partial:
            self._send([self._partial])
        self._partial, self._skipping = b"", False

    def _send(self, whole: list[bytes]) -> None:
        if whole:
            self._lines.send(self._stream, whole, False)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRequest:
    """Everything a runner needs, built once by the worker."""

    execution_id: int
    action_ref: str
    runner_type: str
    working_dir: Path
    entry_point: Path | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    # Delivered on stdin only, never argv or environment.
    secrets: Mapping[str, str] = field(default_factory=dict)
    # Names of parameters declared `secret: true`: kept out of the environment, masked in output.
    secret_parameters: frozenset[str] = frozenset()
    # The stdin document's `context`: execution_id, action_ref, attempt, item, item_index,
    # api_url, token.
    context: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float = 600.0
    kill_grace_s: float = 5.0
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    max_result_bytes: int = 4 * DEFAULT_MAX_OUTPUT_BYTES
    # Absolute interpreter path (python: the pack's virtualenv); None → the runner's default.
    interpreter: str | None = None
    # Extra module folders searched after the action's own (node: the pack's node_modules).
    module_paths: tuple[str, ...] = ()
    # http runner: method, url, headers, body, timeout, success_status, already rendered.
    http_config: Mapping[str, Any] | None = None
    # http runner: where it may connect (ATTUNE.http_runner.allow); the default refuses every
    # internal and own-host address.
    destination_policy: DestinationPolicy = field(default_factory=DestinationPolicy)
    # container runner: image, command, memory, cpus, network, pull (as declared).
    container_config: Mapping[str, Any] | None = None
    # container runner: the operator's default and maximum memory/cpus and the user containers
    # run as (ATTUNE.container); the default is the secure one.
    container_policy: ContainerPolicy = field(default_factory=ContainerPolicy)
    # container runner: the pack asks to keep its image's USER (pack.yaml
    # `container: {image_user: true}`); honoured only if the policy allows it.
    keep_image_user: bool = False
    # python, node, shell: where the action runs (its uid, mounts, limits, network).
    sandbox: Sandbox | None = None
    # Live output: each line of stdout and stderr while the action runs (None: nobody listens,
    # and reading the output costs nothing more than before).
    output_lines: OutputLines | None = None

    def stdin_document(self) -> dict[str, Any]:
        """The one JSON document written to the action's stdin (packs.md)."""
        return {
            "parameters": dict(self.parameters),
            "secrets": dict(self.secrets),
            "context": dict(self.context),
        }

    def secret_values(self) -> list[Any]:
        """Every known secret value of this run: tenant secrets, secret parameters, the token."""
        values: list[Any] = list(self.secrets.values())
        values += [v for k, v in self.parameters.items() if k in self.secret_parameters]
        values.append(self.context.get("token"))
        return values

    def masker(self) -> Masker:
        """Masks every known secret value (`secret_values`) in text, bytes and JSON."""
        return Masker(self.secret_values())


@dataclass(slots=True, kw_only=True)
class RunResult:
    """What happened; `to_result()` is api.md's execution `result`."""

    outcome: Outcome
    output: Any = None
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: dict[str, Any] | None = None
    truncated: bool = False
    duration_ms: int | None = None
    status_code: int | None = None
    headers: dict[str, str] | None = None

    def to_result(self) -> dict[str, Any]:
        """The execution `result` as stored and served (http adds status_code and headers)."""
        result: dict[str, Any] = {
            "output": self.output,
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "error": self.error,
            "truncated": self.truncated,
            "duration_ms": self.duration_ms,
        }
        if self.status_code is not None:
            result["status_code"] = self.status_code
            result["headers"] = self.headers or {}
        return result


class Runner(Protocol):
    """One instance per execution: `run` blocks (cooperatively) until the action ended."""

    def run(self, request: RunRequest) -> RunResult:
        """Run the action; an action's failure is data in the result, not an exception."""
        ...

    def cancel(self) -> None:
        """Ask a running (or not yet started) `run` to stop; safe from another greenthread."""
        ...


def error(error_type: str, message: str) -> dict[str, str]:
    """api.md's `result.error` object."""
    return {"type": error_type, "message": message}


class Masker:
    """Replaces every known secret value by `***` in bytes, text and JSON values.

    Plain substring search, no regular expression: a masker is made per run (and the log
    registry's on every change), and compiling an alternation of long tokens cost ~5 ms each.
    """

    def __init__(self, values: Iterable[Any]) -> None:
        texts: set[str] = set()
        for value in values:
            if value is None or isinstance(value, bool):
                continue
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            if text:
                texts.add(text)
                # The same value as it appears inside a JSON string (quotes, backslashes...).
                escaped = json.dumps(text)[1:-1]
                if escaped != text:
                    texts.add(escaped)
        self._texts = tuple(sorted(texts, key=len, reverse=True))
        self._bytes = tuple(t.encode() for t in self._texts)
        self.longest = max((len(b) for b in self._bytes), default=0)

    def __bool__(self) -> bool:
        return bool(self._texts)

    def text(self, value: str) -> str:
        """`value` with every secret replaced by `***`."""
        if not any(t in value for t in self._texts):
            return value
        out, pos = [], 0
        for start, end in _occurrences(value, self._texts):
            out += [value[pos:start], MASK]
            pos = end
        out.append(value[pos:])
        return "".join(out)

    def value(self, value: Any) -> Any:
        """Mask every string (keys included) inside a JSON value."""
        if not self._texts:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def cut(self, data: bytes, limit: int) -> bytes:
        """The first `limit` bytes of `data` with secrets masked.

        A secret that starts before `limit` is masked whole even when it runs past it, so a cut
        never reveals a secret's prefix (the caller keeps `longest - 1` extra bytes for this).
        """
        out = bytearray()
        pos = 0
        for start, end in _occurrences(data, self._bytes):
            if start >= limit:
                break
            out += data[pos:start]
            out += MASK.encode()
            pos = end
        if pos < limit:
            out += data[pos:limit]
        return bytes(out)


def _occurrences(data: Any, needles: tuple[Any, ...]) -> Iterator[tuple[int, int]]:
    """(start, end) of non-overlapping needles in `data`, leftmost first and, at one position,
    longest first (what a regex alternation of them sorted longest first would find)."""
    upcoming = {needle: data.find(needle) for needle in needles}
    while True:
        found = [(at, -len(needle)) for needle, at in upcoming.items() if at >= 0]
        if not found:
            return
        start, negative_length = min(found)
        end = start - negative_length
        yield start, end
        for needle, at in upcoming.items():
            if 0 <= at < end:
                upcoming[needle] = data.find(needle, end)
