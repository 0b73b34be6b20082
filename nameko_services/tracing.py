"""OpenTelemetry spans of a run (docs/observability.md "Tracing"): receive (gateway) → evaluate
(executor) → schedule (executor) → run (worker), exported over OTLP/HTTP with the run's trace id
(domain/tracing.py) as theirs, each the child of the one before.

Off unless `ATTUNE.tracing.otlp_endpoint` is set: then, and only then, the SDK is imported and
`span()` records; otherwise `span()` yields None at the cost of one test. A span's id travels
to the next service as `parent_span_id` in the message that carries the work (only while
tracing is on); a service continues it with `continued(payload)` around its handler.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator, Mapping
from typing import Any

log = logging.getLogger(__name__)

PARENT_SPAN_ID = "parent_span_id"  # the message field naming the span that sent the work

_tracer: Any = None  # an opentelemetry Tracer once configure() found an endpoint
_provider: Any = None
# The trace id the next root span takes (the SDK asks its id generator for one).
_root_trace: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "attune_root_trace", default=None)


def endpoint_of(config: Mapping[str, Any]) -> str | None:
    """`ATTUNE.tracing.otlp_endpoint` (the collector's OTLP/HTTP traces URL); None: off."""
    section = (config.get("ATTUNE") or {}).get("tracing") or {}
    return str(section.get("otlp_endpoint") or "").strip() or None


def configure(config: Mapping[str, Any], service: str) -> None:
    """Export this process's spans as `attune-<service>` when an endpoint is configured.
    Call it in the process that serves (after any fork: the exporter has a thread)."""
    global _tracer, _provider
    endpoint = endpoint_of(config)
    if endpoint is None or _tracer is not None:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class Ids(RandomIdGenerator):
        """A root span takes the run's trace id (set by span()); anything else is random."""

        def generate_trace_id(self) -> int:
            wanted = _root_trace.get()
            return int(wanted, 16) if wanted else super().generate_trace_id()

    _provider = TracerProvider(
        resource=Resource.create({"service.name": f"attune-{service}",
                                  "service.namespace": "attune"}),
        id_generator=Ids())
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    _tracer = _provider.get_tracer("attune")
    log.info("exporting spans to %s", endpoint)


def shutdown() -> None:
    """Export what is pending and stop (a stopping service)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def enabled() -> bool:
    return _tracer is not None


@contextlib.contextmanager
def span(name: str, trace_id: str | None, parent_span_id: str | None = None,
         **attributes: Any) -> Iterator[str | None]:
    """A span of trace `trace_id` around the block; yields its id (16 hex) for the messages the
    block sends, None when tracing is off. Its parent: `parent_span_id` if given, else the
    span in progress here if it is of the same trace, else none (a root)."""
    if _tracer is None or not trace_id:
        yield None
        return
    from opentelemetry import trace
    from opentelemetry.context import Context

    current = trace.get_current_span().get_span_context()
    context: Any = None  # the current context: the span in progress is the parent
    if parent_span_id:
        context = _remote(trace_id, parent_span_id)
    elif not (current.is_valid and current.trace_id == int(trace_id, 16)):
        context = Context()
    token = _root_trace.set(trace_id)  # a root span takes it (the Ids generator)
    try:
        with _tracer.start_as_current_span(name, context=context, attributes={
                f"attune.{key}": value for key, value in attributes.items()
                if value is not None}) as started:
            yield format(started.get_span_context().span_id, "016x")
    finally:
        _root_trace.reset(token)


@contextlib.contextmanager
def continued(payload: Any) -> Iterator[None]:
    """Spans opened in the block are children of the one that sent `payload` (its `trace_id`
    and `parent_span_id`); nothing when tracing is off or the message names no span."""
    if _tracer is None or not isinstance(payload, Mapping) \
            or not payload.get(PARENT_SPAN_ID) or not payload.get("trace_id"):
        yield
        return
    from opentelemetry import context as otel_context

    token = otel_context.attach(_remote(payload["trace_id"], payload[PARENT_SPAN_ID]))
    try:
        yield
    finally:
        otel_context.detach(token)


def linked(payload: dict[str, Any], span_id: str | None) -> dict[str, Any]:
    """`payload` naming `span_id` as the parent of the next service's span (if any)."""
    return {**payload, PARENT_SPAN_ID: span_id} if span_id else payload


def _remote(trace_id: str, span_id: str) -> Any:
    from opentelemetry import trace

    parent = trace.SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True,
                               trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))
