"""What every pose source produces, and the interface they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class PoseBatch:
    """A batch of SMPL poses in the body's own frame (y up, facing +z; no camera yet).

    Attributes
    ----------
    rotmats : (N, 24, 3, 3) float32 local joint rotations, root first. The root rotation is the
        body's orientation in the world (y up); the synthesis adds the camera's view on top.
    betas : (N, 10) float32 shape coefficients, or None when the source has no shapes (the
        synthesis then samples them).
    pose_ids : (N,) str, a stable identity of each pose ("procedural/walking/000123",
        "amass/<file>#<frame>"), used to keep train/val/test poses disjoint.
    activities : (N,) str, the activity family ("walking", ...) or the source name for files.
    """

    rotmats: np.ndarray
    betas: np.ndarray | None
    pose_ids: np.ndarray
    activities: np.ndarray

    def __len__(self) -> int:
        return int(self.rotmats.shape[0])


class PoseSource(Protocol):
    """Anything that yields SMPL poses: the procedural sampler or SMPL-parameter files."""

    name: str

    def sample(self, count: int, rng: np.random.Generator) -> PoseBatch:
        """``count`` poses drawn with ``rng`` (deterministic for a given generator state)."""
        ...
