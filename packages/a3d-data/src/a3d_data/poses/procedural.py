"""The procedural pose sampler: plausible human poses from activity families, no data needed.

Each pose is drawn in four steps: a family by its weight; the family's joint angles with their
random variation (:mod:`a3d_data.poses.families`), jittered and clipped to the anatomical limits
(:mod:`a3d_data.poses.limits`); a left/right mirror image with probability 1/2; and the body's
orientation in a y-up world: the family's (upright, or horizontal when lying), tilted by up to
``tilt_degrees`` about a random horizontal axis, turned by a yaw drawn uniformly from
``yaw_degrees``.
"""

from __future__ import annotations

import logging
from typing import Final

import numpy as np

from a3d_data.poses.base import PoseBatch
from a3d_data.poses.families import FAMILIES, FAMILY_NAMES, PoseDraft
from a3d_data.poses.params import PoseParams
from a3d_data.poses.rotations import axis_rotation, mirror_rotmats, rotation_about
from a3d_data.skeleton import NUM_SMPL_JOINTS

log = logging.getLogger(__name__)

MIRROR_PROBABILITY: Final[float] = 0.5
_ID_BITS: Final[int] = 63  # pose ids: 63 random bits; a repeat in a million poses has odds ~1e-7


class ProceduralPoseSource:
    """Poses from the activity families of :mod:`a3d_data.poses.families`.

    Parameters
    ----------
    params : the family weights, yaw range, tilt and jitter; other fields are ignored.
    """

    name = "procedural"

    def __init__(self, params: PoseParams | None = None):
        self.params = params if params is not None else PoseParams()
        weights = np.array([self.params.family_weights.get(name, 0.0) for name in FAMILY_NAMES])
        self.probabilities = weights / weights.sum()

    @property
    def families(self) -> tuple[str, ...]:
        """The families this source draws from (positive weight), in drawing order."""
        return tuple(name for name, p in zip(FAMILY_NAMES, self.probabilities, strict=True) if p > 0)

    def sample(self, count: int, rng: np.random.Generator) -> PoseBatch:
        """``count`` poses, families drawn by weight; deterministic for a given generator state.

        Returns a :class:`PoseBatch` with rotmats (count, 24, 3, 3) float32, no betas, pose ids
        ``procedural/<family>/<16 hex digits>`` and the family names as activities.
        """
        if count < 0:
            raise ValueError(f"count must be non-negative, got {count}")
        chosen = rng.choice(len(FAMILY_NAMES), size=count, p=self.probabilities)
        rotmats = np.empty((count, NUM_SMPL_JOINTS, 3, 3))
        # Families are drawn in a fixed order so the stream of random numbers is reproducible.
        for index, name in enumerate(FAMILY_NAMES):
            rows = np.flatnonzero(chosen == index)
            if rows.size:
                rotmats[rows] = self._family_rotmats(name, rows.size, rng)
        return self._finish(rotmats, np.array(FAMILY_NAMES, dtype=object)[chosen], rng)

    def sample_family(self, family: str, count: int, rng: np.random.Generator) -> PoseBatch:
        """``count`` poses of one family (any known family, whatever its weight)."""
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; known: {list(FAMILY_NAMES)}")
        rotmats = self._family_rotmats(family, count, rng)
        return self._finish(rotmats, np.full(count, family, dtype=object), rng)

    def _family_rotmats(self, family: str, count: int, rng: np.random.Generator) -> np.ndarray:
        draft = PoseDraft(count, rng)
        FAMILIES[family](draft)
        return draft.build(self.params.jitter_degrees)

    def _finish(self, rotmats: np.ndarray, families: np.ndarray, rng: np.random.Generator) -> PoseBatch:
        count = len(rotmats)
        mirrored = rng.random(count) < MIRROR_PROBABILITY
        rotmats[mirrored] = mirror_rotmats(rotmats[mirrored])
        yaw = rng.uniform(*self.params.yaw_degrees, size=count)
        # Tilts uniform over the disc of radius tilt_degrees: small tilts are the common ones.
        tilt = self.params.tilt_degrees * np.sqrt(rng.random(count))
        heading = rng.uniform(0.0, 2.0 * np.pi, count)
        tilt_axis = np.stack([np.cos(heading), np.zeros(count), np.sin(heading)], axis=1)
        rotmats[:, 0] = axis_rotation("y", yaw) @ rotation_about(tilt_axis, tilt) @ rotmats[:, 0]
        ids = rng.integers(0, 2**_ID_BITS, size=count, dtype=np.int64)
        pose_ids = np.array(
            [f"procedural/{family}/{value:016x}" for family, value in zip(families, ids, strict=True)],
            dtype=object,
        )
        return PoseBatch(
            rotmats=rotmats.astype(np.float32),
            betas=None,
            pose_ids=pose_ids.astype(str),
            activities=families.astype(str),
        )
