"""Amputation of a posed body: zero the rotation matrices of the removed joints (brief §2).

A zero rotation matrix makes every joint below it inherit a zero world rotation, so linear blend
skinning sends every vertex skinned only to removed joints onto the amputation joint. The mesh
keeps its topology; the limb collapses to a point.
"""

from __future__ import annotations

import torch

from a3d_data.amputation.labels import zeroed_joint_mask
from a3d_data.skeleton import NUM_SMPL_JOINTS


def check_rotmats(rotmats: torch.Tensor, name: str = "rotmats") -> None:
    """Raise ValueError unless ``rotmats`` is a finite (B, 24, 3, 3) tensor."""
    if rotmats.ndim != 4 or rotmats.shape[1:] != (NUM_SMPL_JOINTS, 3, 3):
        raise ValueError(f"{name}: expected shape (B, {NUM_SMPL_JOINTS}, 3, 3), got {tuple(rotmats.shape)}")
    if not torch.isfinite(rotmats).all():
        raise ValueError(f"{name}: contains NaN or infinite values")


def amputate_rotmats(rotmats: torch.Tensor, zeroed: torch.Tensor) -> torch.Tensor:
    """Rotations (B, 24, 3, 3) with the joints in ``zeroed`` (B, 24) bool set to zero matrices.

    Differentiable in the kept rotations; the input is not modified.
    """
    check_rotmats(rotmats)
    if zeroed.shape != rotmats.shape[:2]:
        raise ValueError(
            f"zeroed joints: expected shape {tuple(rotmats.shape[:2])}, got {tuple(zeroed.shape)}"
        )
    keep = (~zeroed.bool()).to(rotmats.dtype)
    return rotmats * keep[:, :, None, None]


def amputate(rotmats: torch.Tensor, head_labels: torch.Tensor) -> torch.Tensor:
    """Amputate rotations (B, 24, 3, 3) by per-head labels (B, 4); see :func:`amputate_rotmats`."""
    return amputate_rotmats(rotmats, zeroed_joint_mask(head_labels).to(rotmats.device))
