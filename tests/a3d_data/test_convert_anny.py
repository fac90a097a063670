"""Pieces of the anny conversion that need no anny: the A-pose to T-pose straightening."""

from __future__ import annotations

import numpy as np
import torch
from smplx.lbs import batch_rigid_transform

from a3d_data.body_model.convert_anny import t_pose_rotations
from a3d_data.skeleton import SMPL_JOINT_NAMES, SMPL_PARENTS

J = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}


def _a_pose_joints() -> np.ndarray:
    """A skeleton with arms hanging 45 degrees down and the elbows bent forward."""
    joints = np.zeros((24, 3))
    for name, position in {
        "L_hip": (0.1, -0.1, 0), "R_hip": (-0.1, -0.1, 0), "spine1": (0, 0.1, 0), "L_knee": (0.1, -0.5, 0),
        "R_knee": (-0.1, -0.5, 0), "spine2": (0, 0.2, 0), "L_ankle": (0.1, -0.9, 0), "R_ankle": (-0.1, -0.9, 0),
        "spine3": (0, 0.3, 0), "L_foot": (0.1, -0.95, 0.1), "R_foot": (-0.1, -0.95, 0.1), "neck": (0, 0.5, 0),
        "L_collar": (0.05, 0.45, 0), "R_collar": (-0.05, 0.45, 0), "head": (0, 0.6, 0),
        "L_shoulder": (0.18, 0.45, 0), "R_shoulder": (-0.18, 0.45, 0),
        "L_elbow": (0.38, 0.25, 0), "R_elbow": (-0.38, 0.25, 0),
        "L_wrist": (0.5, 0.1, 0.15), "R_wrist": (-0.5, 0.1, 0.15),
        "L_hand": (0.55, 0.05, 0.2), "R_hand": (-0.55, 0.05, 0.2),
    }.items():  # fmt: skip
        joints[J[name]] = position
    return joints


def test_t_pose_rotations_straighten_both_arms_sideways_and_leave_the_rest():
    joints = _a_pose_joints()
    rotations = t_pose_rotations(joints)
    posed, _ = batch_rigid_transform(
        torch.as_tensor(rotations[None]), torch.as_tensor(joints[None]), torch.as_tensor(SMPL_PARENTS)
    )
    posed = posed[0].numpy()
    for side, sign in (("L", 1.0), ("R", -1.0)):
        chain = posed[[J[f"{side}_{n}"] for n in ("shoulder", "elbow", "wrist", "hand")]]
        segments = np.diff(chain, axis=0)
        directions = segments / np.linalg.norm(segments, axis=1, keepdims=True)
        np.testing.assert_allclose(directions, np.tile([sign, 0, 0], (3, 1)), atol=1e-9)
        # Bone lengths are kept.
        np.testing.assert_allclose(
            np.linalg.norm(segments, axis=1),
            np.linalg.norm(np.diff(joints[[J[f"{side}_{n}"] for n in ("shoulder", "elbow", "wrist", "hand")]], axis=0), axis=1),
        )  # fmt: skip
    untouched = [J[n] for n in ("pelvis", "L_knee", "R_ankle", "head", "L_collar")]
    np.testing.assert_allclose(posed[untouched], joints[untouched], atol=1e-12)
    for r in rotations:
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
