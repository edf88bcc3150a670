"""Request and response bodies, as documented in the OpenAPI schema."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, Field

# Range-checked while parsing: an integer beyond int64 would otherwise fail later, in numpy.
Code = Annotated[int, Field(ge=0, lt=2**31)]


class ModelRef(BaseModel):
    name: str = Field(description="Checkpoint name.")
    sha256: str = Field(description="sha256 of the checkpoint's weights file: the tokens' provenance.")
    backend: str = Field(description="Inference backend: torch (the reference) or onnxruntime.")
    precision: str = Field(description="Numeric precision of the encoder/decoder: fp32 unless opted out "
                           "(tf32/bf16/fp16 on GPU, int8 with onnxruntime). Part of the tokens' identity.")
    device: str = Field(description="cpu or cuda[:N].")
    code_agreement: Optional[float] = Field(None, description="For any mode other than fp32 torch: the share "
                                            "of fp32 torch codes it reproduced on the calibration set at start-up.")
    backend_requested: Optional[str] = Field(None, description="The configured backend where it differs from "
                                             "`backend` (auto chooses one at start-up).")
    backend_fallback: Optional[str] = Field(None, description="Why auto serves fp32 torch instead of "
                                            "onnxruntime (e.g. too few equal codes at start-up).")


class Windowing(BaseModel):
    window_frames: int = Field(description="Audio up to this many frames is encoded in one piece.")
    context_frames: int = Field(description="Context frames around each window of longer audio.")
    batch_size: int = Field(description="Fixed model batch shape per window length (1 on CPU).")
    intra_op_threads: int = Field(description="Threads per window on CPU when windows run side by side "
                                  "(1, so codes do not depend on the core count); 0 on GPU.")
    dynamic_batches: bool = Field(False, description="Windows of one length share an encoder call without "
                                  "padding: granted where the backend was checked batch-invariant at start-up.")
    solo_threads: int = Field(0, description="Threads of a window that runs alone: all cores on a backend whose "
                              "codes were checked equal at any thread count at start-up, else intra_op_threads.")


class EncodeResponse(BaseModel):
    codes: list[list[int]] = Field(description="Token ids, [n_q][frames], each in 0..codebook_size-1.")
    n_q: int = Field(description="Quantizer levels returned (1 to the model's n_q), coarse to fine.")
    frames: int = Field(description="Frames per level: ceil(num_samples / hop_length).")
    codebook_size: int = Field(description="Entries per codebook: codes are 0..codebook_size-1.")
    frame_rate: float = Field(description="Frames per second: sample_rate / hop_length.")
    sample_rate: int = Field(description="The model's sample rate; num_samples counts at this rate.")
    num_samples: int = Field(description="Length of the audio after conversion to the model's rate, mono.")
    duration_s: float = Field(description="num_samples / sample_rate.")
    model: ModelRef
    windowing: Windowing


class DecodeRequest(BaseModel):
    """An encode response, or just its codes. Other fields of the encode response are accepted."""

    model_config = ConfigDict(extra="ignore")
    codes: list[list[Code]] = Field(description="[n_q][frames] token ids; 1 to the model's n_q levels, coarse first.")
    num_samples: Optional[int] = Field(None, ge=1, description="Output length in samples; default frames * hop_length.")
    model: Optional[dict[str, Any]] = Field(None, description="If given, its sha256 must be the served model's.")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable reason, e.g. unsupported_media_type.")
    message: str = Field(description="What went wrong, for people.")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class InfoResponse(BaseModel):
    model: ModelRef
    config: dict[str, Any] = Field(description="The checkpoint's config.json keys.")
    metadata: dict[str, Any] = Field(description="The checkpoint's dmcodec metadata (training, format).")
    sample_rate: int
    frame_rate: float
    hop_length: int
    n_q: int
    codebook_size: int
    bitrate_bps: float = Field(description="Bits per second at all levels.")
    limits: dict[str, Any] = Field(description="Upload, duration, queue and deadline limits.")
    batching: dict[str, Any] = Field(description="Micro-batching settings.")
    windowing: Windowing


class Health(BaseModel):
    status: str
