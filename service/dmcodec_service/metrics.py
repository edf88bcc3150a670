"""Prometheus metrics, named after Triton's (`nv_inference_*`) with a `dmcodec_` prefix.

Each app owns its registry, so several apps (tests, blue/green in one process) never collide.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
AUDIO_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class Metrics:
    """All of the service's series. `op` is encode or decode; `route` the path template."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("dmcodec_requests", "HTTP requests by route and status code.",
                                ["route", "status"], registry=r)
        self.request_duration = Histogram("dmcodec_request_duration_seconds", "End-to-end request latency.",
                                          ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_duration = Histogram("dmcodec_queue_duration_seconds", "Time from enqueue to batch start.",
                                        ["op"], buckets=LATENCY_BUCKETS, registry=r)
        self.compute_duration = Histogram("dmcodec_compute_duration_seconds", "Model time per batch.",
                                          ["op"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_requests = Histogram("dmcodec_batch_size_requests", "Requests per batch.",
                                        ["op"], buckets=BATCH_BUCKETS, registry=r)
        self.batch_audio = Histogram("dmcodec_batch_size_audio_seconds", "Audio seconds per batch.",
                                     ["op"], buckets=AUDIO_BUCKETS, registry=r)
        self.queue_depth = Gauge("dmcodec_queue_depth", "Requests waiting for the model.", registry=r)
        self.queue_capacity = Gauge("dmcodec_queue_capacity", "The queue's limit (max_queue_size).", registry=r)
        self.inflight = Gauge("dmcodec_inflight_requests", "Requests being handled.", registry=r)
        self.audio_seconds = Counter("dmcodec_audio_seconds", "Audio seconds encoded or decoded.",
                                     ["op"], registry=r)
        self.rejected = Counter("dmcodec_rejected_requests", "Requests refused before the model: "
                                "queue_full, deadline, cancelled, draining.", ["reason"], registry=r)
        self.model_info = Gauge("dmcodec_model_info", "The loaded model (value 1).",
                                ["name", "sha256", "device", "backend", "precision"], registry=r)
        self.ready = Gauge("dmcodec_ready", "1 when the service accepts work.", registry=r)
        self.gpu_memory = Gauge("dmcodec_gpu_memory_used_bytes", "CUDA memory allocated by the model.",
                                ["device"], registry=r)

    def track_gpu(self, device: str) -> None:
        import torch

        self.gpu_memory.labels(device=device).set_function(lambda: torch.cuda.memory_allocated(device))

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
