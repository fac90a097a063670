"""One training loop for the keypoint detector and AJAHR, on Lightning Fabric.

Fabric does what is not ours to write: devices, DDP over N GPUs (``devices`` > 1 launches one
process per GPU), bf16/fp16 autocast, gradient syncing and rank-0 checkpoint writing. The loop
adds what exact resumption needs: the sampler restarts at the checkpoint's step (batches are a
function of the step, see ``data.a3d.BalancedBatches``), and the torch / numpy / Python RNG
states are saved and restored with the weights, optimiser and scheduler.

A checkpoint is written to a temporary name and renamed. A non-finite loss stops the run with
the step and the samples named and writes nothing, so the last good checkpoint stays.

Under DDP every decision that ends or skips a step is taken by all processes together (a small
all-reduce): a time limit reached by one rank, a non-finite loss on one rank, a batch that lost
all its samples to corrupt images. A rank that decided alone would leave the others waiting in
the next gradient all-reduce for ever. Each rank's RNG state is saved, and the logged loss is the
mean over ranks. With one process none of this communicates, and the run is what it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric import Fabric
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ajahr_model.data.a3d import A3DDataset, BalancedBatches, CorruptCounter, collate
from ajahr_model.set_aside import set_aside
from ajahr_model.training.params import OptimSettings, RunSettings

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "ajahr-training/1"
LossFn = Callable[[nn.Module, dict[str, Any], int], tuple[torch.Tensor, dict[str, torch.Tensor]]]


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite."""


class TrainingCheckpointError(ValueError):
    """A checkpoint file that is not one of ours, or unreadable."""


@dataclass
class FitResult:
    complete: bool
    step: int
    history: list[dict[str, float]] = field(default_factory=list)
    corrupt: int = 0
    seconds: float = 0.0  # training time of this call
    total_seconds: float = 0.0  # of every call that trained this checkpoint (resumes included)


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able settings (what shapes the weights)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def make_fabric(run: RunSettings) -> Fabric:
    accelerator = run.accelerator
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    if accelerator == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "train.accelerator is 'cuda' but no CUDA device is available (use the cpu profile)"
        )
    # bf16 autocast works on any CPU, and is fast where it has AVX512-BF16 / AMX; fp16 needs a GPU.
    if accelerator == "cpu" and run.precision == "16-mixed":
        raise RuntimeError("train.precision '16-mixed' needs a GPU; on CPU use '32-true' or 'bf16-mixed'")
    strategy = "ddp" if run.devices > 1 else "auto"
    return Fabric(accelerator=accelerator, devices=run.devices, strategy=strategy, precision=run.precision)


def lr_lambda(optim: OptimSettings, steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if optim.warmup_steps and step < optim.warmup_steps:
            return (step + 1) / optim.warmup_steps
        if optim.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - optim.warmup_steps) / max(1, steps - optim.warmup_steps))
        return optim.final_fraction + (1 - optim.final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def read_training_checkpoint(path: Path) -> dict[str, Any]:
    """The raw mapping of a training checkpoint (CPU tensors)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    # A damaged zip raises RuntimeError; a file that is no zip at all falls to torch's legacy
    # reader and raises UnpicklingError.
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        raise TrainingCheckpointError(f"{path}: unreadable checkpoint ({err})") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingCheckpointError(f"{path}: not a training checkpoint of this project (field 'format')")
    return state


def _sum_over_ranks(fabric: Fabric, *values: float) -> list[float]:
    """Each value summed over the processes (one all-reduce); the values themselves with one."""
    if fabric.world_size == 1:
        return list(values)
    summed = fabric.all_reduce(
        torch.tensor(values, dtype=torch.float64, device=fabric.device), reduce_op="sum"
    )
    return summed.tolist()


def _gather(fabric: Fabric, value: Any) -> list[Any]:
    """Every process's ``value``, in rank order (a picklable object; ``[value]`` with one)."""
    if fabric.world_size == 1:
        return [value]
    gathered: list[Any] = [None] * fabric.world_size
    torch.distributed.all_gather_object(gathered, value)
    return gathered


def _mean_over_ranks(fabric: Fabric, loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> dict[str, float]:
    values = {"loss": loss.detach(), **{k: torch.as_tensor(v).detach() for k, v in terms.items()}}
    if fabric.world_size > 1:
        stacked = torch.stack([v.float().to(fabric.device) for v in values.values()])
        values = dict(zip(values, fabric.all_reduce(stacked, reduce_op="mean"), strict=True))
    return {k: float(v) for k, v in values.items()}


def _non_finite_message(step: int, reports: list[Any], world_size: int, checkpoint: Path) -> str:
    where = []
    for rank, value, terms, keys, what in (r for r in reports if r is not None):
        on_rank = f" (process {rank})" if world_size > 1 else ""
        where.append(f"{what.format(value=value)} ({terms}) on samples {keys}{on_rank}")
    return f"step {step}: {'; '.join(where)}; nothing was saved, {checkpoint} keeps the last good state"


def _stop_if_not_finite(
    fabric: Fabric,
    finite: bool,
    what: str,
    step: int,
    loss: torch.Tensor,
    terms: dict,
    keys: list,
    checkpoint: Path,
) -> None:
    """Raise :class:`NonFiniteLossError` on every rank when any rank's ``finite`` is false,
    naming the step, the value, the loss terms and the first samples of each failing rank."""
    if not _sum_over_ranks(fabric, float(not finite))[0]:
        return
    report = None
    if not finite:
        report = (fabric.global_rank, loss.item(), {k: float(v) for k, v in terms.items()}, keys[:8], what)
    reports = _gather(fabric, report)
    raise NonFiniteLossError(_non_finite_message(step, reports, fabric.world_size, checkpoint))


def fit(
    *,
    fabric: Fabric,
    model: nn.Module,
    parameters: list[nn.Parameter] | list[dict[str, Any]],
    loss_fn: LossFn,
    dataset: A3DDataset,
    parts: list[str],
    run: RunSettings,
    optim: OptimSettings,
    checkpoint: Path,
    settings_fp: str,
    extra_state: dict[str, Any] | None = None,
    max_minutes: float | None = None,
    max_steps_this_run: int | None = None,
    progress: bool = True,
    desc: str = "train",
) -> FitResult:
    """Train ``model`` to ``run.steps`` steps, resuming from ``checkpoint`` when it matches.

    ``parameters``: the trained parameters, or AdamW parameter groups (a group's ``lr`` follows
    the same schedule). ``model`` must already be on Fabric's device (it is wrapped here).
    Returns whether the run is complete; a run stopped by a limit has saved its state and can be called again.
    """
    # fused: one kernel over all parameters; on these CPUs the per-tensor update took 13% of an
    # AJAHR step (0.118 s of 0.89), the fused one a quarter of that.
    optimizer = torch.optim.AdamW(
        parameters, lr=optim.lr, weight_decay=optim.weight_decay, betas=optim.betas, fused=True
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(optim, run.steps))
    step, history, corrupt_seen, earlier_seconds = 0, [], {}, 0.0
    # Batches taken from the sampler: one more than the steps for each batch skipped (all its
    # samples corrupt), so that a resumed run draws the batch the uninterrupted one drew next.
    batches_drawn = 0
    if checkpoint.exists():
        # Why the checkpoint will not be continued, if it will not: (name suffix, log text).
        stale: tuple[str, str] | None = None
        try:
            raw = read_training_checkpoint(checkpoint)
        except TrainingCheckpointError as err:
            log.warning("%s", err)
            raw, stale = None, ("unreadable", "unreadable")
        if raw is not None and raw.get("settings_fp") != settings_fp:
            raw, stale = None, (f"settings-{raw.get('settings_fp')}", "written with other settings")
        if stale is not None and fabric.is_global_zero:
            kept = set_aside(checkpoint, stale[0])
            log.warning("set aside %s as %s (%s)", checkpoint, kept.name, stale[1])
        if raw is not None:
            model.load_state_dict(raw["model"])
            optimizer.load_state_dict(raw["optimizer"])
            scheduler.load_state_dict(raw["scheduler"])
            step, history, corrupt_seen = raw["step"], raw["history"], raw.get("corrupt", {})
            batches_drawn = raw.get("batches_drawn", step)
            earlier_seconds = float(raw.get("train_seconds", 0.0))
            per_rank = raw.get("rng_per_rank")
            same_world = per_rank is not None and len(per_rank) == fabric.world_size
            _set_rng_state(per_rank[fabric.global_rank] if same_world else raw["rng"])
            log.info("resumed %s at step %d of %d", checkpoint, step, run.steps)
    wrapped, optimizer = fabric.setup(model, optimizer)
    counter = CorruptCounter(len(dataset), run.max_corrupt_fraction)
    counter.seen.update(corrupt_seen)

    def save(complete: bool) -> float:
        """Write the state; returns this call's training seconds, as recorded in it."""
        seconds = time.monotonic() - started
        rng = _gather(fabric, _rng_state())  # every rank's, so each resumes its own stream
        state = {
            "format": CHECKPOINT_FORMAT,
            "settings_fp": settings_fp,
            "step": step,
            "batches_drawn": batches_drawn,
            "complete": complete,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "history": history,
            "corrupt": dict(counter.seen),
            "rng": rng[0],
            **({"rng_per_rank": rng} if fabric.world_size > 1 else {}),
            "train_seconds": earlier_seconds + seconds,
            **(extra_state or {}),
        }
        if fabric.is_global_zero:
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            temporary = checkpoint.with_name(checkpoint.name + ".tmp")
            torch.save(state, temporary)
            os.replace(temporary, checkpoint)
        fabric.barrier()
        return seconds

    if step >= run.steps:
        return FitResult(True, step, history, counter.count, 0.0, earlier_seconds)
    sampler = BalancedBatches(
        parts,
        run.batch_size,
        run.amputee_fraction,
        run.seed,
        start_batch=batches_drawn,
        rank=fabric.global_rank,
        world_size=fabric.world_size,
    )
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        # The loader's own generator: making its iterator draws a worker seed, which from the
        # global stream would shift every later draw of a resumed run against the uninterrupted one.
        generator=torch.Generator().manual_seed(run.seed),
        num_workers=run.num_workers,
        collate_fn=collate,
        persistent_workers=False,
        pin_memory=fabric.device.type == "cuda",
    )
    loader = fabric.setup_dataloaders(loader, use_distributed_sampler=False, move_to_device=True)
    started, steps_this_run = time.monotonic(), 0
    window_start, window_images = time.monotonic(), 0
    wrapped.train()
    bar = tqdm(
        total=run.steps,
        initial=step,
        desc=desc,
        disable=not (progress and fabric.is_global_zero),
        mininterval=10 if not os.isatty(2) else 0.1,
    )
    for batch in loader:
        batches_drawn += 1
        corrupt, empty = _sum_over_ranks(fabric, len(batch["corrupt"]), float(not batch["keys"]))
        if corrupt:
            for share in _gather(fabric, batch["corrupt"]):  # every rank counts every rank's
                counter.add(share)
        if empty:  # some rank has nothing left of its share: the step is skipped everywhere
            continue
        loss, terms = loss_fn(wrapped, batch, step)
        _stop_if_not_finite(fabric, bool(torch.isfinite(loss)), "the loss is {value}", step, loss, terms,
                            batch["keys"], checkpoint)  # fmt: skip
        optimizer.zero_grad(set_to_none=True)
        fabric.backward(loss)
        if optim.grad_clip is not None:
            norm = fabric.clip_gradients(
                wrapped, optimizer, max_norm=optim.grad_clip, error_if_nonfinite=False
            )
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in wrapped.parameters() if p.grad is not None])
        # A finite loss can still give NaN gradients (a 0/0 inside a backward); one step on them
        # would make every weight NaN and the next checkpoint worthless.
        if run.precision != "16-mixed":  # there the grad scaler skips an overflowing step itself
            what = "the loss is {value} but its gradients are not finite"
            if fabric.world_size > 1:
                what += " after averaging over the processes (the cause may be on any of them)"
            finite = bool(torch.isfinite(norm))
            _stop_if_not_finite(fabric, finite, what, step, loss, terms, batch["keys"], checkpoint)
        optimizer.step()
        scheduler.step()
        step += 1
        steps_this_run += 1
        window_images += len(batch["keys"]) * fabric.world_size
        bar.update(1)
        if step % run.log_every == 0 or step == run.steps:
            elapsed = time.monotonic() - window_start
            means = _mean_over_ranks(fabric, loss, terms)
            row = {
                "step": step,
                "loss": means.pop("loss"),
                "lr": scheduler.get_last_lr()[0],
                "images_per_s": window_images / max(elapsed, 1e-9),
            }
            row.update(means)
            history.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            window_start, window_images = time.monotonic(), 0
        if step >= run.steps:
            break
        out_of_time = max_minutes is not None and time.monotonic() - started > max_minutes * 60
        if max_minutes is not None:  # the clocks differ: the first rank past the limit stops all
            out_of_time = _sum_over_ranks(fabric, float(out_of_time))[0] > 0
        out_of_steps = max_steps_this_run is not None and steps_this_run >= max_steps_this_run
        if out_of_time or out_of_steps:
            seconds = save(complete=False)
            bar.close()
            log.info("stopped at step %d of %d (limit); the checkpoint resumes it", step, run.steps)
            return FitResult(False, step, history, counter.count, seconds, earlier_seconds + seconds)
        if step % run.checkpoint_every == 0:
            save(complete=False)
    bar.close()
    seconds = save(complete=True)
    return FitResult(True, step, history, counter.count, seconds, earlier_seconds + seconds)
