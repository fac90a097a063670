"""Benchmark of pose-tokenizer training, printed as one table (``make bench-tokenizer``).

For each profile of ``params.yaml``'s ``tokenizer`` section that runs on this machine (``cpu``
always; ``gpu`` where CUDA is available, else its model on CPU with fewer steps), measured in the
same process:

- ``step``: one whole optimisation step (pose batch from the stream, noise, forward, the loss
  through the body model, backward, AdamW, EMA codebook update), ms and steps/s;
- ``vq only`` (the baseline): the same network's step with the rotation terms of the loss alone
  (no body-model skinning, no logging); ``step / vq only`` is what the body-model terms cost;
- ``sampler``: drawing one batch of procedural poses (amortised over a chunk, amputations
  applied), ms; ``sampler / step`` is the share of a step the pose stream takes (it runs in the
  training process, not overlapped).

Usage: .venv/bin/python benchmarks/bench_tokenizer.py [--params params.yaml] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from a3d_data.body_model import load_body_model
from a3d_data.params import load_section
from ajahr_model.tokenizer.data import add_part_noise, amputee_layout, sample_poses
from ajahr_model.tokenizer.params import TokenizerSection, TokenizerSettings
from ajahr_model.tokenizer.rotation6d import rotation_6d_to_matrix
from ajahr_model.tokenizer.train import TokenizerTraining

REPO_ROOT = Path(__file__).resolve().parents[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_steps(step, device: torch.device, seconds: float, max_steps: int, warmup: int = 2) -> float:
    """Mean ms per call of ``step`` over about ``seconds`` (after ``warmup`` calls)."""
    for _ in range(warmup):
        step()
    _sync(device)
    started, count = time.perf_counter(), 0
    while count < max_steps and (count == 0 or time.perf_counter() - started < seconds):
        step()
        count += 1
    _sync(device)
    return 1000.0 * (time.perf_counter() - started) / count


def bench_profile(
    section: TokenizerSection, profile: str, body_model, device: torch.device, seconds: float
) -> dict[str, float]:
    settings: TokenizerSettings = section.settings(profile)
    if device.type == "cpu":
        settings = settings.model_copy(update={"device": "cpu"})
    # The paper-size model on a CPU takes seconds a step: a couple of steps say enough.
    fast = device.type == "cuda" or profile == "cpu"
    max_steps, warmup = (1000, 2) if fast else (2, 1)
    full = TokenizerTraining("amputee", settings, section.role("amputee"), body_model, device, profile)
    step_ms = _time_steps(full.train_step, device, seconds, max_steps, warmup)

    # Baseline: the same network, batch, noise and optimiser, with the rotation terms of the loss
    # alone (no body-model skinning).
    baseline = TokenizerTraining("amputee", settings, section.role("amputee"), body_model, device, profile)
    vq_ms = _time_steps(lambda: _vq_only_step(baseline), device, seconds, max_steps, warmup)

    stream = full.stream
    layout = amputee_layout(stream.chunk_batches, stream.batch_size, stream.amputee_fraction)
    rng = np.random.default_rng(10_000)
    started = time.perf_counter()
    draws = 0
    while draws == 0 or time.perf_counter() - started < seconds:
        sample_poses(stream.source, layout, rng)
        draws += 1
    sampler_ms = 1000.0 * (time.perf_counter() - started) / (draws * stream.chunk_batches)
    return {
        "batch": settings.train.batch_size,
        "tokens": settings.model.tokens,
        "step_ms": step_ms,
        "vq_ms": vq_ms,
        "sampler_ms": sampler_ms,
    }


def _vq_only_step(training: TokenizerTraining) -> None:
    """One step of ``training``'s model on rotation-matrix and 6D terms only."""
    poses = training.stream.next_batch()
    inputs = add_part_noise(poses.pose6d, 0.1, training.settings.noise.fraction, training.generator)
    target = poses.pose6d.to(training.device)
    out = training.model(inputs.to(training.device), training.generator)
    zero_norm = training.config.zero_norm
    rotmat = (rotation_6d_to_matrix(out.pose6d, zero_norm) - rotation_6d_to_matrix(target, zero_norm)).pow(2)
    loss = 20.0 * rotmat.sum((-2, -1)).mean() + 20.0 * (out.pose6d - target).pow(2).sum(-1).mean()
    loss = loss + out.commit_loss
    training.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    training.optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", type=Path, default=REPO_ROOT / "params.yaml")
    parser.add_argument("--seconds", type=float, default=5.0, help="timing budget per measurement")
    args = parser.parse_args()
    section = load_section(args.params, "tokenizer", TokenizerSection)
    body_model = load_body_model()
    cuda = torch.cuda.is_available()
    runs = [("cpu", torch.device("cpu"))]
    runs.append(("gpu", torch.device("cuda" if cuda else "cpu")))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {os.getloadavg()}")
    header = (
        f"{'profile':<8} {'device':<6} {'batch':>5} {'T':>4} {'step ms':>9} {'steps/s':>8} "
        f"{'vq only ms':>10} {'step/vq':>8} {'sampler ms':>10} {'sampler/step':>12}"
    )
    print(header)
    print("-" * len(header))
    for profile, device in runs:
        row = bench_profile(section, profile, body_model, device, args.seconds)
        print(
            f"{profile:<8} {device.type:<6} {row['batch']:>5} {row['tokens']:>4} {row['step_ms']:>9.1f} "
            f"{1000.0 / row['step_ms']:>8.1f} {row['vq_ms']:>10.1f} {row['step_ms'] / row['vq_ms']:>8.2f} "
            f"{row['sampler_ms']:>10.1f} {row['sampler_ms'] / row['step_ms']:>12.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
