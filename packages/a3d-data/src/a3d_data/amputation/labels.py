"""Amputation labels: AJAHR class indices <-> BPAC-Net's per-head labels <-> zeroed joints.

Per-head labels (B, 4) are the canonical batched form: one level (or NONE) for each limb, so they
also describe bodies with several amputated limbs. A3D itself has one amputated limb per body.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import torch

from a3d_data.amputation.table import (
    AMPUTATION_CLASSES,
    NON_AMPUTEE,
    NUM_CLASSES,
    NUM_HEAD_CLASSES,
    NUM_HEADS,
    Level,
    Limb,
    UnknownAmputationError,
    amputation_class,
    class_for,
)
from a3d_data.skeleton import COCO_TO_SMPL_JOINT, NUM_SMPL_JOINTS

# Returned by class_index_from_head_labels for a body with more than one amputated limb.
MULTI_LIMB = -1


def head_labels(classes: int | Iterable[int]) -> tuple[int, ...]:
    """Per-head labels (4,) of one body amputated at ``classes`` (one index or several).

    ``NON_AMPUTEE`` adds nothing; two levels on one limb are rejected.
    """
    indices = [classes] if isinstance(classes, int) else list(classes)
    labels = [int(Level.NONE)] * NUM_HEADS
    for index in indices:
        row = amputation_class(index)
        if row.limb is None:
            continue
        if labels[row.limb] != Level.NONE:
            raise UnknownAmputationError(
                f"amputation classes {sorted(indices)} put two levels on the {row.limb.name.lower()}"
            )
        labels[row.limb] = int(row.level)
    return tuple(labels)


def classes_from_head_labels(labels: Iterable[int]) -> tuple[int, ...]:
    """The AJAHR indices (sorted) of one body's per-head labels; ``(12,)`` when none is amputated."""
    labels = [int(x) for x in labels]
    _check_head_label_values(torch.tensor([labels]))
    found = tuple(
        sorted(class_for(Limb(h), Level(level)) for h, level in enumerate(labels) if level != Level.NONE)
    )
    return found or (NON_AMPUTEE,)


def _check_head_label_values(labels: torch.Tensor) -> None:
    if labels.ndim != 2 or labels.shape[1] != NUM_HEADS:
        raise ValueError(f"head labels: expected shape (B, {NUM_HEADS}), got {tuple(labels.shape)}")
    if labels.numel() and (labels.min() < 0 or labels.max() >= NUM_HEAD_CLASSES):
        raise ValueError(
            f"head labels: values must be in [0, {NUM_HEAD_CLASSES - 1}] "
            f"(levels 0-2, {int(Level.NONE)} none), got {labels.min().item()}..{labels.max().item()}"
        )


@functools.cache
def _class_to_head_table() -> torch.Tensor:
    return torch.tensor([head_labels(i) for i in range(NUM_CLASSES)], dtype=torch.long)


def head_labels_from_classes(class_index: torch.Tensor) -> torch.Tensor:
    """Per-head labels (B, 4) long from one AJAHR index per body (B,)."""
    if class_index.ndim != 1:
        raise ValueError(f"class index: expected shape (B,), got {tuple(class_index.shape)}")
    if class_index.numel() and (class_index.min() < 0 or class_index.max() >= NUM_CLASSES):
        raise UnknownAmputationError(
            f"class index: values must be in [0, {NUM_CLASSES - 1}], "
            f"got {class_index.min().item()}..{class_index.max().item()}"
        )
    return _class_to_head_table().to(class_index.device)[class_index.long()]


def class_index_from_head_labels(labels: torch.Tensor) -> torch.Tensor:
    """One AJAHR index per body (B,) from per-head labels (B, 4).

    NON_AMPUTEE when every head says none; MULTI_LIMB (-1) when several limbs are amputated.
    """
    _check_head_label_values(labels)
    labels = labels.long()
    amputated = labels != Level.NONE
    limb = torch.arange(NUM_HEADS, device=labels.device).expand_as(labels)
    per_head_class = torch.where(amputated, 3 * limb + labels, torch.zeros_like(labels))
    single = per_head_class.sum(1)
    count = amputated.sum(1)
    return torch.where(count == 0, NON_AMPUTEE, torch.where(count == 1, single, MULTI_LIMB))


@functools.cache
def _zeroed_joint_table() -> torch.Tensor:
    """(heads, head classes, 24) bool: which joints each level of each limb removes."""
    table = torch.zeros(NUM_HEADS, NUM_HEAD_CLASSES, NUM_SMPL_JOINTS, dtype=torch.bool)
    for row in AMPUTATION_CLASSES:
        if row.limb is not None:
            table[row.limb, row.level, list(row.zeroed_joints)] = True
    return table


def zeroed_joint_mask(labels: torch.Tensor) -> torch.Tensor:
    """SMPL joints (B, 24) bool whose rotations are zeroed for per-head labels (B, 4).

    These are also the absent SMPL joints of each body.
    """
    _check_head_label_values(labels)
    table = _zeroed_joint_table().to(labels.device)
    heads = torch.arange(NUM_HEADS, device=labels.device)
    return table[heads, labels.long()].any(dim=1)


def absent_coco_keypoints(zeroed: torch.Tensor) -> torch.Tensor:
    """COCO-17 keypoints (B, 17) bool absent because the SMPL joint carrying them is zeroed."""
    if zeroed.ndim != 2 or zeroed.shape[1] != NUM_SMPL_JOINTS:
        raise ValueError(f"zeroed joints: expected shape (B, {NUM_SMPL_JOINTS}), got {tuple(zeroed.shape)}")
    return zeroed[:, list(COCO_TO_SMPL_JOINT)]
