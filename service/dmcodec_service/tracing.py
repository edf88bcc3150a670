"""OpenTelemetry traces, when the `otel` extra is installed and tracing is configured.

Per request: a server span (W3C `traceparent` from the client is its parent; attributes include
the request id), a `queue` span for its wait, from submission to the start of its batch, and one
`batch <op>` span per model computation, linked to the spans of every request it served.
Configuration is OpenTelemetry's own: OTEL_TRACES_EXPORTER (otlp or console), OTEL_SERVICE_NAME,
OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER and the rest. Without the extra, or with
OTEL_TRACES_EXPORTER unset or `none`, every call here is a no-op.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator, Optional, Sequence

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Link, SpanContext, SpanKind
except ImportError:  # the `otel` extra is not installed
    trace = None  # type: ignore[assignment]


def provider_from_environment() -> Optional[Any]:
    """A TracerProvider exporting as OTEL_TRACES_EXPORTER says, or None (tracing off)."""
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    if trace is None or exporter_name in ("", "none") or os.environ.get("OTEL_SDK_DISABLED") == "true":
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if exporter_name == "console":
        exporter: Any = ConsoleSpanExporter()
    elif exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        raise ValueError(f"OTEL_TRACES_EXPORTER={exporter_name}: this service exports otlp or console")
    provider = TracerProvider(resource=Resource.create({"service.name": "dmcodec"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class Tracing:
    """Spans for the service; `provider` None: off (every method a cheap no-op)."""

    def __init__(self, provider: Optional[Any] = None):
        self.tracer = provider.get_tracer("dmcodec_service") if provider is not None and trace else None

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    @contextlib.contextmanager
    def request(self, scope: dict, route: str, request_id: str) -> Iterator[Optional[Any]]:
        """The server span of one HTTP request, current while the request is handled."""
        if self.tracer is None:
            yield None
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        with self.tracer.start_as_current_span(
                f"{scope['method']} {route}", context=propagate.extract(headers), kind=SpanKind.SERVER,
                attributes={"http.request.method": scope["method"], "url.path": scope["path"],
                            "http.route": route, "dmcodec.request_id": request_id}) as span:
            yield span

    def current(self) -> Optional[Any]:
        """The current span's context (to link a batch to it), or None."""
        if self.tracer is None:
            return None
        context = trace.get_current_span().get_span_context()
        return context if context.is_valid else None

    def queue_wait(self, parent: Optional[SpanContext], start_ns: int, end_ns: int, request_id: str) -> None:
        if self.tracer is None or parent is None:
            return
        span = self.tracer.start_span("queue", context=trace.set_span_in_context(trace.NonRecordingSpan(parent)),
                                      start_time=start_ns, attributes={"dmcodec.request_id": request_id})
        span.end(end_time=end_ns)

    def batch(self, op: str, requests: Sequence[Optional[SpanContext]], start_ns: int, end_ns: int,
              attributes: dict[str, Any]) -> None:
        if self.tracer is None:
            return
        links = [Link(context) for context in requests if context is not None]
        span = self.tracer.start_span(f"batch {op}", links=links, start_time=start_ns, attributes=attributes,
                                      context=trace.set_span_in_context(trace.INVALID_SPAN))
        span.end(end_time=end_ns)
