"""Deterministic split assignment of pose groups, so train/val/test poses never overlap.

Procedural poses are drawn afresh for every sample (their ids are unique), so any split may use
them. Poses from files are grouped by the part of the pose id before its last ``#``: AMASS ids
(``amass/<file>#<frame>``) keep a whole sequence in one split, since neighbouring frames are
near-duplicates; HMR fits are independent images, so their readers give each fit its own group.
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


# Sources whose poses are independent images (one group per pose), not frames of sequences.
INDEPENDENT_POSE_SOURCES: tuple[str, ...] = ("hmr",)


def pose_group(pose_id: str) -> str:
    """The group a pose belongs to: its sequence (the id before the last ``#``), or the pose itself
    for independent sources and ids without ``#``."""
    head, separator, _ = pose_id.rpartition("#")
    if not separator or pose_id.split("/", 1)[0] in INDEPENDENT_POSE_SOURCES:
        return pose_id
    return head


def pose_group_split(pose_id: str, fractions: dict[str, float] = POSE_GROUP_FRACTIONS) -> str:
    """The split that owns the pose group of ``pose_id``."""
    value = stable_unit(pose_group(pose_id))
    edge = 0.0
    for split in SPLITS:
        edge += fractions[split]
        if value < edge:
            return split
    return SPLITS[-1]
