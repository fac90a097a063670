"""Joint and keypoint conventions shared by every part of the project.

SMPL's 24-joint kinematic tree and joint order (brief §2), the COCO-17 keypoint order, which SMPL
joint carries each COCO keypoint (used to decide which keypoints an amputation removes), and the
names of the extra vertex keypoints that ``smplx`` reads from ``vertex_ids``.
"""

from __future__ import annotations

from typing import Final

SMPL_JOINT_NAMES: Final[tuple[str, ...]] = (
    "pelvis", "L_hip", "R_hip", "spine1", "L_knee", "R_knee", "spine2", "L_ankle", "R_ankle",
    "spine3", "L_foot", "R_foot", "neck", "L_collar", "R_collar", "head", "L_shoulder",
    "R_shoulder", "L_elbow", "R_elbow", "L_wrist", "R_wrist", "L_hand", "R_hand",
)  # fmt: skip
NUM_SMPL_JOINTS: Final[int] = len(SMPL_JOINT_NAMES)

# Parent of joint i; -1 for the root.
SMPL_PARENTS: Final[tuple[int, ...]] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)  # fmt: skip

# The tokenizers and the pose regressor see joints 1..21 (no root, no hand joints).
BODY_JOINTS: Final[tuple[int, ...]] = tuple(range(1, 22))

COCO_KEYPOINT_NAMES: Final[tuple[str, ...]] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
NUM_COCO_KEYPOINTS: Final[int] = len(COCO_KEYPOINT_NAMES)

# The SMPL joint whose rotation moves each COCO keypoint's body part. A keypoint is absent when
# this joint is amputated, so a hand amputation (joints 21, 23) removes the wrist keypoint, an
# elbow amputation the elbow and wrist, a shoulder amputation the shoulder, elbow and wrist.
COCO_TO_SMPL_JOINT: Final[tuple[int, ...]] = (
    15, 15, 15, 15, 15, 16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8,
)  # fmt: skip

# COCO keypoints of each limb from proximal to distal, in BPAC-Net's head order (right arm,
# left arm, left leg, right leg): shoulder, elbow, wrist or hip, knee, ankle.
COCO_LIMB_CHAINS: Final[tuple[tuple[int, int, int], ...]] = (
    (6, 8, 10), (5, 7, 9), (11, 13, 15), (12, 14, 16),
)  # fmt: skip

# The COCO keypoints BPAC-Net turns into heatmaps (brief §4.2): shoulders to ankles.
BPAC_COCO_KEYPOINTS: Final[tuple[int, ...]] = tuple(range(5, 17))

# Names smplx's VertexJointSelector reads from ``vertex_ids`` (in this order it appends them).
FACE_VERTEX_KEYPOINTS: Final[tuple[str, ...]] = ("nose", "reye", "leye", "rear", "lear")
FEET_VERTEX_KEYPOINTS: Final[tuple[str, ...]] = (
    "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)  # fmt: skip
FINGERTIP_VERTEX_KEYPOINTS: Final[tuple[str, ...]] = tuple(
    side + finger for side in ("l", "r") for finger in ("thumb", "index", "middle", "ring", "pinky")
)
VERTEX_KEYPOINT_NAMES: Final[tuple[str, ...]] = (
    FACE_VERTEX_KEYPOINTS + FEET_VERTEX_KEYPOINTS + FINGERTIP_VERTEX_KEYPOINTS
)
# smplx's SMPL output: 24 joints, then the vertex keypoints above.
SMPL_OUTPUT_JOINT_NAMES: Final[tuple[str, ...]] = SMPL_JOINT_NAMES + VERTEX_KEYPOINT_NAMES


def descendants(joint: int) -> tuple[int, ...]:
    """The joint and every joint below it in the SMPL tree, in ascending order."""
    if not 0 <= joint < NUM_SMPL_JOINTS:
        raise ValueError(f"SMPL joint index must be in [0, {NUM_SMPL_JOINTS - 1}], got {joint}")
    found = {joint}
    # Parents precede their children in SMPL's order, so one forward pass collects the subtree.
    for child in range(joint + 1, NUM_SMPL_JOINTS):
        if SMPL_PARENTS[child] in found:
            found.add(child)
    return tuple(sorted(found))
