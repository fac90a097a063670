"""Training of one pose tokenizer: the loop, its checkpoints, and exact resumption.

A run writes ``<output_dir>/<name>/checkpoint.pt`` every ``train.checkpoint_every`` steps and when
it is stopped early (``max_seconds`` / ``max_steps``); the next run with the same settings picks
up from it and reaches the same weights as an uninterrupted run: the checkpoint holds the
weights, the EMA codebook state, the optimiser and scheduler, the step, the position of the pose
stream, and the random states of torch (global and the run's generator) and numpy. A checkpoint
written with other settings is not resumed: the run starts over. When the last step is done, the
held-out metrics are computed and ``metrics.json`` and ``loss_curve.png`` are written beside the
(now complete) checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from tqdm import tqdm

from a3d_data.atomic import atomic_path
from a3d_data.body_model import BodyModel
from a3d_data.poses import ProceduralPoseSource
from ajahr_model.set_aside import set_aside
from ajahr_model.tokenizer.checkpoint import (
    CheckpointError,
    checkpoint_state,
    load_into,
    read_checkpoint,
    save_checkpoint,
)
from ajahr_model.tokenizer.data import TrainingPoseStream, add_part_noise, held_out_poses, noise_amplitude
from ajahr_model.tokenizer.figure import draw_loss_curve
from ajahr_model.tokenizer.losses import PoseSkinning, tokenizer_loss
from ajahr_model.tokenizer.metrics import evaluate
from ajahr_model.tokenizer.params import TokenizerRole, TokenizerSettings
from ajahr_model.tokenizer.vqvae import PoseVQVAE

log = logging.getLogger(__name__)

CHECKPOINT_NAME: Final[str] = "checkpoint.pt"
METRICS_NAME: Final[str] = "metrics.json"
FIGURE_NAME: Final[str] = "loss_curve.png"
_TERMS: Final[tuple[str, ...]] = ("rotmat", "vertices", "joints", "commit", "sixd")
# Settings that change what is logged or how often it is saved, never the weights: a run may be
# resumed with other values of these.
_BOOKKEEPING: Final[dict[str, set[str]]] = {
    "train": {"log_every", "eval_every", "checkpoint_every", "prefetch"},
    "validation": {"batch_size"},
}


def code_fingerprint() -> str:
    """Hash of the source that shapes a tokenizer's weights: this package's ``tokenizer`` modules
    and a3d-data's pose sampler, amputation, body model and skeleton (the stage's code deps).

    Part of the resumption guard: a finished or half-done checkpoint is only continued by the
    code that wrote it, so a change to the loss (say) retrains rather than reusing old weights.
    """
    import a3d_data

    tokenizer_dir = Path(__file__).resolve().parent
    data_dir = Path(a3d_data.__file__).resolve().parent
    files = sorted(tokenizer_dir.glob("*.py"))
    for folder in ("poses", "amputation", "body_model"):
        files += sorted((data_dir / folder).glob("*.py"))
    files.append(data_dir / "skeleton.py")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def settings_fingerprint(
    settings: TokenizerSettings, role: TokenizerRole, code: str | None = None, body_model: str | None = None
) -> str:
    """Hash of everything that determines the trained weights: the settings (bookkeeping ones
    excluded), the tokenizer's role, the code (:func:`code_fingerprint` by default) and the body
    model its losses pose (``BodyModel.fingerprint``)."""
    data = settings.model_dump(mode="json", exclude=_BOOKKEEPING)
    data["role"] = role.model_dump(mode="json")
    data["code"] = code_fingerprint() if code is None else code
    data["body_model"] = body_model
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("tokenizer.device is 'cuda' but no CUDA device is available (use the cpu profile)")
    return torch.device(name)


def _numpy_state() -> dict[str, Any]:
    state = np.random.get_state(legacy=False)
    return {
        **state,
        "state": {
            "key": torch.from_numpy(state["state"]["key"].astype(np.int64)),
            "pos": state["state"]["pos"],
        },
    }


def _set_numpy_state(state: dict[str, Any]) -> None:
    key = state["state"]["key"].numpy().astype(np.uint32)
    np.random.set_state({**state, "state": {"key": key, "pos": int(state["state"]["pos"])}})


def _scheduler(
    optimizer: torch.optim.Optimizer, settings: TokenizerSettings
) -> torch.optim.lr_scheduler.LRScheduler:
    optim = settings.optim
    if optim.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=settings.train.steps, eta_min=optim.lr * optim.gamma
        )
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, optim.milestones, optim.gamma)


@dataclass
class RunOutcome:
    """What one invocation did.

    Attributes
    ----------
    step, total_steps : where training stands after this run.
    complete : the last step is done and the outputs are written.
    seconds : wall time of this run's training steps.
    checkpoint, metrics, figure : paths (metrics and figure only once complete).
    results : the metrics mapping once complete.
    """

    name: str
    step: int
    total_steps: int
    complete: bool
    seconds: float
    checkpoint: Path
    metrics: Path | None = None
    figure: Path | None = None
    results: dict[str, Any] = field(default_factory=dict)


class TokenizerTraining:
    """The state of one tokenizer's training and the steps that advance it.

    Parameters
    ----------
    name : ``non_amputee`` or ``amputee`` (names the folder and the figure).
    settings : the resolved profile settings.
    role : amputee share and seed of this tokenizer.
    body_model : the body model (for the loss and the metrics).
    device : where to train.
    profile : profile name, recorded in the outputs.
    """

    def __init__(
        self,
        name: str,
        settings: TokenizerSettings,
        role: TokenizerRole,
        body_model: BodyModel,
        device: torch.device,
        profile: str = "",
    ):
        self.name = name
        self.settings = settings
        self.role = role
        self.device = device
        self.profile = profile
        self.fingerprint = settings_fingerprint(settings, role, body_model=body_model.fingerprint())
        self.config = settings.model.config()
        # Weight initialisation is seeded without touching the caller's global random state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(role.seed)
            self.model = PoseVQVAE(
                self.config, settings.quantizer.decay, settings.quantizer.dead_code_threshold
            ).to(device)
        optim = settings.optim
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay
        )
        self.scheduler = _scheduler(self.optimizer, settings)
        # The run's own random stream (CPU): noise augmentation and dead-code resets.
        self.generator = torch.Generator().manual_seed(role.seed)
        source = ProceduralPoseSource(settings.poses)
        self.stream = TrainingPoseStream(
            source,
            settings.train.batch_size,
            role.amputee_fraction,
            role.seed,
            settings.train.chunk_batches,
            prefetch=settings.train.prefetch,
        )
        self.body_model = body_model.to(device)
        self.skinning = PoseSkinning(body_model, self._vertex_subset(body_model)).to(device)
        validation = settings.validation
        self.held_out = held_out_poses(source, validation.normal, validation.amputee, validation.seed)
        self.held_out_ids = {str(i) for poses in self.held_out.values() for i in poses.pose_ids}
        if len(self.held_out_ids) != validation.normal + validation.amputee:
            raise RuntimeError("held-out pose ids are not unique; the pose sampler's ids are broken")
        self.step = 0
        self.elapsed = 0.0
        self.history: list[dict[str, Any]] = []
        self.evaluations: list[dict[str, Any]] = []
        self._interval: dict[str, float] = {}

    @property
    def total_steps(self) -> int:
        return self.settings.train.steps

    @property
    def complete(self) -> bool:
        return self.step >= self.total_steps

    def _vertex_subset(self, body_model: BodyModel) -> torch.Tensor | None:
        count = self.settings.loss.vertex_subset
        num_vertices = int(body_model.v_template.shape[0])
        if count is None or count >= num_vertices:
            return None
        chooser = torch.Generator().manual_seed(self.role.seed)
        return torch.randperm(num_vertices, generator=chooser)[:count].sort().values

    # --- one step -------------------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        """One optimisation step on the next training batch; returns the unweighted loss terms."""
        settings = self.settings
        poses = self.stream.next_batch()
        seen = self.held_out_ids.intersection(poses.pose_ids.tolist())
        if seen:
            raise RuntimeError(f"training batch {self.step} contains held-out poses {sorted(seen)[:3]}")
        ramp = round(settings.noise.ramp_fraction * self.total_steps)
        amplitude = noise_amplitude(self.step, ramp, settings.noise.start, settings.noise.end)
        inputs = add_part_noise(poses.pose6d, amplitude, settings.noise.fraction, self.generator)
        target = poses.pose6d.to(self.device)
        self.model.train()
        with torch.autocast(
            self.device.type, torch.bfloat16, enabled=settings.train.precision == "bf16-mixed"
        ):
            out = self.model(inputs.to(self.device), self.generator)
        loss, terms = tokenizer_loss(
            out.pose6d, target, out.commit_loss, self.skinning, settings.loss.weights(), self.config.zero_norm
        )
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{self.name}: loss is {float(loss)} at step {self.step} ({terms})")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        weights = settings.loss.weights()
        record = {"loss": float(loss.detach()), "perplexity": float(out.perplexity)}
        record.update({f"w_{t}": getattr(weights, t) * terms[t] for t in _TERMS})
        record["resets"] = float(self.model.quantizer.last_reset_count)
        for key, value in record.items():
            self._interval[key] = self._interval.get(key, 0.0) + value
        self._interval["count"] = self._interval.get("count", 0.0) + 1.0
        if self.step % settings.train.log_every == 0 or self.complete:
            count = self._interval.pop("count")
            entry = {key: value / count for key, value in self._interval.items()}
            entry.update(step=self.step, lr=self.scheduler.get_last_lr()[0], noise=amplitude)
            self.history.append(entry)
            self._interval = {}
        return terms

    def evaluate(self) -> dict[str, Any]:
        """Held-out metrics now (the model is left in training mode)."""
        return evaluate(self.model, self.body_model, self.held_out, self.settings.validation.batch_size)

    def _record_evaluation(self) -> dict[str, Any]:
        metrics = self.evaluate()
        entry = {"step": self.step}
        for part in ("normal", "amputee"):
            entry[f"{part}_mpjpe_mm"] = metrics[part]["mpjpe_mm"]
            entry[f"{part}_mve_mm"] = metrics[part]["mve_mm"]
        entry["perplexity"] = metrics["codebook"]["perplexity"]
        # Finishing an already finished run evaluates the same step again: replace, not repeat.
        self.evaluations = [e for e in self.evaluations if e["step"] != self.step] + [entry]
        log.info(
            "%s step %d: held-out MPJPE %.2f mm (normal), %.2f mm (amputee); codebook usage %.3f",
            self.name, self.step, entry["normal_mpjpe_mm"], entry["amputee_mpjpe_mm"],
            metrics["codebook"]["codebook_usage"],
        )  # fmt: skip
        return metrics

    # --- checkpoints ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The whole run: the consumer's part (config, weights) and the training state."""
        training = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": _numpy_state(),
            "stream": self.stream.state_dict(),
            "history": self.history,
            "evaluations": self.evaluations,
            "interval": self._interval,
            "elapsed_seconds": self.elapsed,
        }
        if self.device.type == "cuda":
            training["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return checkpoint_state(
            self.model,
            name=self.name,
            complete=self.complete,
            step=self.step,
            total_steps=self.total_steps,
            profile=self.profile,
            fingerprint=self.fingerprint,
            settings=self.settings.model_dump(mode="json"),
            role=self.role.model_dump(mode="json"),
            training=training,
        )

    def load_state_dict(self, state: dict[str, Any], path: Path | str = "checkpoint") -> None:
        """Continue from a checkpoint of a run with the same settings (see :meth:`can_resume`)."""
        load_into(self.model, state, path)
        training = state["training"]
        self.optimizer.load_state_dict(training["optimizer"])
        self.scheduler.load_state_dict(training["scheduler"])
        self.generator.set_state(training["generator"])
        torch.set_rng_state(training["torch_rng"])
        _set_numpy_state(training["numpy_rng"])
        if "cuda_rng" in training and self.device.type == "cuda":
            torch.cuda.set_rng_state(training["cuda_rng"], self.device)
        self.stream.load_state_dict(training["stream"])
        self.history = list(training["history"])
        self.evaluations = list(training["evaluations"])
        self._interval = dict(training["interval"])
        self.elapsed = float(training["elapsed_seconds"])
        self.step = int(state["step"])

    def can_resume(self, state: dict[str, Any]) -> bool:
        """A checkpoint continues this run only if it was written with the same settings."""
        return state.get("fingerprint") == self.fingerprint and "training" in state

    # --- the loop -------------------------------------------------------------------------

    def run(
        self,
        checkpoint: Path,
        max_seconds: float | None = None,
        max_steps: int | None = None,
        progress: bool = True,
    ) -> bool:
        """Train until done, or until ``max_seconds`` / ``max_steps`` of this run; save and say if done."""
        train = self.settings.train
        stop_at = self.total_steps if max_steps is None else min(self.total_steps, self.step + max_steps)
        started = time.monotonic()
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc=self.name,
            disable=not progress,
            unit="step",
            # In a log (dvc repro under an orchestrator) a line every few seconds, not ten a second.
            mininterval=0.1 if sys.stderr.isatty() else 10.0,
        )
        since = started
        try:
            while self.step < stop_at:
                terms = self.train_step()
                now = time.monotonic()
                self.elapsed += now - since
                since = now
                bar.update(1)
                if self.step % train.log_every == 0:
                    bar.set_postfix(
                        loss=f"{self.history[-1]['loss']:.4f}",
                        joints_mm=f"{1000 * math.sqrt(terms['joints']):.1f}",
                    )
                if self.step % train.eval_every == 0 and not self.complete:
                    self._record_evaluation()
                    since = time.monotonic()  # evaluation time is not training time
                if self.step % train.checkpoint_every == 0 and not self.complete:
                    save_checkpoint(self.state_dict(), checkpoint)
                    since = time.monotonic()
                if max_seconds is not None and now - started >= max_seconds:
                    break
        finally:
            bar.close()
            self.stream.close()
        if not self.complete:
            save_checkpoint(self.state_dict(), checkpoint)
        return self.complete


def train_tokenizer(
    name: str,
    settings: TokenizerSettings,
    role: TokenizerRole,
    body_model: BodyModel,
    output_dir: Path,
    *,
    profile: str = "",
    max_seconds: float | None = None,
    max_steps: int | None = None,
    device: torch.device | None = None,
    progress: bool = True,
) -> RunOutcome:
    """Train (or resume, or finish) tokenizer ``name`` into ``output_dir / name``.

    Parameters
    ----------
    name, settings, role : which tokenizer, with what settings.
    body_model : the body model for the loss and the metrics.
    output_dir : the parent folder (``models/tokenizers``).
    profile : the profile's name, recorded in the outputs.
    max_seconds, max_steps : stop this run after so many seconds of training / steps; the
        checkpoint is saved and the next call resumes. None: until the last step.
    device : default from ``settings.device``.
    progress : show a progress bar.

    Returns
    -------
    :class:`RunOutcome`; ``complete`` is False when the run stopped early.
    """
    folder = Path(output_dir) / name
    checkpoint = folder / CHECKPOINT_NAME
    device = device if device is not None else resolve_device(settings.device)
    training = TokenizerTraining(name, settings, role, body_model, device, profile)
    if checkpoint.exists():
        try:
            state = read_checkpoint(checkpoint)
        except CheckpointError as err:
            kept = set_aside(checkpoint, "unreadable")
            log.warning("%s; starting over (the file is kept as %s)", err, kept)
            state = None
        if state is not None and training.can_resume(state):
            training.load_state_dict(state, checkpoint)
            log.info(
                "%s: resuming from %s at step %d of %d", name, checkpoint, training.step, training.total_steps
            )
        elif state is not None:
            kept = set_aside(checkpoint, f"settings-{state.get('fingerprint', 'unknown')}")
            log.warning(
                "%s: %s was written with other settings; starting over (the old run is kept as %s)",
                name, checkpoint, kept.name,
            )  # fmt: skip
    elapsed_before = training.elapsed
    done = training.run(checkpoint, max_seconds=max_seconds, max_steps=max_steps, progress=progress)
    seconds = training.elapsed - elapsed_before
    if not done:
        log.info(
            "%s: stopped at step %d of %d; run again to resume", name, training.step, training.total_steps
        )
        return RunOutcome(name, training.step, training.total_steps, False, seconds, checkpoint)
    return _finish(training, folder, checkpoint, seconds)


def _finish(training: TokenizerTraining, folder: Path, checkpoint: Path, seconds: float) -> RunOutcome:
    metrics = training._record_evaluation()
    settings = training.settings
    results = {
        "tokenizer": training.name,
        "profile": training.profile,
        "steps": training.step,
        "batch_size": settings.train.batch_size,
        "amputee_fraction": training.role.amputee_fraction,
        "train_seconds": round(training.elapsed, 1),
        "config": training.config.to_dict(),
        "held_out": {"normal": metrics["normal"], "amputee": metrics["amputee"]},
        "codebook": metrics["codebook"],
        # Every training batch was checked against the held-out pose ids (an overlap stops training).
        "training_batches_checked_against_held_out": training.step,
    }
    state = training.state_dict()
    state["metrics"] = results
    save_checkpoint(state, checkpoint)
    metrics_path = folder / METRICS_NAME
    with atomic_path(metrics_path) as temporary:
        temporary.write_text(json.dumps(results, indent=2) + "\n")
    figure = draw_loss_curve(
        training.history,
        training.evaluations,
        f"pose tokenizer '{training.name}' ({training.profile} profile): T={training.config.tokens}, "
        f"K={training.config.codebook_size}, D={training.config.code_dim}",
        folder / FIGURE_NAME,
    )
    return RunOutcome(
        training.name,
        training.step,
        training.total_steps,
        True,
        seconds,
        checkpoint,
        metrics_path,
        figure,
        results,
    )
