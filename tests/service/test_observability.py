"""Request ids through logs and traces: one JSON access line per request with its costs, and
OpenTelemetry spans for the request, its queue wait and its batch, joined to the client's trace."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient
from helpers import in_process_service
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from dmcodec.audio import wav_bytes
from dmcodec.signals import speech_like
from dmcodec_service import ServiceSettings, create_app
from dmcodec_service.logs import configure_logging

CLIP = wav_bytes(speech_like(1.5, 16000, seed=3), 16000)
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def json_logs(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("info", "json")
    yield lambda: [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def test_json_logs_give_one_line_per_request_with_its_costs(tiny_checkpoint, json_logs):
    with in_process_service(tiny_checkpoint) as service:
        json_logs()  # start-up lines
        response = service.post("/v1/encode", files={"file": ("a.wav", CLIP)}, headers={"x-request-id": "job-7"})
        refused = service.post("/v1/encode", content=b"x", headers={"content-type": "text/plain"})
        lines = json_logs()
    assert response.status_code == 200 and refused.status_code == 415
    access = [line for line in lines if line["logger"] == "dmcodec_service.access"]
    assert [line["request_id"] for line in access] == ["job-7", refused.headers["x-request-id"]]
    first = access[0]
    assert first["route"] == "/v1/encode" and first["status"] == 200 and first["audio_s"] == 1.5
    assert first["batch_size"] == 1 and first["queue_ms"] >= 0 and first["compute_ms"] > 0
    assert first["bytes_in"] > len(CLIP) and first["bytes_out"] == len(response.content)
    assert access[1]["status"] == 415 and "queue_ms" not in access[1]


def test_a_request_produces_its_span_a_queue_span_and_a_linked_batch_span(tiny_checkpoint):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = create_app(ServiceSettings(checkpoint=tiny_checkpoint, workers=1), tracer_provider=provider)
    with TestClient(app) as service:
        response = service.post("/v1/encode", files={"file": ("a.wav", CLIP)}, headers={
            "x-request-id": "traced-1", "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"})
    assert response.status_code == 200
    spans = {span.name: span for span in exporter.get_finished_spans()}
    request, queue, batch = spans["POST /v1/encode"], spans["queue"], spans["batch encode"]
    assert request.kind == SpanKind.SERVER and format(request.context.trace_id, "032x") == TRACE_ID
    assert request.parent.span_id == 0x00F067AA0BA902B7  # the client's span
    assert request.attributes["dmcodec.request_id"] == "traced-1"
    assert request.attributes["http.response.status_code"] == 200
    assert queue.parent.span_id == request.context.span_id and queue.attributes["dmcodec.request_id"] == "traced-1"
    assert [link.context.span_id for link in batch.links] == [request.context.span_id]
    assert batch.attributes["dmcodec.batch_size"] == 1 and queue.end_time <= batch.start_time
