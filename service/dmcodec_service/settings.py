"""Service configuration: environment variables (prefix DMCODEC_) and an optional .env-style file."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from dmcodec import WindowPolicy, defaults


class ServiceSettings(BaseSettings):
    """Every knob of the service. Each field is read from `DMCODEC_<NAME>` (e.g.
    `DMCODEC_MAX_BATCH_SIZE=16`) or from the file named by `DMCODEC_CONFIG_FILE`."""

    model_config = SettingsConfigDict(env_prefix="DMCODEC_", extra="forbid")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments (and command-line flags) over the environment over the config file, which is
        named by DMCODEC_CONFIG_FILE when the settings are read, not when this module is imported."""
        config_file = os.environ.get("DMCODEC_CONFIG_FILE")
        if not config_file:
            return init_settings, env_settings, file_secret_settings
        if not Path(config_file).is_file():
            raise ValueError(f"DMCODEC_CONFIG_FILE={config_file}: no such file")
        return init_settings, env_settings, DotEnvSettingsSource(settings_cls, env_file=config_file), \
            file_secret_settings

    checkpoint: Optional[Path] = Field(None, description="Checkpoint directory or weights file; "
                                       "default: the bundled checkpoint.")
    device: str = Field("auto", description="auto (cuda when available, else cpu), cpu, cuda or cuda:N.")
    threads_per_window: int = Field(defaults.THREADS_PER_WINDOW, ge=1, description="Intra-op threads per CPU "
                                    "window: part of what defines the codes, so keep it equal across replicas.")
    workers: int = Field(defaults.WORKERS, ge=0, description="CPU windows computed in parallel; 0: cores / "
                         "threads_per_window.")
    solo_threads: int = Field(defaults.SOLO_THREADS, ge=0, description="Threads of a window that runs alone (0: "
                              "all cores), where the backend computes bit-identical latents at that count "
                              "(checked at start-up); 1 turns it off.")
    backend: Literal["auto", "torch", "onnxruntime"] = Field(
        defaults.BACKEND, description="Encoder/decoder backend. auto: onnxruntime where its codes equal fp32 "
        "torch's on every calibration position, else fp32 torch (the reason is logged and in /v1/info); "
        "onnxruntime graphs are exported once per checkpoint and cached.")
    precision: Literal["fp32", "tf32", "bf16", "fp16", "int8"] = Field(
        defaults.PRECISION, description="fp32 (default); tf32/bf16/fp16 (torch on CUDA) or int8 (onnxruntime) "
        "are opt-in.")
    min_code_agreement: float = Field(defaults.MIN_AGREEMENT, ge=0, le=1, description="Start-up refuses an "
                                      "explicitly chosen backend/precision whose codes match fp32 torch on fewer "
                                      "positions than this (auto asks for all of them).")
    host: str = Field("127.0.0.1", description="Bind address (0.0.0.0 in containers).")
    port: int = Field(8000, ge=1, le=65535)

    max_batch_size: int = Field(8, ge=1, description="Requests the batcher groups into one model step.")
    max_batch_audio_seconds: float = Field(120.0, gt=0, description="Audio seconds per model step.")
    max_wait_ms: float = Field(5.0, ge=0, description="How long the batcher waits for more requests.")
    max_concurrent_batches: int = Field(2, ge=1, description="Batches computing at once; 2 keeps every CPU "
                                        "worker busy while a batch's last windows finish.")
    max_queue_size: int = Field(64, ge=1, description="Queued requests; beyond this, 503 + Retry-After.")
    request_timeout_s: float = Field(60.0, gt=0, description="Deadline from arrival; past it, 504.")
    retry_after_s: int = Field(1, ge=1, description="Retry-After sent with 503.")

    max_upload_mb: float = Field(50.0, gt=0, description="Largest encode body (413 beyond).")
    max_tokens_mb: float = Field(4.0, gt=0, description="Largest decode body (413 beyond); 600 s of 8-level "
                                 "tokens is about 2 MB of JSON.")
    max_audio_seconds: float = Field(600.0, gt=0, description="Longest audio per request (413 beyond).")
    max_channels: int = Field(8, ge=1, description="Most channels an upload may have (422 beyond).")
    max_sample_rate: int = Field(192000, ge=8000, description="Highest sample rate of an upload (422 beyond).")
    max_concurrent_decodes: int = Field(2, ge=1, description="Uploads decoded at once; the others wait their "
                                        "turn (each holds its audio at 16 kHz mono while it waits).")
    window_frames: int = Field(defaults.WINDOW_FRAMES, ge=10, description="Longest piece encoded at once "
                               "(frames of the model).")
    context_frames: int = Field(defaults.CONTEXT_FRAMES, ge=0, description="Context around each window of long "
                                "audio (frames).")

    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list,
                                                     description="Accepted keys (Bearer or X-API-Key); "
                                "empty disables authentication. JSON list or comma-separated.")
    allow_unauthenticated: bool = Field(False, description="Serve on a non-loopback address without API keys. "
                                        "Off: such a configuration refuses to start.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field("text", description="json: one JSON object per line, with "
                                                "the request id; one access line per request either way.")
    drain_timeout_s: float = Field(30.0, ge=0, description="On SIGTERM, time to finish queued work.")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value):
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                return json.loads(value)
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if value != "auto" and not (value == "cpu" or value == "cuda" or
                                    (value.startswith("cuda:") and value[5:].isdigit())):
            raise ValueError("device must be auto, cpu, cuda or cuda:N")
        return value

    @model_validator(mode="after")
    def _check_windows(self) -> ServiceSettings:
        self.window_policy()  # the library's rules, raising ValueError
        return self

    def window_policy(self) -> WindowPolicy:
        return WindowPolicy(window_frames=self.window_frames, context_frames=self.context_frames,
                            workers=self.workers, threads_per_window=self.threads_per_window,
                            solo_threads=self.solo_threads)

    def exposed_without_keys(self) -> bool:
        """Bound beyond loopback with no API keys: anyone who reaches the port may use it."""
        try:
            loopback = ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            loopback = self.host == "localhost"
        return not loopback and not self.api_keys

    def resolved_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {self.device} requested but CUDA is not available")
        return self.device
