"""The FastAPI application: lifespan (load, warm up, drain), middleware, routes."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from dmcodec import __version__
from dmcodec.audio import AudioLimits
from dmcodec.config import CodecConfig
from dmcodec.runtime import configure_determinism

from .batcher import Batcher
from .engine import Engine
from .errors import install_handlers
from .kserve import router as kserve_router
from .memory import release_memory_when_idle
from .metrics import Metrics
from .middleware import LimitBody, ObserveRequests
from .routes import router
from .settings import ServiceSettings
from .tracing import Tracing, provider_from_environment

log = logging.getLogger("dmcodec_service")
STATIC_DIR = Path(__file__).parent / "static"


@dataclass
class ServiceState:
    settings: ServiceSettings
    engine: Engine
    batcher: Batcher
    metrics: Metrics
    decode_slots: asyncio.Semaphore  # uploads decoding at once
    audio_limits: AudioLimits
    ready: bool = False
    draining: bool = False
    _drain: Optional[asyncio.Task] = None

    async def drain(self) -> None:
        """Readiness off and new work refused at once; queued and running work gets up to
        drain_timeout_s to finish, whatever is left then fails with 503. Safe to call twice
        (on SIGTERM, then at the end of the lifespan): the second call waits for the first."""
        if self._drain is None:
            self.ready, self.draining = False, True
            self.metrics.ready.set(0)
            log.info("draining: %d queued", self.batcher.depth())
            self._drain = asyncio.ensure_future(self.batcher.drain(self.settings.drain_timeout_s))
        await asyncio.shield(self._drain)


def create_app(settings: Optional[ServiceSettings] = None, engine: Optional[Engine] = None,
               tracer_provider: Optional[Any] = None) -> FastAPI:
    """Build the app. The model loads in the lifespan (or `engine` is used as given).
    `tracer_provider`: an OpenTelemetry TracerProvider (default: none, unless the environment
    configures one: see tracing.py)."""
    settings = settings or ServiceSettings()
    metrics = Metrics()
    tracing = Tracing(tracer_provider if tracer_provider is not None else provider_from_environment())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        configure_determinism(settings.resolved_device())
        loaded = engine if engine is not None else await asyncio.to_thread(Engine, settings)
        await asyncio.to_thread(loaded.warm_up)
        batcher = Batcher(loaded.process, max_batch_size=settings.max_batch_size,
                          max_batch_audio_seconds=settings.max_batch_audio_seconds,
                          max_wait_s=settings.max_wait_ms / 1000, max_queue_size=settings.max_queue_size,
                          max_concurrent_batches=settings.max_concurrent_batches, metrics=metrics, tracing=tracing)
        await batcher.start()
        limits = AudioLimits(settings.max_audio_seconds, settings.max_channels, settings.max_sample_rate)
        state = ServiceState(settings, loaded, batcher, metrics, asyncio.Semaphore(settings.max_concurrent_decodes),
                             limits)
        app.state.service = state
        info = loaded.model_info()
        metrics.model_info.labels(name=info["name"], sha256=info["sha256"], device=info["device"],
                                  backend=info["backend"], precision=info["precision"]).set(1)
        if loaded.device.startswith("cuda"):
            metrics.track_gpu(loaded.device)
        _describe_model(app, loaded.config)
        trimmer = asyncio.create_task(release_memory_when_idle(batcher), name="dmcodec-trim")
        state.ready = True
        metrics.ready.set(1)
        log.info("ready: model %s (%s) on %s, loaded in %.1f s", info["name"], info["sha256"][:12],
                 loaded.device, loaded.load_seconds)
        try:
            yield
        finally:
            trimmer.cancel()
            await state.drain()
            loaded.close()
            log.info("stopped")

    app = FastAPI(title="dmcodec", version=__version__, lifespan=lifespan,
                  description="DM-Codec speech tokenization: audio -> discrete tokens, and back.")
    app.state.settings = settings
    app.state.metrics = metrics
    install_handlers(app)
    app.include_router(router)
    app.include_router(kserve_router)
    # The playground: static files shipped in the package, no build step, nothing from a CDN.
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def playground() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    tokens_bytes = int(settings.max_tokens_mb * 1024 * 1024)
    app.add_middleware(LimitBody, default_bytes=int(settings.max_upload_mb * 1024 * 1024),
                       per_path={"/v1/decode": tokens_bytes, "/decode": tokens_bytes})
    app.add_middleware(ObserveRequests, metrics=metrics, tracing=tracing)
    return app


def _describe_model(app: FastAPI, config: CodecConfig) -> None:
    """The OpenAPI schema states the loaded model's numbers: its description, and the largest
    `n_q` wherever a request may give one."""
    app.description = (f"DM-Codec speech tokenization: audio -> {config.n_q} levels of {config.codebook_size}-code "
                       f"tokens at {config.frame_rate:g} frames/s ({config.sample_rate} Hz audio), and back.")
    app.openapi_schema = None

    def limit_levels(field: dict[str, Any]) -> None:
        for option in [field, *field.get("anyOf", [])]:  # Optional[int] is an anyOf with null
            if option.get("type") == "integer":
                option.update(minimum=1, maximum=config.n_q)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    for parameter in operation.get("parameters", []):
                        if parameter.get("name") == "n_q":
                            limit_levels(parameter["schema"])
                    for body in operation.get("requestBody", {}).get("content", {}).values():
                        if "n_q" in body.get("schema", {}).get("properties", {}):
                            limit_levels(body["schema"]["properties"]["n_q"])
        return app.openapi_schema or FastAPI.openapi(app)

    app.openapi = openapi  # type: ignore[method-assign]
