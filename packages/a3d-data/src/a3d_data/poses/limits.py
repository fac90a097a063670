"""Anatomical joint limits of the procedural poses, in SMPL's local joint frames.

SMPL's local frames are the body frame at rest (y up, facing +z, the person's left at +x), so a
joint's rotation is read in those axes: knees flex about +x, the left elbow about -y, the left
shoulder lowers the arm from the T-pose about -z. Two kinds of limit:

- :class:`EulerLimit`: a range per intrinsic Euler angle, for hinge-like and small-range joints.
  Each order puts the joint's main motion first or last and a small range in the middle, so the
  angles read back from a matrix are unique (no gimbal lock inside the limits).
- :class:`ConeLimit`: the shoulders, whose reach (down, forward, up, a little behind) is wider than
  a hemisphere and has no gimbal-free Euler order: the bone direction must lie in a cone and the
  twist about the bone in a range.

Limits are written for the left side and the body midline; the right side is their mirror image,
so mirroring a pose (:func:`a3d_data.poses.rotations.mirror_rotmats`) keeps it within limits.
The root (pelvis) is the body's orientation in the world and has no limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy.spatial.transform import Rotation

from a3d_data.poses.rotations import MIRROR, perpendicular, rotation_about, swing, swing_twist
from a3d_data.skeleton import NUM_SMPL_JOINTS, SMPL_JOINT_NAMES

_AXES: Final[str] = "XYZ"


@dataclass(frozen=True)
class EulerLimit:
    """Ranges (degrees) of the intrinsic Euler angles about x, y and z, composed in ``order``.

    ``order="XZY"`` means ``R = R_x(x) @ R_z(z) @ R_y(y)``.
    """

    order: str
    x: tuple[float, float]
    y: tuple[float, float]
    z: tuple[float, float]

    def __post_init__(self) -> None:
        if sorted(self.order) != list(_AXES):
            raise ValueError(f"order must be a permutation of XYZ, got {self.order!r}")
        for axis in "xyz":
            low, high = getattr(self, axis)
            if not -180.0 <= low <= high <= 180.0:
                raise ValueError(f"{axis} range must satisfy -180 <= low <= high <= 180, got {(low, high)}")
        middle = getattr(self, self.order[1].lower())
        # Tait-Bryan angles are unique only while the middle one stays off +-90 degrees.
        if max(abs(middle[0]), abs(middle[1])) >= 80.0:
            raise ValueError(f"the middle angle ({self.order[1]}) must stay within +-80 degrees")

    @property
    def low(self) -> np.ndarray:
        """(3,) lower bounds in x, y, z order, degrees."""
        return np.array([self.x[0], self.y[0], self.z[0]])

    @property
    def high(self) -> np.ndarray:
        """(3,) upper bounds in x, y, z order, degrees."""
        return np.array([self.x[1], self.y[1], self.z[1]])

    def _in_order(self) -> list[int]:
        return [_AXES.index(axis) for axis in self.order]

    def clip(self, angles: np.ndarray) -> np.ndarray:
        """Angles (..., 3) about x, y, z (degrees) clipped into the ranges."""
        return np.clip(angles, self.low, self.high)

    def compose(self, angles: np.ndarray) -> np.ndarray:
        """Rotations (N, 3, 3) from angles (N, 3) about x, y, z in degrees (not clipped)."""
        ordered = np.asarray(angles, dtype=np.float64)[:, self._in_order()]
        return Rotation.from_euler(self.order, ordered, degrees=True).as_matrix()

    def angles(self, rotmats: np.ndarray) -> np.ndarray:
        """Angles (N, 3) about x, y, z (degrees) of rotations (N, 3, 3), in this limit's order."""
        ordered = Rotation.from_matrix(np.asarray(rotmats, dtype=np.float64)).as_euler(
            self.order, degrees=True
        )
        angles = np.empty_like(ordered)
        angles[:, self._in_order()] = ordered
        return angles

    def excess(self, rotmats: np.ndarray) -> np.ndarray:
        """Degrees (N,) by which rotations (N, 3, 3) leave the ranges; 0 inside."""
        angles = self.angles(rotmats)
        over = np.maximum(self.low - angles, angles - self.high)
        return np.maximum(over.max(axis=1), 0.0)

    def mirrored(self) -> EulerLimit:
        """The limit of the mirror-image joint: M R(x, y, z) M = R(x, -y, -z), M = diag(-1, 1, 1)."""
        return EulerLimit(self.order, self.x, (-self.y[1], -self.y[0]), (-self.z[1], -self.z[0]))


@dataclass(frozen=True)
class ConeLimit:
    """A ball joint: the bone's direction within ``half_angle`` degrees of ``center``, and the twist
    about the bone (degrees, about ``rest``, measured after the shortest swing) in ``twist``.

    ``rest`` is the bone's direction at rest (unit), ``center`` the cone's axis (unit).
    """

    rest: tuple[float, float, float]
    center: tuple[float, float, float]
    half_angle: float
    twist: tuple[float, float]

    def __post_init__(self) -> None:
        for name in ("rest", "center"):
            if not np.isclose(np.linalg.norm(getattr(self, name)), 1.0):
                raise ValueError(f"{name} must be a unit vector")
        reach = self.half_angle + np.rad2deg(np.arccos(np.clip(np.dot(self.rest, self.center), -1, 1)))
        # The swing from the rest direction is undefined at 180 degrees.
        if not (self.half_angle > 0.0 and reach < 175.0):
            raise ValueError("the cone must reach less than 175 degrees from the rest direction")
        if not -180.0 <= self.twist[0] <= self.twist[1] <= 180.0:
            raise ValueError(f"twist range must satisfy -180 <= low <= high <= 180, got {self.twist}")

    def compose(self, direction: np.ndarray, twist: np.ndarray) -> np.ndarray:
        """Rotations (N, 3, 3) sending the bone to unit ``direction`` (N, 3), twisted by ``twist``
        (N,) degrees (not clipped)."""
        rest = np.asarray(self.rest)
        return swing(rest, direction) @ rotation_about(rest, twist)

    def clip(self, rotmats: np.ndarray) -> np.ndarray:
        """Rotations (N, 3, 3) moved into the limit: the direction onto the cone's rim along the
        great circle through the centre, the twist clipped to its range."""
        direction, twist = swing_twist(rotmats, np.asarray(self.rest))
        center = np.asarray(self.center)
        cosine = np.clip(direction @ center, -1.0, 1.0)
        outside = np.rad2deg(np.arccos(cosine)) > self.half_angle
        sideways = direction - cosine[:, None] * center
        norm = np.linalg.norm(sideways, axis=1, keepdims=True)
        # A direction exactly opposite the centre has no great circle of its own; any will do.
        sideways = np.where(norm > 1e-9, sideways / np.maximum(norm, 1e-12), perpendicular(center))
        rim = np.cos(np.deg2rad(self.half_angle)) * center + np.sin(np.deg2rad(self.half_angle)) * sideways
        direction = np.where(outside[:, None], rim, direction)
        return self.compose(direction, np.clip(twist, *self.twist))

    def excess(self, rotmats: np.ndarray) -> np.ndarray:
        """Degrees (N,) by which rotations (N, 3, 3) leave the cone or the twist range; 0 inside."""
        direction, twist = swing_twist(rotmats, np.asarray(self.rest))
        angle = np.rad2deg(np.arccos(np.clip(direction @ np.asarray(self.center), -1.0, 1.0)))
        over = np.stack([angle - self.half_angle, self.twist[0] - twist, twist - self.twist[1]], axis=1).max(
            axis=1
        )
        return np.maximum(over, 0.0)

    def mirrored(self) -> ConeLimit:
        """The limit of the mirror-image joint: directions reflected, twists reversed."""
        rest = tuple(float(v) for v in MIRROR @ np.asarray(self.rest))
        center = tuple(float(v) for v in MIRROR @ np.asarray(self.center))
        return ConeLimit(rest, center, self.half_angle, (-self.twist[1], -self.twist[0]))


JointLimit = EulerLimit | ConeLimit

# Midline joints: symmetric in y (twist) and z (side bend) so that they are their own mirror image.
# x is flexion: positive bends the spine and the head forward.
_MIDLINE: Final[dict[str, EulerLimit]] = {
    "spine1": EulerLimit("XZY", x=(-20.0, 40.0), y=(-20.0, 20.0), z=(-20.0, 20.0)),
    "spine2": EulerLimit("XZY", x=(-20.0, 30.0), y=(-20.0, 20.0), z=(-15.0, 15.0)),
    "spine3": EulerLimit("XZY", x=(-15.0, 25.0), y=(-20.0, 20.0), z=(-15.0, 15.0)),
    "neck": EulerLimit("XZY", x=(-35.0, 45.0), y=(-40.0, 40.0), z=(-25.0, 25.0)),
    "head": EulerLimit("XZY", x=(-35.0, 40.0), y=(-45.0, 45.0), z=(-25.0, 25.0)),
}

_SHOULDER_FORWARD = np.deg2rad(40.0)  # the cone's axis: lateral, turned 40 degrees to the front

# Left side. Signs in SMPL's frame (the right side mirrors them):
# hip      x < 0 flexes the thigh forward, z > 0 abducts, y > 0 turns it out (external rotation);
# knee     x > 0 flexes (the shank goes back); ankle x > 0 points the toes down; foot x < 0 lifts the toes;
# collar   z > 0 raises the shoulder, y < 0 brings it forward;
# shoulder the arm's direction: down at the side is about 90 degrees from the rest (+x);
# elbow    y < 0 flexes (the forearm comes forward at rest); wrist z < 0 flexes the hand to the palm.
_LEFT: Final[dict[str, JointLimit]] = {
    "L_hip": EulerLimit("XZY", x=(-135.0, 30.0), y=(-40.0, 60.0), z=(-30.0, 60.0)),
    "L_knee": EulerLimit("XZY", x=(0.0, 150.0), y=(-15.0, 15.0), z=(-5.0, 5.0)),
    "L_ankle": EulerLimit("XZY", x=(-45.0, 55.0), y=(-20.0, 20.0), z=(-25.0, 25.0)),
    "L_foot": EulerLimit("XZY", x=(-50.0, 25.0), y=(-5.0, 5.0), z=(-5.0, 5.0)),
    "L_collar": EulerLimit("XZY", x=(-15.0, 15.0), y=(-25.0, 15.0), z=(-20.0, 30.0)),
    "L_shoulder": ConeLimit(
        rest=(1.0, 0.0, 0.0),
        center=(float(np.cos(_SHOULDER_FORWARD)), 0.0, float(np.sin(_SHOULDER_FORWARD))),
        half_angle=110.0,
        twist=(-100.0, 100.0),
    ),
    "L_elbow": EulerLimit("YZX", x=(-60.0, 60.0), y=(-150.0, 5.0), z=(-10.0, 10.0)),
    "L_wrist": EulerLimit("ZYX", x=(-45.0, 45.0), y=(-30.0, 30.0), z=(-75.0, 70.0)),
    "L_hand": EulerLimit("XYZ", x=(-20.0, 20.0), y=(-20.0, 20.0), z=(-20.0, 20.0)),
}


def _all_limits() -> tuple[JointLimit | None, ...]:
    by_name: dict[str, JointLimit] = {**_MIDLINE, **_LEFT}
    for name, limit in _LEFT.items():
        by_name["R_" + name[2:]] = limit.mirrored()
    return tuple(by_name.get(name) for name in SMPL_JOINT_NAMES)


# JOINT_LIMITS[j]: the limit of SMPL joint j; None for the root (pelvis).
JOINT_LIMITS: Final[tuple[JointLimit | None, ...]] = _all_limits()


def limit_excess(rotmats: np.ndarray) -> np.ndarray:
    """Degrees (N, 24) by which each joint of poses (N, 24, 3, 3) leaves its limit; 0 inside.

    The root has no limit (column 0 is always 0).
    """
    rotmats = np.asarray(rotmats, dtype=np.float64)
    if rotmats.ndim != 4 or rotmats.shape[1:] != (NUM_SMPL_JOINTS, 3, 3):
        raise ValueError(f"rotmats: expected shape (N, 24, 3, 3), got {rotmats.shape}")
    excess = np.zeros(rotmats.shape[:2])
    for joint, limit in enumerate(JOINT_LIMITS):
        if limit is not None:
            excess[:, joint] = limit.excess(rotmats[:, joint])
    return excess
