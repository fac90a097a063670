"""Which vertices an amputation moves, as masks over the mesh."""

from __future__ import annotations

import torch

from a3d_data.skeleton import NUM_SMPL_JOINTS


def removed_skinning_weight(weights: torch.Tensor, zeroed: torch.Tensor) -> torch.Tensor:
    """Share (B, V) of each vertex's skinning weight on removed joints.

    ``weights``: LBS weights (V, 24), rows summing to 1; ``zeroed``: (B, 24) bool. A share of 1
    means the vertex collapses onto the amputation joint; 0 means it does not move; in between
    it is pulled part of the way (the stump's skin).
    """
    if weights.ndim != 2 or weights.shape[1] != NUM_SMPL_JOINTS:
        raise ValueError(f"weights: expected shape (V, {NUM_SMPL_JOINTS}), got {tuple(weights.shape)}")
    if zeroed.ndim != 2 or zeroed.shape[1] != NUM_SMPL_JOINTS:
        raise ValueError(f"zeroed joints: expected shape (B, {NUM_SMPL_JOINTS}), got {tuple(zeroed.shape)}")
    return zeroed.to(weights.dtype) @ weights.T


def collapsed_vertex_mask(
    weights: torch.Tensor, zeroed: torch.Tensor, tolerance: float = 1e-5
) -> torch.Tensor:
    """Vertices (B, V) bool skinned only to removed joints: they collapse onto the amputation joint."""
    return removed_skinning_weight(weights, zeroed) >= 1.0 - tolerance


def affected_vertex_mask(
    weights: torch.Tensor, zeroed: torch.Tensor, tolerance: float = 1e-5
) -> torch.Tensor:
    """Vertices (B, V) bool with any skinning weight on removed joints: every vertex that moves."""
    return removed_skinning_weight(weights, zeroed) > tolerance
