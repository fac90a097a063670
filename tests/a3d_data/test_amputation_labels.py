"""Labels: AJAHR indices, BPAC-Net per-head labels and zeroed-joint masks describe the same thing."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from a3d_data.amputation import (
    MULTI_LIMB,
    NON_AMPUTEE,
    NUM_CLASSES,
    Level,
    Limb,
    UnknownAmputationError,
    absent_coco_keypoints,
    amputation_class,
    class_index_from_head_labels,
    classes_from_head_labels,
    head_labels,
    head_labels_from_classes,
    zeroed_joint_mask,
)
from a3d_data.skeleton import COCO_KEYPOINT_NAMES

# A body: for each limb, a level or none (several limbs may be amputated).
limb_levels = st.lists(st.integers(0, 3), min_size=4, max_size=4)


def test_a3d_class_puts_its_level_on_its_limb_and_none_elsewhere():
    assert head_labels(4) == (3, 1, 3, 3)  # left elbow: left-arm head says "elbow"
    assert head_labels(NON_AMPUTEE) == (3, 3, 3, 3)


@pytest.mark.parametrize("index", range(NUM_CLASSES))
def test_single_class_round_trips_through_head_labels(index):
    assert classes_from_head_labels(head_labels(index)) == (index,)
    labels = head_labels_from_classes(torch.tensor([index]))
    assert class_index_from_head_labels(labels).tolist() == [index]


@given(limb_levels)
def test_head_labels_round_trip_for_any_set_of_amputated_limbs(levels):
    classes = classes_from_head_labels(levels)
    assert head_labels(classes) == tuple(levels)


@given(limb_levels)
def test_zeroed_joints_are_the_union_of_each_limbs_class(levels):
    mask = zeroed_joint_mask(torch.tensor([levels]))[0]
    expected = set()
    for index in classes_from_head_labels(levels):
        expected |= set(amputation_class(index).zeroed_joints)
    assert set(torch.nonzero(mask).flatten().tolist()) == expected


def test_several_limbs_have_no_single_class():
    labels = torch.tensor([head_labels([0, 8]), head_labels([NON_AMPUTEE]), head_labels([10])])
    assert class_index_from_head_labels(labels).tolist() == [MULTI_LIMB, NON_AMPUTEE, 10]


def test_two_levels_on_one_limb_are_rejected():
    with pytest.raises(UnknownAmputationError, match="two levels on the right_arm"):
        head_labels([0, 2])


@pytest.mark.parametrize(
    "labels, message",
    [
        (torch.zeros(3, 5, dtype=torch.long), r"expected shape \(B, 4\)"),
        (torch.full((2, 4), 4), r"values must be in \[0, 3\]"),
        (torch.full((2, 4), -1), r"values must be in \[0, 3\]"),
    ],
)
def test_malformed_head_labels_are_rejected(labels, message):
    with pytest.raises(ValueError, match=message):
        zeroed_joint_mask(labels)


def test_out_of_range_class_indices_are_rejected():
    with pytest.raises(UnknownAmputationError, match=r"\[0, 12\]"):
        head_labels_from_classes(torch.tensor([3, 13]))


def _absent_names(index: int) -> set[str]:
    zeroed = zeroed_joint_mask(head_labels_from_classes(torch.tensor([index])))
    absent = absent_coco_keypoints(zeroed)[0]
    return {COCO_KEYPOINT_NAMES[k] for k in torch.nonzero(absent).flatten().tolist()}


def test_absent_coco_keypoints_follow_the_amputation_level():
    assert _absent_names(0) == {"right_wrist"}
    assert _absent_names(1) == {"right_elbow", "right_wrist"}
    assert _absent_names(2) == {"right_shoulder", "right_elbow", "right_wrist"}
    assert _absent_names(6) == {"left_ankle"}
    assert _absent_names(11) == {"right_hip", "right_knee", "right_ankle"}
    assert _absent_names(NON_AMPUTEE) == set()


def test_every_limb_and_level_has_a_class():
    seen = {(amputation_class(i).limb, amputation_class(i).level) for i in range(12)}
    assert seen == {(limb, level) for limb in Limb for level in (Level.DISTAL, Level.MIDDLE, Level.PROXIMAL)}
