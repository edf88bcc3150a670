"""The training loop: codec + distillation and pitch heads against three discriminator families.

One step: a batch of crops -> the codec's reconstruction and RVQ features -> (after
`adversarial_start`) a discriminator update on real vs generated audio -> a generator update on
mel + waveform + commitment + adversarial + feature-matching + distillation + pitch +
periodicity + recognition losses.
Runs on one CPU or GPU, or several GPUs under `torchrun` (DDP).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import signal
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from dmcodec.checkpoint import load_checkpoint, save_checkpoint
from dmcodec.init import init_weights
from dmcodec.model import CodecOutput, DMCodec

from .config import TrainConfig
from .data.batches import Batch, CropSampler
from .data.manifest import read_manifest
from .losses import (
    Discriminators,
    DistillationHead,
    discriminator_loss,
    distillation_loss,
    feature_matching_loss,
    generator_loss,
    select_levels,
)
from .losses.periodicity import periodicity_loss
from .losses.pitch import PitchHead, pitch_loss
from .losses.recognition import RecognitionLoss
from .mel import MultiScaleMelLoss, mel_distance
from .schedule import lr_factor
from .state import STATE_NAME, load_state, save_state
from .teachers.store import FeatureStore
from .teachers.whisper_encoder import SAMPLE_RATE as WHISPER_RATE


class Generator(nn.Module):
    """The codec, its distillation heads and its pitch head, trained (and DDP-wrapped) as one module.

    teacher_dims: the LM and speech teachers' widths, one distillation head each (none: no
    distillation). decoder_only: train the decoder alone, with the encoder and codebooks frozen
    in eval mode (no EMA updates), so the tokens do not move. pitch: add the pitch head.
    """

    def __init__(self, codec: DMCodec, teacher_dims: dict[str, int], decoder_only: bool = False,
                 pitch: bool = False):
        super().__init__()
        self.codec = codec
        dim = codec.config.dimension
        self.decoder_only = decoder_only
        self.heads = nn.ModuleDict({name: DistillationHead(dim, width) for name, width in teacher_dims.items()})
        self.pitch_head = PitchHead(dim) if pitch else None
        # The release's `transform` head is not trained here: the heads above replace it.
        codec.transform.requires_grad_(False)
        if self.decoder_only:
            codec.encoder.requires_grad_(False)
            codec.quantizer.requires_grad_(False)

    def train(self, mode: bool = True) -> Generator:
        super().train(mode)
        if self.decoder_only:
            self.codec.encoder.eval()
            self.codec.quantizer.eval()
        return self

    def forward(self, audio: torch.Tensor, n_q: int | None, quantize: bool = True) -> CodecOutput:
        if self.decoder_only:
            with torch.no_grad():
                codes = self.codec.quantizer.encode(self.codec.encoder(audio), n_q)
                quantized = self.codec.quantizer.decode(codes)
            return CodecOutput(self.codec.decoder(quantized), codes, quantized.new_zeros(()), [])
        if quantize:
            return self.codec(audio, n_q)
        # The quantizer's warm-up: the latent goes to the decoder as it is, and it stands in for
        # every RVQ level as the distillation features.
        latent = self.codec.encoder(audio)
        return CodecOutput(self.codec.decoder(latent), None, latent.new_zeros(()), [latent])


class Trainer:
    """Args:
        config: the run's settings.
        run_dir: where state.pt, config.json, metrics.csv, TensorBoard logs and best/ go.
        manifest: utterances (train split for training, dev split for validation).
        features: the folder `dmcodec-train teachers` (or `pitch`) wrote; None when nothing is
            distilled and no loss reads the pitch targets (loss.distillation, loss.pitch and
            loss.periodicity 0, or train_parts "decoder" without loss.periodicity).
        device: "cpu", "cuda" (under torchrun each process takes its LOCAL_RANK's GPU).
    """

    def __init__(self, config: TrainConfig, run_dir: str | Path, manifest: str | Path,
                 features: str | Path | None, device: str = "cpu", progress: bool = True):
        self.config = config
        self.run_dir = Path(run_dir)
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1:
            torch.distributed.init_process_group("nccl" if device == "cuda" else "gloo")
            if device == "cuda":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        self.device = torch.device(device, int(os.environ.get("LOCAL_RANK", "0"))) if device == "cuda" \
            else torch.device(device)
        self.progress = progress and self.rank == 0
        torch.manual_seed(config.seed)

        codec_config = config.codec_config()
        self.hop = codec_config.hop_length
        decoder_only = config.train_parts == "decoder"
        self.distilling = not decoder_only and config.loss.distillation > 0
        self.pitching = not decoder_only and config.loss.pitch > 0
        # The periodicity loss reads the same targets but only shapes the decoder: it stays on
        # when only the decoder trains.
        self.periodic = config.loss.periodicity > 0
        needs_pitch = self.pitching or self.periodic
        store = FeatureStore(features) if features is not None and (self.distilling or needs_pitch) else None
        if self.distilling and (store is None or not store.has_teachers):
            raise ValueError("distillation needs teacher features (`dmcodec-train teachers`); "
                             "train without it with loss.distillation=0")
        if needs_pitch and (store is None or not store.has_pitch):
            raise ValueError("the pitch and periodicity losses need pitch targets in the feature folder "
                             "(`dmcodec-train teachers`, or `dmcodec-train pitch` for a folder of its own); "
                             "or set loss.pitch=0 and loss.periodicity=0")
        if self.distilling:  # a table-6 variant must never train on another variant's features
            store.require_layers({"lm": config.lm_layers, "speech": config.speech_layers})
        self.teachers = store.index["teachers"] if store is not None else {}
        self.manifest = Path(manifest)
        train = read_manifest(manifest, "train")
        self.dev = read_manifest(manifest, "dev")[: config.dev_utterances]
        segment_frames = max(1, round(config.segment_seconds * codec_config.frame_rate))
        self.sampler = CropSampler(train, store, segment_frames, self.hop, codec_config.sample_rate, config.seed)
        self.train_hours = sum(u.duration for u in train) / 3600
        self.train_ids = [u.id for u in train]

        codec = init_weights(DMCodec(codec_config))
        for level in codec.quantizer.levels:
            level.dead_code_threshold = config.dead_code_threshold
        self.generator = Generator(codec, store.dims if store is not None and self.distilling else {}, decoder_only,
                                   self.pitching).to(self.device)
        self.discriminators = Discriminators(config.periods, config.msd_scales, config.stft_n_ffts,
                                             config.discriminator_width).to(self.device)
        self.mel_loss = MultiScaleMelLoss(codec_config.sample_rate, config.mel_n_ffts, config.n_mels).to(self.device)
        self.recognition: RecognitionLoss | None = None
        if config.loss.recognition > 0:
            if codec_config.sample_rate != WHISPER_RATE:
                raise ValueError(f"the recognition loss's Whisper hears 16 kHz; this codec runs at "
                                 f"{codec_config.sample_rate} Hz")
            self.recognition = RecognitionLoss(config.recognition_model, config.recognition_items).to(self.device)
        self.step = 0
        trainable = [p for p in self.generator.parameters() if p.requires_grad]
        self.g_opt = torch.optim.Adam(trainable, config.lr, config.betas, weight_decay=config.weight_decay)
        self.d_opt = torch.optim.Adam(self.discriminators.parameters(), config.disc_lr, config.betas)
        # Set by a resume from a compact state (no optimiser moments): the rate ramps up again from there.
        self.rewarm_from: int | None = None
        self.g_sched = torch.optim.lr_scheduler.LambdaLR(
            self.g_opt, lambda step: lr_factor(config, step, self.rewarm_from))
        # The critics start late; their rate follows the global step, so they skip the warm-up.
        self.d_sched = torch.optim.lr_scheduler.LambdaLR(
            self.d_opt, lambda _: lr_factor(config, self.step, self.rewarm_from))
        self.best_dev_mel = float("inf")
        # Set when SIGTERM asked the run to stop (a preemption, a lease's or a session's end).
        self.terminated = False
        self.g_model: nn.Module = self.generator
        self.d_model: nn.Module = self.discriminators
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.g_model = nn.parallel.DistributedDataParallel(self.generator, ids)
            self.d_model = nn.parallel.DistributedDataParallel(self.discriminators, ids)

    @property
    def codec(self) -> DMCodec:
        return self.generator.codec

    # --- state -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "best_dev_mel": self.best_dev_mel,
            "config": json.dumps(self.config.to_dict()),
            "generator": self.generator.state_dict(),
            "discriminators": self.discriminators.state_dict(),
            "g_opt": self.g_opt.state_dict(), "d_opt": self.d_opt.state_dict(),
            "g_sched": self.g_sched.state_dict(), "d_sched": self.d_sched.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rewarm_from": -1 if self.rewarm_from is None else self.rewarm_from,
            "data": json.dumps(self.data_position()),
            **({"rng_cuda": torch.cuda.get_rng_state(self.device)} if self.device.type == "cuda" else {}),
        }

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminators.load_state_dict(state["discriminators"])
        self.g_opt.load_state_dict(state["g_opt"])
        self.d_opt.load_state_dict(state["d_opt"])
        self.g_sched.load_state_dict(state["g_sched"])
        self.d_sched.load_state_dict(state["d_sched"])
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"], self.device)
        self.step = int(state["step"])
        self.best_dev_mel = float(state["best_dev_mel"])
        rewarm_from = int(state.get("rewarm_from", -1))  # states saved before re-warming existed lack it
        self.rewarm_from = None if rewarm_from < 0 else rewarm_from

    def data_position(self) -> dict:
        """What, with the step, fixes the batches: the seed and the train rows they are drawn from."""
        digest = hashlib.sha256("\n".join(self.train_ids).encode()).hexdigest()
        return {"seed": self.config.seed, "manifest": self.manifest.name, "train_utterances": len(self.train_ids),
                "train_ids_sha256": digest}

    def resume(self) -> bool:
        """Continue from `run_dir/state.pt` if it exists; returns whether it did."""
        if not (self.run_dir / STATE_NAME).exists():
            return False
        self.load_state_dict(load_state(self.run_dir))
        return True

    def init_from(self, checkpoint: str | Path) -> None:
        """Start from a checkpoint's codec weights and codebooks (e.g. the shipped default)
        instead of random ones: the way to continue training where a run's state.pt is gone.
        Optimisers, heads and critics start fresh; the step count starts at 0."""
        loaded = load_checkpoint(checkpoint, for_inference=False)
        if loaded.config.to_dict() != self.codec.config.to_dict():
            raise ValueError(f"{checkpoint} has another architecture than preset {self.config.codec_preset!r}")
        self.codec.load_state_dict(loaded.model.state_dict())

    def save(self) -> None:
        if self.rank == 0:
            save_state(self.run_dir / STATE_NAME, self.state_dict())

    # --- one step ------------------------------------------------------------------------
    def _autocast(self):
        if self.device.type == "cuda" and self.config.mixed_precision:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _n_q(self) -> int | None:
        n_q = self.codec.config.n_q
        rng = np.random.default_rng([self.config.seed, self.step, 1_000_003])
        if self.config.quantizer_dropout and rng.random() < self.config.quantizer_dropout:
            return int(rng.integers(1, n_q + 1))
        return None

    def _distillation(self, levels: list[torch.Tensor], batch: Batch) -> dict[str, torch.Tensor]:
        out = {}
        for name, spec, mask in (("lm", self.config.lm_levels, batch.lm_mask & batch.frame_mask),
                                 ("speech", self.config.speech_levels, batch.frame_mask)):
            head = self.generator.heads[name]
            student = head(select_levels(levels, spec))
            teacher = getattr(batch, name)
            out[f"distill_{name}"] = distillation_loss(student, teacher, mask)
        return out

    @torch.no_grad()
    def fit_codebooks(self) -> None:
        """k-means on the (warmed-up) encoder's output over the next `codebook_init_batches`
        batches: far more frames than one batch, so that 1024 codes per level have data."""
        latents = [self.codec.encoder(self.sampler.batch(self.step + i, self.config.batch_size, self.rank)
                                      .audio.to(self.device)) for i in range(self.config.codebook_init_batches)]
        self.codec.quantizer.init_from_data(torch.cat(latents))

    def train_step(self, batch: Batch) -> dict[str, float]:
        config, weights = self.config, self.config.loss
        adversarial = self.step >= config.adversarial_start
        quantize = self.step >= config.quantizer_warmup or self.generator.decoder_only
        if quantize and not self.codec.quantizer.initialized:
            self.fit_codebooks()
        self.generator.train()
        with self._autocast():
            output = self.g_model(batch.audio, self._n_q(), quantize)
        fake = output.audio[..., : batch.audio.shape[-1]].float()
        logs: dict[str, torch.Tensor] = {}
        if adversarial:
            with self._autocast():
                real_outputs = self.d_model(batch.audio)
                d_loss = discriminator_loss(real_outputs, self.d_model(fake.detach()))
            # The feature-matching targets: the critics' view of the real audio from this same
            # pass (before their update), which saves a third pass over the real batch.
            real_targets = [(r.detach(), [f.detach() for f in feats]) for r, feats in real_outputs]
            self.d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(self.discriminators.parameters(), config.grad_clip)
            self.d_opt.step()
            self.d_sched.step()
            logs["disc"] = d_loss.detach()
        logs["mel"] = self.mel_loss(fake, batch.audio)
        logs["waveform"] = F.l1_loss(fake, batch.audio)
        logs["commitment"] = output.commit_loss
        total = (weights.mel * logs["mel"] + weights.waveform * logs["waveform"]
                 + weights.commitment * logs["commitment"])
        if self.periodic:
            logs["periodicity"] = periodicity_loss(fake[:, 0], batch.audio[:, 0], batch.log_f0, batch.voiced,
                                                   batch.frame_mask, self.hop, self.codec.sample_rate,
                                                   config.periodicity_bands)
            total = total + weights.periodicity * logs["periodicity"]
        if self.recognition is not None:
            logs["recognition"] = self.recognition(fake[:, 0], batch.audio[:, 0], batch.frame_mask)
            total = total + weights.recognition * logs["recognition"]
        if self.distilling:
            logs.update(self._distillation(output.levels, batch))
            total = total + weights.distillation * (weights.lm * logs["distill_lm"]
                                                    + weights.speech * logs["distill_speech"])
        if self.pitching:
            assert self.generator.pitch_head is not None
            log_f0, voicing = self.generator.pitch_head(select_levels(output.levels, config.pitch_levels))
            logs["pitch_f0"], logs["pitch_voicing"] = pitch_loss(log_f0, voicing, batch.log_f0, batch.voiced,
                                                                 batch.frame_mask)
            total = total + weights.pitch * (logs["pitch_f0"] + logs["pitch_voicing"])
        if adversarial:
            with self._autocast():
                fake_outputs = self.d_model(fake)
            logs["adversarial"] = generator_loss(fake_outputs)
            logs["feature_matching"] = feature_matching_loss(real_targets, fake_outputs)
            total = (total + weights.adversarial * logs["adversarial"]
                     + weights.feature_matching * logs["feature_matching"])
        self.g_opt.zero_grad(set_to_none=True)
        total.backward()
        if config.grad_clip:
            logs["grad_norm"] = nn.utils.clip_grad_norm_(
                [p for p in self.generator.parameters() if p.requires_grad], config.grad_clip)
        self.g_opt.step()
        self.g_sched.step()
        logs["total"] = total.detach()
        self.step += 1
        return {k: float(v.detach()) for k, v in logs.items()}

    # --- validation ----------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, max_seconds: float = 10.0) -> float:
        """Mean dev mel distance (log-mel L1 at n_fft 1024) of full reconstructions (NaN while
        the quantizer warms up: there are no codebooks to encode with yet)."""
        from dmcodec.audio import load_audio

        if not self.codec.quantizer.initialized:
            return float("nan")

        self.generator.eval()
        distances = []
        for utterance in self.dev:
            audio, _ = load_audio(utterance.path, self.codec.sample_rate)
            wav = torch.from_numpy(audio[: int(max_seconds * self.codec.sample_rate)])[None, None].to(self.device)
            codes = self.codec.encode(wav)
            recon = self.codec.decode(codes)[..., : wav.shape[-1]]
            distances.append(mel_distance(recon.float().cpu(), wav.float().cpu(), self.codec.sample_rate))
        self.generator.train()
        return float(np.mean(distances)) if distances else float("nan")

    def export(self, directory: str | Path, dtype: torch.dtype = torch.float32) -> Path:
        return save_checkpoint(self.codec, directory, name=f"{self.config.name}-step{self.step}",
                               training=self.training_record(), dtype=dtype)

    def training_record(self) -> dict:
        return {"trained": True, "steps": self.step, "preset": self.config.name,
                "train_hours": round(self.train_hours, 3), "manifest": self.manifest.name,
                "teachers": self.teachers, "lm_levels": self.config.lm_levels,
                "speech_levels": self.config.speech_levels, "loss_weights": self.config.to_dict()["loss"],
                "hardware": f"{self.world} x {self._device_name()}",
                "best_dev_mel": self.best_dev_mel}

    def _device_name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"

    # --- the loop ------------------------------------------------------------------------
    def _stop_requested(self, flag: threading.Event) -> bool:
        """Whether SIGTERM arrived; under DDP, whether it arrived at any rank, so that all stop
        at the same step (a rank that went on alone would wait for the others forever)."""
        if self.world == 1:
            return flag.is_set()
        stop = torch.tensor([float(flag.is_set())], device=self.device)
        torch.distributed.all_reduce(stop, torch.distributed.ReduceOp.MAX)
        return bool(stop.item())

    @staticmethod
    def _on_sigterm(flag: threading.Event):
        """Catch SIGTERM for the loop (from the main thread only: Python's signal rule) and
        give back the previous handler's restorer."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = signal.signal(signal.SIGTERM, lambda *_: flag.set())
        # None: the previous handler was not set from Python; the default is the closest.
        return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)

    def fit(self, steps: int | None = None, time_limit_s: float | None = None,
            save_at_end: bool = True) -> dict[str, float]:
        """Train until `steps` (default config.steps) total steps, or until `time_limit_s` has
        passed; returns the last logs. The state is saved every `checkpoint_every` steps and,
        unless `save_at_end` is false (a short calibration leg of a longer run), where it stops.
        SIGTERM finishes the step under way, saves, stops and sets `terminated`: a preempted or
        timed-out job loses no steps."""
        target = steps if steps is not None else self.config.steps
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            self.config.save(self.run_dir / "config.json")
        writer = self._tensorboard()
        csv_file = open(self.run_dir / "metrics.csv", "a", newline="") if self.rank == 0 else None  # noqa: SIM115 (rank 0 only; closed in the finally)
        csv_writer = None
        logs: dict[str, float] = {}
        bar = tqdm(total=target, initial=self.step, desc="training", unit="step", disable=not self.progress)
        started, start_step = time.perf_counter(), self.step
        sigterm = threading.Event()
        restore_handler = self._on_sigterm(sigterm)
        try:
            while self.step < target:
                batch = self.sampler.batch(self.step, self.config.batch_size, self.rank).to(self.device)
                logs = self.train_step(batch)
                bar.update(1)
                logs["steps_per_s"] = (self.step - start_step) / (time.perf_counter() - started)
                # At fixed steps only, so that a run stopped and resumed validates (and keeps its
                # best checkpoint) exactly as an uninterrupted one.
                if self.step % self.config.validate_every == 0 or self.step == self.config.steps:
                    logs["dev_mel"] = self.validate()
                    if logs["dev_mel"] < self.best_dev_mel and self.rank == 0:
                        self.best_dev_mel = logs["dev_mel"]
                        self.export(self.run_dir / "best")
                if self.rank == 0 and (self.step % self.config.log_every == 0 or "dev_mel" in logs):
                    bar.set_postfix(mel=f"{logs['mel']:.3f}", total=f"{logs['total']:.2f}")
                    row = {"step": self.step, "lr": self.g_sched.get_last_lr()[0], **logs}
                    if csv_writer is None:
                        csv_writer = csv.DictWriter(csv_file, fieldnames=list(_CSV_FIELDS), extrasaction="ignore")
                        if csv_file.tell() == 0:
                            csv_writer.writeheader()
                    csv_writer.writerow(row)
                    csv_file.flush()
                    if writer:
                        for key, value in row.items():
                            writer.add_scalar(f"train/{key}", value, self.step)
                out_of_time = time_limit_s is not None and time.perf_counter() - started > time_limit_s
                self.terminated = self._stop_requested(sigterm)
                stopping = self.step == target or out_of_time
                if self.step % self.config.checkpoint_every == 0 or (stopping and save_at_end) or self.terminated:
                    self.save()
                if out_of_time or self.terminated:
                    break
        finally:
            restore_handler()
            bar.close()
            if csv_file:
                csv_file.close()
            if writer:
                writer.close()
        return logs

    def _tensorboard(self):
        if self.rank != 0:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(self.run_dir / "tensorboard"))


_CSV_FIELDS = ("step", "lr", "total", "mel", "waveform", "commitment", "distill_lm", "distill_speech",
               "adversarial", "feature_matching", "disc", "grad_norm", "dev_mel", "steps_per_s",
               # Later additions go last, so that a resumed older run keeps its columns in place.
               "pitch_f0", "pitch_voicing", "periodicity", "recognition")
