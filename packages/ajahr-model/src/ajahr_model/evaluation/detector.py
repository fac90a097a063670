"""The keypoint detector on the test split: joint-state accuracy and confusion, PCK of visible joints."""

from __future__ import annotations

from typing import Any

import torch

from ajahr_model.data.a3d import A3DDataset
from ajahr_model.evaluation.evaluate import TEST_PARTS, batches, part_indices, to_device
from ajahr_model.networks.keypoints import (
    Detections,
    JointState,
    KeypointDetector,
    detect_batch,
    joint_state_targets,
)


@torch.no_grad()
def evaluate_detector(
    model: KeypointDetector, dataset: A3DDataset, batch_size: int, limit: int | None, device: torch.device
) -> dict[str, Any]:
    """Per test part: state accuracy, the absent/occluded confusion, and PCK@0.05 of visible joints."""
    metrics: dict[str, Any] = {}
    for part in TEST_PARTS:
        confusion = torch.zeros(3, 3, dtype=torch.long)
        hits = total = 0
        for batch in batches(dataset, part_indices(dataset, part, limit), batch_size):
            batch = to_device(batch, device)
            det: Detections = detect_batch(model, batch)
            target = joint_state_targets(batch["keypoint_state"]).cpu()
            confusion += torch.bincount((target * 3 + det.states().cpu()).view(-1), minlength=9).view(3, 3)
            visible = (target == JointState.PRESENT).to(device)
            close = (det.keypoints - batch["keypoints2d"]).norm(dim=-1) < 0.05 * 256
            hits += int((close & visible).sum())
            total += int(visible.sum())
        names = [s.name.lower() for s in JointState]
        metrics[part] = {
            "state_accuracy": float(confusion.diag().sum() / confusion.sum()),
            "state_confusion": {
                t: dict(zip(names, map(int, row), strict=True))
                for t, row in zip(names, confusion, strict=True)
            },
            "absent_recall": float(confusion[2, 2] / confusion[2].sum()) if confusion[2].sum() else None,
            "occluded_called_absent": float(confusion[1, 2] / confusion[1].sum())
            if confusion[1].sum()
            else None,
            "pck_0.05_visible": hits / max(total, 1),
            "samples": int(confusion.sum() // 17),
        }
    return metrics
