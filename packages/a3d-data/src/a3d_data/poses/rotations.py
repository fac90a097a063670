"""Small rotation tools shared by the pose sources: axis rotations, swing-twist, left/right mirroring.

All functions are vectorised over leading dimensions and work in float64; angles are in degrees
unless a name says radians. Rotations act on column vectors (``v' = R @ v``).
"""

from __future__ import annotations

from typing import Final

import numpy as np

from a3d_data.skeleton import NUM_SMPL_JOINTS, SMPL_JOINT_NAMES

# Reflection of the body frame through its sagittal plane (x -> -x): a left limb becomes a right one.
MIRROR: Final[np.ndarray] = np.diag([-1.0, 1.0, 1.0])


def _mirror_permutation() -> tuple[int, ...]:
    index = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}
    swapped = {"L": "R", "R": "L"}
    return tuple(
        index[swapped[name[0]] + name[1:]] if name[:2] in ("L_", "R_") else i
        for i, name in enumerate(SMPL_JOINT_NAMES)
    )


# Joint i of a mirrored pose takes the (reflected) rotation of joint MIRRORED_JOINTS[i].
MIRRORED_JOINTS: Final[tuple[int, ...]] = _mirror_permutation()


def axis_rotation(axis: str, degrees: np.ndarray | float) -> np.ndarray:
    """Rotations (..., 3, 3) by ``degrees`` about the x, y or z axis (right-handed)."""
    radians = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    c, s = np.cos(radians), np.sin(radians)
    one, zero = np.ones_like(c), np.zeros_like(c)
    rows = {
        "x": ((one, zero, zero), (zero, c, -s), (zero, s, c)),
        "y": ((c, zero, s), (zero, one, zero), (-s, zero, c)),
        "z": ((c, -s, zero), (s, c, zero), (zero, zero, one)),
    }[axis]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def rotation_about(axis: np.ndarray, degrees: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) by ``degrees`` (...) about unit ``axis`` (..., 3) (Rodrigues)."""
    axis = np.broadcast_to(np.asarray(axis, dtype=np.float64), np.shape(degrees) + (3,))
    radians = np.deg2rad(np.asarray(degrees, dtype=np.float64))[..., None, None]
    k = _skew(axis)
    return np.eye(3) + np.sin(radians) * k + (1.0 - np.cos(radians)) * (k @ k)


def _skew(v: np.ndarray) -> np.ndarray:
    zero = np.zeros_like(v[..., 0])
    return np.stack(
        [
            np.stack([zero, -v[..., 2], v[..., 1]], axis=-1),
            np.stack([v[..., 2], zero, -v[..., 0]], axis=-1),
            np.stack([-v[..., 1], v[..., 0], zero], axis=-1),
        ],
        axis=-2,
    )


def swing(rest: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The smallest rotations (..., 3, 3) taking unit vectors ``rest`` to unit vectors ``target``.

    Opposite vectors have no unique smallest rotation; they get the half turn about the axis
    perpendicular to ``rest`` that :func:`perpendicular` picks.
    """
    rest = np.broadcast_to(np.asarray(rest, dtype=np.float64), np.shape(target))
    k = np.cross(rest, target)
    c = np.sum(rest * target, axis=-1)[..., None, None]
    opposite = c <= -1.0 + 1e-9
    # R = I + [k]x + [k]x^2 / (1 + cos): exact for unit vectors and free of the axis normalisation
    # that makes the axis-angle form unstable for tiny swings.
    skew = _skew(k)
    rotations = np.eye(3) + skew + (skew @ skew) / np.where(opposite, 1.0, 1.0 + c)
    axis = perpendicular(rest)
    half_turn = 2.0 * axis[..., :, None] * axis[..., None, :] - np.eye(3)
    return np.where(opposite, half_turn, rotations)


def perpendicular(vectors: np.ndarray) -> np.ndarray:
    """Unit vectors (..., 3) perpendicular to unit ``vectors`` (..., 3), a fixed choice for each."""
    vectors = np.asarray(vectors, dtype=np.float64)
    # Crossing with the axis least aligned with the vector keeps the result well away from zero.
    least = np.eye(3)[np.argmin(np.abs(vectors), axis=-1)]
    result = np.cross(vectors, least)
    return result / np.linalg.norm(result, axis=-1, keepdims=True)


def swing_twist(rotmats: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split rotations (..., 3, 3) into where they send the bone and the twist about it.

    Parameters
    ----------
    rotmats : (..., 3, 3) rotations.
    rest : (3,) unit bone direction at rest.

    Returns
    -------
    direction : (..., 3) unit vector ``R @ rest``.
    twist : (...) degrees; ``R = swing(rest, direction) @ rotation_about(rest, twist)``.
    """
    rest = np.asarray(rest, dtype=np.float64)
    direction = rotmats @ rest
    remainder = np.swapaxes(swing(rest, direction), -1, -2) @ rotmats
    # Any vector perpendicular to the bone measures the twist.
    probe = perpendicular(rest)
    turned = remainder @ probe
    twist = np.arctan2(np.cross(probe, turned) @ rest, turned @ probe)
    return direction, np.rad2deg(twist)


def mirror_rotmats(rotmats: np.ndarray) -> np.ndarray:
    """Left/right mirror image of poses (N, 24, 3, 3): swap sides and reflect through x = 0.

    A local rotation R becomes M R M (M = diag(-1, 1, 1)); in Euler angles about x, y, z that is
    (x, -y, -z), so mirror-symmetric joint limits stay satisfied.
    """
    if rotmats.shape[-3:] != (NUM_SMPL_JOINTS, 3, 3):
        raise ValueError(f"rotmats: expected shape (N, 24, 3, 3), got {rotmats.shape}")
    return MIRROR @ rotmats[..., MIRRORED_JOINTS, :, :] @ MIRROR


def orthonormalize(rotmats: np.ndarray) -> np.ndarray:
    """The nearest rotations (..., 3, 3) to near-rotation matrices (SVD projection, det +1)."""
    u, _, vt = np.linalg.svd(rotmats)
    sign = np.sign(np.linalg.det(u @ vt))
    u[..., :, -1] *= sign[..., None]
    return u @ vt
