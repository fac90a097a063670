"""SMPL's tree and the COCO conventions the rest of the code relies on."""

from __future__ import annotations

import pytest

from a3d_data.skeleton import (
    COCO_KEYPOINT_NAMES,
    COCO_TO_SMPL_JOINT,
    NUM_SMPL_JOINTS,
    SMPL_JOINT_NAMES,
    SMPL_OUTPUT_JOINT_NAMES,
    SMPL_PARENTS,
    descendants,
)


def test_smpl_tree_is_the_published_one_and_topologically_ordered():
    assert SMPL_PARENTS == (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
    assert all(parent < child for child, parent in enumerate(SMPL_PARENTS) if child)
    assert len(SMPL_JOINT_NAMES) == NUM_SMPL_JOINTS == 24


def test_descendants_of_the_right_shoulder_are_the_right_arm():
    assert descendants(SMPL_JOINT_NAMES.index("R_shoulder")) == (17, 19, 21, 23)
    assert descendants(0) == tuple(range(24))
    with pytest.raises(ValueError, match="SMPL joint index"):
        descendants(24)


def test_each_coco_limb_keypoint_is_carried_by_the_joint_of_the_same_name():
    side = {"left": "L", "right": "R"}
    smpl_name = {"shoulder": "shoulder", "elbow": "elbow", "wrist": "wrist", "hip": "hip",
                 "knee": "knee", "ankle": "ankle"}  # fmt: skip
    for name, joint in zip(COCO_KEYPOINT_NAMES, COCO_TO_SMPL_JOINT, strict=True):
        if "_" in name and name.split("_")[1] in smpl_name:
            s, part = name.split("_")
            assert SMPL_JOINT_NAMES[joint] == f"{side[s]}_{smpl_name[part]}"
        else:  # nose, eyes, ears ride on the head
            assert SMPL_JOINT_NAMES[joint] == "head"


def test_smplx_output_has_24_joints_then_21_vertex_keypoints():
    assert len(SMPL_OUTPUT_JOINT_NAMES) == 45
    assert SMPL_OUTPUT_JOINT_NAMES[24] == "nose"


def test_limb_chains_follow_bpac_heads_and_each_amputation_level_removes_their_tail():
    import torch

    from a3d_data.amputation import (
        absent_coco_keypoints,
        class_for,
        head_labels_from_classes,
        zeroed_joint_mask,
    )
    from a3d_data.amputation.table import Level, Limb
    from a3d_data.skeleton import COCO_LIMB_CHAINS

    for limb in Limb:
        for level in (Level.DISTAL, Level.MIDDLE, Level.PROXIMAL):
            labels = head_labels_from_classes(torch.tensor([class_for(limb, level)]))
            absent = set(
                torch.nonzero(absent_coco_keypoints(zeroed_joint_mask(labels))[0]).flatten().tolist()
            )
            assert absent == set(COCO_LIMB_CHAINS[limb][2 - int(level) :])
