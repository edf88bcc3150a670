"""Request and response bodies, as documented in the OpenAPI schema."""

from __future__ import annotations

from typing import Annotated, Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

# Range-checked while parsing: an integer beyond int64 would otherwise fail later, in numpy.
Code = Annotated[int, Field(ge=0, lt=2**31)]  # a code, a vocabulary id or a count
Ids = Union[list[Code], list[list[Code]]]  # a sequence layout's ids, or the delay pattern's grid

LAYOUT_TEXT = ("codes (the [n_q][frames] grid), flat (one frame-major sequence of vocabulary ids with bos/eos), "
               "delay (the delay pattern: [n_q][frames + n_q - 1] ids) or first (RVQ-1 alone, with bos/eos); "
               "see docs/tokens.md")


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


class VocabularyFields(BaseModel):
    """The model's vocabulary of ids (docs/tokens.md), named as a `transformers` config names them."""

    vocab_version: Optional[Code] = Field(None, description="The rule the ids follow (0: none recorded).")
    vocab_size: Optional[Code] = Field(None, description="Every id is below it: the model's n_q x codebook_size "
                                       "code ids, then pad, bos and eos.")
    pad_token_id: Optional[Code] = Field(None, description="Pads a batch, and the corners of the delay pattern.")
    bos_token_id: Optional[Code] = Field(None, description="Begin of audio (first id of a flat or first sequence).")
    eos_token_id: Optional[Code] = Field(None, description="End of audio (last id of a flat or first sequence).")


class EncodeResponse(VocabularyFields):
    codes: Optional[list[list[int]]] = Field(None, description="The codes grid [n_q][frames], each in "
                                             "0..codebook_size-1 (layout codes, the default).")
    input_ids: Optional[Ids] = Field(None, description="With a layout other than codes, the tokens in it: "
                                     "vocabulary ids, a sequence (flat, first) or a grid (delay).")
    layout: str = Field("codes", description=f"The tokens' layout: {LAYOUT_TEXT}.")
    schema_version: int = Field(description="Version of the token metadata schema (docs/tokens.md).")
    n_q: int = Field(description="Quantizer levels returned (1 to the model's n_q), coarse to fine.")
    frames: int = Field(description="Frames per level: ceil(num_samples / hop_length).")
    codebook_size: int = Field(description="Entries per codebook: codes are 0..codebook_size-1.")
    frame_rate: float = Field(description="Frames per second: sample_rate / hop_length.")
    sample_rate: int = Field(description="The model's sample rate; num_samples counts at this rate.")
    num_samples: int = Field(description="Length of the audio after conversion to the model's rate, mono.")
    duration_s: float = Field(description="num_samples / sample_rate.")
    model: ModelRef
    windowing: Windowing


class DecodeRequest(VocabularyFields):
    """An encode response in any layout, or just its tokens (`codes`, or `input_ids` with their
    `layout`). Other fields of the encode response are accepted; those below are checked against
    the tokens."""

    model_config = ConfigDict(extra="ignore")
    codes: Optional[list[list[Code]]] = Field(None, description="[n_q][frames] codes; 1 to the model's n_q levels, "
                                              "coarse first.")
    input_ids: Optional[Ids] = Field(None, description="The tokens in another layout, as vocabulary ids.")
    layout: Optional[str] = Field(None, description=f"The tokens' layout (default codes): {LAYOUT_TEXT}.")
    num_samples: Optional[int] = Field(None, ge=1, description="Output length in samples; default frames * hop_length.")
    n_q: Optional[Code] = Field(None, description="Levels the tokens hold, if recorded.")
    frames: Optional[Code] = Field(None, description="Frames the tokens hold, if recorded.")
    codebook_size: Optional[Code] = Field(None, description="Entries per codebook, if recorded.")
    model: Optional[dict[str, Any]] = Field(None, description="If given, its sha256 must be the served model's.")

    def recorded(self) -> dict[str, Any]:
        """The metadata that came with the tokens, flat (for `dmcodec.tokens.codes_from_tokens`)."""
        return self.model_dump(exclude={"codes", "input_ids", "model"}, exclude_none=True)


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
    vocabulary: dict[str, Any] = Field(description="The ids of the layouts other than codes: codebook_size, n_q, "
                                       "level_offsets and the vocabulary fields of the tokens (docs/tokens.md).")


class Health(BaseModel):
    status: str
