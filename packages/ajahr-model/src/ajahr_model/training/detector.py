"""Stage ``train_keypoints``: the 2D keypoint detector (present / occluded / absent per joint),
trained on A3D with Lightning Fabric, then evaluated on the test split. Writes ``checkpoint.pt``
(the whole training state; resumable), ``metrics.json`` and ``loss_curve.png``."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ajahr_model.data.a3d import A3DDataset, index_samples, training_data_fingerprint
from ajahr_model.evaluation.detector import evaluate_detector
from ajahr_model.evaluation.evaluate import TEST_PARTS
from ajahr_model.networks.keypoints import KeypointDetector, detect_batch, detector_loss
from ajahr_model.training.common import (
    DATA_CODE,
    SHARED_CODE,
    TRAIN_PARTS,
    load_prior,
    weights_fingerprint,
    write_json,
)
from ajahr_model.training.figure import plot_history
from ajahr_model.training.loop import FitResult, fit, make_fabric, read_training_checkpoint
from ajahr_model.training.params import DetectorSettings

log = logging.getLogger(__name__)

DETECTOR_CODE = (*SHARED_CODE, "training/detector.py", "networks/keypoints.py", *DATA_CODE)


def train_detector(
    settings: DetectorSettings,
    dataset_dir: Path,
    output_dir: Path,
    max_minutes: float | None = None,
    max_steps_this_run: int | None = None,
    progress: bool = True,
    prior_path: Path | None = None,
) -> FitResult:
    """Train the detector of ``settings`` into ``output_dir``, then evaluate it on the test split.
    ``prior_path``: the keypoint_prior stage's output, read when ``model.prior_input`` is on."""
    torch.manual_seed(settings.train.seed)
    fabric = make_fabric(settings.train)
    fabric.launch()
    config = settings.model.config()
    prior = load_prior(prior_path, "keypoints.model.prior_input") if config.prior_input else None
    with fabric.init_module():
        model = KeypointDetector(config)
    if settings.train.compile:
        model.backbone.compile()  # in place, as for AJAHR: the checkpoint keeps the backbone's names
    train_set = A3DDataset(
        index_samples(dataset_dir, "train", TRAIN_PARTS, allow_missing=True),
        settings.augmentation.augmentation(),
        settings.train.seed,
        prior=prior,
    )

    def loss_fn(
        wrapped: nn.Module, batch: dict[str, Any], step: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return detector_loss(
            detect_batch(wrapped, batch),
            batch["keypoints2d"],
            batch["keypoint_state"],
            config.heatmap_sigma,
            settings.state_weight,
            settings.absent_weight,
        )

    checkpoint = output_dir / "checkpoint.pt"
    result = fit(
        fabric=fabric,
        model=model,
        parameters=[p for p in model.parameters() if p.requires_grad],
        loss_fn=loss_fn,
        dataset=train_set,
        parts=[r.part for r in train_set.refs],
        run=settings.train,
        optim=settings.optim,
        checkpoint=checkpoint,
        settings_fp=weights_fingerprint(
            settings, DETECTOR_CODE, data=training_data_fingerprint(dataset_dir, train_set.refs, prior)
        ),
        extra_state={"kind": "keypoint_detector", "config": dataclasses.asdict(config)},
        max_minutes=max_minutes,
        max_steps_this_run=max_steps_this_run,
        progress=progress,
        desc="keypoint detector",
    )
    if not result.complete or not fabric.is_global_zero:
        return result
    history = read_training_checkpoint(checkpoint)["history"]
    model.eval()
    test_set = A3DDataset(index_samples(dataset_dir, "test", TEST_PARTS), prior=prior)
    metrics = evaluate_detector(
        model, test_set, settings.train.eval_batch_size, settings.train.eval_limit, fabric.device
    )
    metrics["train"] = {
        "steps": result.step,
        "corrupt_samples": result.corrupt,
        "seconds_this_run": round(result.seconds, 1),
        "seconds": round(result.total_seconds, 1),
    }
    write_json(output_dir / "metrics.json", metrics)
    plot_history(
        history, output_dir / "loss_curve.png", "2D keypoint detector", ["heatmap", "state", "skeleton"]
    )
    return result


def load_detector(path: Path, device: torch.device | str = "cpu") -> KeypointDetector:
    """The trained detector of a finished ``train_keypoints`` run, in eval mode."""
    from ajahr_model.networks.keypoints import DetectorConfig
    from ajahr_model.training.loop import TrainingCheckpointError

    state = read_training_checkpoint(path)
    if state.get("kind") != "keypoint_detector" or not state.get("complete"):
        raise TrainingCheckpointError(
            f"{path}: not a finished keypoint-detector checkpoint (fields 'kind', 'complete')"
        )
    # Building the network draws its (then overwritten) initial weights from the global random
    # stream; forked, so that the caller's stream, and with it the initial weights of the model it
    # trains next, do not depend on which detector it loaded.
    with torch.random.fork_rng(devices=[]):
        model = KeypointDetector(DetectorConfig(**state["config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval().requires_grad_(False)
