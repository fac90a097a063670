"""Deterministic split assignment of pose groups, so train/val/test poses never overlap.

Procedural poses are drawn afresh for every sample (their ids are unique), so any split may use
them. Poses from files are grouped by file (the part of the pose id before ``#``): a whole
sequence goes to one split, since neighbouring frames are near-duplicates.
"""

from __future__ import annotations

import hashlib

from a3d_data.synthesis.schema import SPLITS

# Shares of pose groups per split for file sources.
POSE_GROUP_FRACTIONS: dict[str, float] = {"train": 0.8, "val": 0.1, "test": 0.1}


def stable_unit(text: str) -> float:
    """A number in [0, 1) fixed by ``text`` (sha256), the same on every machine and run."""
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pose_group_split(pose_id: str, fractions: dict[str, float] = POSE_GROUP_FRACTIONS) -> str:
    """The split that owns the pose group of ``pose_id``."""
    value = stable_unit(pose_id.split("#", 1)[0])
    edge = 0.0
    for split in SPLITS:
        edge += fractions[split]
        if value < edge:
            return split
    return SPLITS[-1]
