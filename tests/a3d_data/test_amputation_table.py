"""The AJAHR index as the paper's table states it (brief §2)."""

from __future__ import annotations

import pytest

from a3d_data.amputation import (
    AMPUTATION_CLASSES,
    NON_AMPUTEE,
    NUM_CLASSES,
    Level,
    Limb,
    UnknownAmputationError,
    amputation_class,
    class_for,
)
from a3d_data.skeleton import SMPL_PARENTS, descendants

# The table of the brief, verbatim: index -> (name, zeroed SMPL joints, head, head class).
PAPER_TABLE = {
    0: ("right hand", {21, 23}, Limb.RIGHT_ARM, 0),
    1: ("right elbow", {19, 21, 23}, Limb.RIGHT_ARM, 1),
    2: ("right shoulder", {17, 19, 21, 23}, Limb.RIGHT_ARM, 2),
    3: ("left hand", {20, 22}, Limb.LEFT_ARM, 0),
    4: ("left elbow", {18, 20, 22}, Limb.LEFT_ARM, 1),
    5: ("left shoulder", {16, 18, 20, 22}, Limb.LEFT_ARM, 2),
    6: ("left foot", {7, 10}, Limb.LEFT_LEG, 0),
    7: ("left knee", {4, 7, 10}, Limb.LEFT_LEG, 1),
    8: ("left hip", {1, 4, 7, 10}, Limb.LEFT_LEG, 2),
    9: ("right foot", {8, 11}, Limb.RIGHT_LEG, 0),
    10: ("right knee", {5, 8, 11}, Limb.RIGHT_LEG, 1),
    11: ("right hip", {2, 5, 8, 11}, Limb.RIGHT_LEG, 2),
}


def test_there_are_twelve_amputations_and_one_non_amputee_class():
    assert NUM_CLASSES == 13
    assert NON_AMPUTEE == 12
    assert amputation_class(12).zeroed_joints == ()
    assert amputation_class(12).level == Level.NONE


@pytest.mark.parametrize("index", sorted(PAPER_TABLE))
def test_each_class_zeroes_the_joints_of_the_paper_table(index):
    name, joints, limb, level = PAPER_TABLE[index]
    row = amputation_class(index)
    assert (row.name, set(row.zeroed_joints), row.limb, int(row.level)) == (name, joints, limb, level)
    assert class_for(limb, Level(level)) == index


@pytest.mark.parametrize("index", sorted(PAPER_TABLE))
def test_zeroed_joints_are_a_whole_subtree_rooted_at_the_amputation_joint(index):
    row = amputation_class(index)
    assert row.zeroed_joints == descendants(row.amputation_joint)
    assert min(row.zeroed_joints) == row.amputation_joint
    # Every zeroed joint but the top one hangs from another zeroed joint.
    for joint in row.zeroed_joints[1:]:
        assert SMPL_PARENTS[joint] in row.zeroed_joints


def test_table_rows_are_in_index_order():
    assert [row.index for row in AMPUTATION_CLASSES] == list(range(NUM_CLASSES))


@pytest.mark.parametrize("bad", [-1, 13, 99, 2.0, "3", True, None])
def test_an_unknown_index_is_rejected_with_the_valid_range(bad):
    with pytest.raises(UnknownAmputationError, match=r"unknown AJAHR amputation index .*\[0, 12\]"):
        amputation_class(bad)
