"""The AJAHR amputation index as data (brief §2).

Twelve classes, four limbs at three levels, and class 12 for a body without amputation. Each class
names the SMPL joint at which the limb is removed; the zeroed joints are that joint and all its
descendants in the kinematic tree, which reproduces the paper's table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from a3d_data.skeleton import SMPL_JOINT_NAMES, descendants


class Limb(IntEnum):
    """BPAC-Net's four heads, in the paper's order."""

    RIGHT_ARM = 0
    LEFT_ARM = 1
    LEFT_LEG = 2
    RIGHT_LEG = 3


class Level(IntEnum):
    """Head classes: the amputation level on a limb, or NONE."""

    DISTAL = 0  # hand (wrist level) or foot (ankle level)
    MIDDLE = 1  # elbow or knee
    PROXIMAL = 2  # shoulder (whole arm) or hip (whole leg)
    NONE = 3


NUM_HEADS: Final[int] = len(Limb)
NUM_HEAD_CLASSES: Final[int] = len(Level)


@dataclass(frozen=True)
class AmputationClass:
    """One row of the AJAHR index."""

    index: int
    name: str
    limb: Limb | None
    level: Level
    amputation_joint: int | None  # the SMPL joint the limb collapses onto; None for class 12

    @property
    def zeroed_joints(self) -> tuple[int, ...]:
        """SMPL joints whose rotation matrices become zero (empty for the non-amputee class)."""
        return () if self.amputation_joint is None else descendants(self.amputation_joint)

    @property
    def amputation_joint_name(self) -> str | None:
        return None if self.amputation_joint is None else SMPL_JOINT_NAMES[self.amputation_joint]


def _row(index: int, name: str, limb: Limb, level: Level, joint: str) -> AmputationClass:
    return AmputationClass(index, name, limb, level, SMPL_JOINT_NAMES.index(joint))


AMPUTATION_CLASSES: Final[tuple[AmputationClass, ...]] = (
    _row(0, "right hand", Limb.RIGHT_ARM, Level.DISTAL, "R_wrist"),
    _row(1, "right elbow", Limb.RIGHT_ARM, Level.MIDDLE, "R_elbow"),
    _row(2, "right shoulder", Limb.RIGHT_ARM, Level.PROXIMAL, "R_shoulder"),
    _row(3, "left hand", Limb.LEFT_ARM, Level.DISTAL, "L_wrist"),
    _row(4, "left elbow", Limb.LEFT_ARM, Level.MIDDLE, "L_elbow"),
    _row(5, "left shoulder", Limb.LEFT_ARM, Level.PROXIMAL, "L_shoulder"),
    _row(6, "left foot", Limb.LEFT_LEG, Level.DISTAL, "L_ankle"),
    _row(7, "left knee", Limb.LEFT_LEG, Level.MIDDLE, "L_knee"),
    _row(8, "left hip", Limb.LEFT_LEG, Level.PROXIMAL, "L_hip"),
    _row(9, "right foot", Limb.RIGHT_LEG, Level.DISTAL, "R_ankle"),
    _row(10, "right knee", Limb.RIGHT_LEG, Level.MIDDLE, "R_knee"),
    _row(11, "right hip", Limb.RIGHT_LEG, Level.PROXIMAL, "R_hip"),
    AmputationClass(12, "non-amputee", None, Level.NONE, None),
)
NON_AMPUTEE: Final[int] = 12
NUM_CLASSES: Final[int] = len(AMPUTATION_CLASSES)


class UnknownAmputationError(ValueError):
    """An amputation index outside the AJAHR table, or an impossible combination."""


def amputation_class(index: int) -> AmputationClass:
    """The row of the AJAHR index for ``index`` in [0, 12]."""
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < NUM_CLASSES:
        raise UnknownAmputationError(
            f"unknown AJAHR amputation index {index!r}: expected an integer in [0, {NUM_CLASSES - 1}] "
            f"(0-11 amputations, {NON_AMPUTEE} non-amputee)"
        )
    return AMPUTATION_CLASSES[index]


def class_for(limb: Limb, level: Level) -> int:
    """The AJAHR index of ``level`` on ``limb`` (NON_AMPUTEE for Level.NONE)."""
    if level == Level.NONE:
        return NON_AMPUTEE
    return 3 * int(limb) + int(level)
