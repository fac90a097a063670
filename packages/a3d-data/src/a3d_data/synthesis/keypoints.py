"""2D keypoints in the crop and their states: visible, occluded, absent, outside.

A keypoint is *visible* when the surface the renderer shows at its pixel belongs to its own body
segment and is not far in front of it; otherwise the body hides it from itself (*occluded*).
Synthetic occluders hide keypoints too. Amputated keypoints are *absent* and stored at (0, 0), as
the paper stores them; keypoints projecting outside the crop are *outside*.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from a3d_data.skeleton import COCO_TO_SMPL_JOINT, NUM_COCO_KEYPOINTS, NUM_SMPL_JOINTS, SMPL_PARENTS
from a3d_data.synthesis.schema import KeypointState

# How far (metres) the visible surface may lie in front of a keypoint before it counts as hidden.
# Limb keypoints sit inside the body; hips sit deep in the pelvis (up to ~25 cm behind a bent
# thigh's skin); face keypoints lie on the skin.
_LIMB_DEPTH_TOLERANCE = 0.16
_HIP_DEPTH_TOLERANCE = 0.25
_FACE_DEPTH_TOLERANCE = 0.04
_FACE_KEYPOINTS = 5  # COCO 0..4: nose, eyes, ears
_HIP_KEYPOINTS = (11, 12)
_SHOULDER_KEYPOINTS = (5, 6)
_SPINE3 = 9


def face_segments(weights: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """The SMPL joint (F,) that dominates each triangle's skinning."""
    return weights[faces].sum(1).argmax(1)


@functools.cache
def keypoint_segments() -> torch.Tensor:
    """(17, 24) bool: which joints' triangles count as a keypoint's own segment.

    The joint carrying the keypoint, its parent and its children: a wrist keypoint may show
    on the forearm or on the hand. Shoulders also show on the upper back (spine3), which is
    what a camera behind the person sees at a shoulder.
    """
    allowed = torch.zeros(NUM_COCO_KEYPOINTS, NUM_SMPL_JOINTS, dtype=torch.bool)
    for k, joint in enumerate(COCO_TO_SMPL_JOINT):
        allowed[k, joint] = True
        if SMPL_PARENTS[joint] >= 0:
            allowed[k, SMPL_PARENTS[joint]] = True
        for child, parent in enumerate(SMPL_PARENTS):
            if parent == joint:
                allowed[k, child] = True
    allowed[list(_SHOULDER_KEYPOINTS), _SPINE3] = True
    return allowed


def keypoint_states(
    keypoints2d: torch.Tensor,
    keypoint_depth: torch.Tensor,
    absent: torch.Tensor,
    face_id: torch.Tensor,
    depth: torch.Tensor,
    face_segment: torch.Tensor,
    occluder_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """States (B, 17) uint8 (KeypointState) of projected keypoints.

    keypoints2d : (B, 17, 2) crop pixels; keypoint_depth : (B, 17) metres (camera z);
    absent : (B, 17) bool; face_id / depth : (B, H, W) from the renderer;
    face_segment : (F,) joint of each triangle; occluder_mask : (B, H, W) bool or None.
    """
    batch, height, width = face_id.shape
    pixel = keypoints2d.floor().long()
    inside = (pixel[..., 0] >= 0) & (pixel[..., 0] < width) & (pixel[..., 1] >= 0) & (pixel[..., 1] < height)
    x = pixel[..., 0].clamp(0, width - 1)
    y = pixel[..., 1].clamp(0, height - 1)
    rows = torch.arange(batch)[:, None]
    shown_face = face_id[rows, y, x]  # (B, 17)
    shown_depth = depth[rows, y, x]
    allowed = keypoint_segments().to(face_id.device)
    shown_joint = face_segment.to(face_id.device)[shown_face.clamp(min=0)]
    own_segment = allowed[torch.arange(NUM_COCO_KEYPOINTS)[None, :].expand(batch, -1), shown_joint]
    tolerance = torch.full((NUM_COCO_KEYPOINTS,), _LIMB_DEPTH_TOLERANCE)
    tolerance[:_FACE_KEYPOINTS] = _FACE_DEPTH_TOLERANCE
    tolerance[list(_HIP_KEYPOINTS)] = _HIP_DEPTH_TOLERANCE
    in_front = shown_depth < keypoint_depth - tolerance[None, :].to(depth.device)
    # A keypoint just off the silhouette (an empty pixel) is not hidden by anything.
    hidden = (shown_face >= 0) & (~own_segment | in_front)
    if occluder_mask is not None:
        hidden |= occluder_mask[rows, y, x]
    states = torch.full((batch, NUM_COCO_KEYPOINTS), int(KeypointState.VISIBLE), dtype=torch.uint8)
    states[hidden] = KeypointState.OCCLUDED
    states[~inside] = KeypointState.OUTSIDE
    states[absent.bool()] = KeypointState.ABSENT
    return states


def state_bitmask(states: np.ndarray, state: KeypointState) -> np.ndarray:
    """(B,) int64 with bit k set where keypoint k has ``state``; states is (B, 17)."""
    bits = (states == state).astype(np.int64)
    return (bits << np.arange(states.shape[1], dtype=np.int64)).sum(1)
