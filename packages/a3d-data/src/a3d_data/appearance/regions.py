"""Where garments can go: per-vertex body parts and surface coordinates from the rest pose.

Everything here is computed once per body model from its skinning weights, joint regressor and
rest template, so it works for the bundled model and for a licensed SMPL alike (both are in SMPL's
T-pose, y up, facing +z). Garments are painted per vertex, so they follow the body through any
pose, shape or amputation.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Final

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

if TYPE_CHECKING:
    from a3d_data.body_model import BodyModel


class Part(IntEnum):
    """The body part a vertex belongs to (largest summed skinning weight)."""

    TORSO = 0
    HEAD = 1  # head and neck
    LEFT_ARM = 2
    RIGHT_ARM = 3
    LEFT_LEG = 4
    RIGHT_LEG = 5


# SMPL joints whose skinning weights make up each part. A joint's weight moves the segment
# below it, so the knee's weight is the shin and the wrist's is the hand.
PART_JOINTS: Final[dict[Part, tuple[int, ...]]] = {
    Part.TORSO: (0, 3, 6, 9, 13, 14),
    Part.HEAD: (12, 15),
    Part.LEFT_ARM: (16, 18, 20, 22),
    Part.RIGHT_ARM: (17, 19, 21, 23),
    Part.LEFT_LEG: (1, 4, 7, 10),
    Part.RIGHT_LEG: (2, 5, 8, 11),
}
HAND_JOINTS: Final[tuple[int, ...]] = (20, 21, 22, 23)
FOOT_JOINTS: Final[tuple[int, ...]] = (7, 8, 10, 11)
# (root, end) joints of each limb's axis: shoulder to wrist, hip to ankle.
LIMB_AXES: Final[dict[Part, tuple[int, int]]] = {
    Part.LEFT_ARM: (16, 20),
    Part.RIGHT_ARM: (17, 21),
    Part.LEFT_LEG: (1, 7),
    Part.RIGHT_LEG: (2, 8),
}
PELVIS, NECK, HEAD = 0, 12, 15


@dataclass(frozen=True)
class BodyRegions:
    """Per-vertex facts of one body model's rest pose (V = number of vertices).

    part : (V,) int8 :class:`Part`.
    limb_fraction : (V,) float32 position along the limb axis, 0 at the shoulder or hip joint,
        1 at the wrist or ankle joint (beyond 1: hand, foot); 0 off the limbs.
    torso_fraction : (V,) float32 height between the pelvis (0) and neck (1) joints.
    head_height : (V,) float32 height above the head joint over the head's height above it
        (1 at the crown).
    head_depth : (V,) float32 forward offset from the head joint over the head's half depth
        (+1 near the face, -1 at the back of the head).
    hand, foot : (V,) bool, most skinning weight on the wrist/hand or ankle/foot joints.
    eye, mouth : (V,) bool, separate small mesh pieces in the head (eyeballs above the head
        joint, teeth and tongue below); all False for a single-piece mesh such as SMPL.
    iris : (V,) bool, the forward-facing cap of each eyeball (a subset of ``eye``).
    surface_uv : (V, 2) float32 metres: around (arc length about the part's axis, seam at the
        back) and along (distance along the axis) - the coordinates fabric patterns use.
    spacing : (V,) float32 mean length of the vertex's edges, metres: the finest detail a
        per-vertex colour can show there (about 2 cm on the bundled model's torso).
    rest : (V, 3) float32 rest-pose positions, metres.
    """

    part: np.ndarray
    limb_fraction: np.ndarray
    torso_fraction: np.ndarray
    head_height: np.ndarray
    head_depth: np.ndarray
    hand: np.ndarray
    foot: np.ndarray
    eye: np.ndarray
    iris: np.ndarray
    mouth: np.ndarray
    surface_uv: np.ndarray
    spacing: np.ndarray
    rest: np.ndarray

    @property
    def num_vertices(self) -> int:
        return int(self.part.shape[0])


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def body_regions(model: BodyModel) -> BodyRegions:
    """The :class:`BodyRegions` of ``model``, computed on first use and cached per model."""
    cached = _CACHE.get(model)
    if cached is None:
        cached = compute_body_regions(
            model.v_template.detach().cpu().numpy(),
            model.lbs_weights.detach().cpu().numpy(),
            (model.J_regressor @ model.v_template).detach().cpu().numpy(),
            np.asarray(model.faces, dtype=np.int64),
        )
        _CACHE[model] = cached
    return cached


def _axis_frame(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to ``axis``: 'front' (closest to +z) and 'side'."""
    front = np.array([0.0, 0.0, 1.0]) - axis * axis[2]
    front /= np.linalg.norm(front)
    return front, np.cross(axis, front)


def _cylinder_coordinates(points: np.ndarray, origin: np.ndarray, end: np.ndarray) -> np.ndarray:
    """(N, 2) metres: arc length around the origin->end axis and distance along it."""
    axis = (end - origin) / np.linalg.norm(end - origin)
    front, side = _axis_frame(axis)
    offset = points - origin
    along = offset @ axis
    radial = offset - along[:, None] * axis
    # One mean radius per part turns angles into arc lengths, so a pattern period in metres
    # looks the same on a thin arm and a wide torso; the arctan2 seam falls at the back.
    radius = np.linalg.norm(radial, axis=1).mean() if len(points) else 1.0
    angle = np.arctan2(radial @ side, radial @ front)
    return np.stack([angle * radius, along], axis=1)


def _vertex_spacing(rest: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V,) mean length of the edges at each vertex (each edge counted once per incident face)."""
    ends = np.roll(faces, 1, axis=1)
    lengths = np.linalg.norm(rest[faces] - rest[ends], axis=2).ravel()
    total = np.bincount(faces.ravel(), lengths, minlength=len(rest))
    total += np.bincount(ends.ravel(), lengths, minlength=len(rest))
    count = np.bincount(faces.ravel(), minlength=len(rest)) + np.bincount(ends.ravel(), minlength=len(rest))
    return total / np.maximum(count, 1)


def _components(num_vertices: int, faces: np.ndarray) -> np.ndarray:
    """(V,) connected-component label of every vertex."""
    rows = faces.ravel()
    cols = np.roll(faces, 1, axis=1).ravel()
    adjacency = sp.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(num_vertices, num_vertices))
    return connected_components(adjacency, directed=False)[1]


def compute_body_regions(
    rest: np.ndarray, weights: np.ndarray, joints: np.ndarray, faces: np.ndarray
) -> BodyRegions:
    """Body parts and surface coordinates of a rest-pose mesh.

    Parameters
    ----------
    rest : (V, 3) rest-pose vertices, metres, SMPL frame (y up, facing +z).
    weights : (V, 24) linear-blend-skinning weights, rows summing to 1.
    joints : (24, 3) rest-pose joints, metres.
    faces : (F, 3) vertex indices.
    """
    rest = np.asarray(rest, dtype=np.float64)
    num = rest.shape[0]
    part_weight = np.stack([weights[:, list(PART_JOINTS[p])].sum(1) for p in Part], axis=1)
    part = part_weight.argmax(1).astype(np.int8)

    limb_fraction = np.zeros(num)
    surface_uv = np.zeros((num, 2))
    for limb, (root, end) in LIMB_AXES.items():
        on_limb = part == limb
        segment = joints[end] - joints[root]
        offset = rest[on_limb] - joints[root]
        limb_fraction[on_limb] = offset @ segment / (segment @ segment)
        surface_uv[on_limb] = _cylinder_coordinates(rest[on_limb], joints[root], joints[end])
    for body_part in (Part.TORSO, Part.HEAD):
        on_part = part == body_part
        surface_uv[on_part] = _cylinder_coordinates(rest[on_part], joints[PELVIS], joints[NECK])

    torso_fraction = (rest[:, 1] - joints[PELVIS, 1]) / (joints[NECK, 1] - joints[PELVIS, 1])

    components = _components(num, faces)
    sizes = np.bincount(components)
    # Small pieces apart from the skin surface: eyeballs sit above the head joint, the mouth
    # (teeth, tongue) below it. A single-piece mesh (SMPL) has neither.
    separate = sizes[components] < 0.05 * num
    above_head_joint = rest[:, 1] > joints[HEAD, 1]
    eye = separate & above_head_joint
    mouth = separate & ~above_head_joint
    iris = np.zeros(num, dtype=bool)
    for label in np.unique(components[eye]):
        ball = components == label
        centre = rest[ball].mean(0)
        radius = np.linalg.norm(rest[ball] - centre, axis=1).mean()
        iris |= ball & (rest[:, 2] > centre[2] + 0.6 * radius)

    head_skin = (part == Part.HEAD) & ~separate
    head_points = rest[head_skin]
    crown = head_points[:, 1].max() - joints[HEAD, 1]
    half_depth = 0.5 * (head_points[:, 2].max() - head_points[:, 2].min())
    head_height = (rest[:, 1] - joints[HEAD, 1]) / crown
    head_depth = (rest[:, 2] - joints[HEAD, 2]) / half_depth

    hand = weights[:, list(HAND_JOINTS)].sum(1) > 0.5
    foot = weights[:, list(FOOT_JOINTS)].sum(1) > 0.5
    return BodyRegions(
        part=part,
        limb_fraction=limb_fraction.astype(np.float32),
        torso_fraction=torso_fraction.astype(np.float32),
        head_height=head_height.astype(np.float32),
        head_depth=head_depth.astype(np.float32),
        hand=hand,
        foot=foot,
        eye=eye,
        iris=iris,
        mouth=mouth,
        surface_uv=surface_uv.astype(np.float32),
        spacing=_vertex_spacing(rest, faces).astype(np.float32),
        rest=rest.astype(np.float32),
    )
