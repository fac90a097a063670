"""Zero-matrix amputation on the body model: what moves, where it goes, what stays.

Property tests over random poses and shapes (hypothesis draws the seed of each body).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from a3d_data.amputation import (
    affected_vertex_mask,
    amputate,
    amputate_rotmats,
    amputation_class,
    collapsed_vertex_mask,
    head_labels,
    head_labels_from_classes,
    zeroed_joint_mask,
)
from tests.conftest import random_rotmats

ATOL = 2e-5  # metres; float32 on a ~1 m body


def _pose(body_model, seed: int, classes: torch.Tensor | None = None, labels: torch.Tensor | None = None):
    generator = torch.Generator().manual_seed(seed)
    batch = len(classes) if classes is not None else len(labels)
    rotmats = random_rotmats(generator, batch)
    betas = 1.5 * torch.randn(batch, body_model.num_betas, generator=generator)
    transl = torch.randn(batch, 3, generator=generator)
    if labels is None:
        labels = head_labels_from_classes(classes)
    with torch.no_grad():
        intact = body_model.forward_rotmats(rotmats, betas, transl)
        amputee = body_model.forward_rotmats(amputate(rotmats, labels), betas, transl)
    return intact, amputee, zeroed_joint_mask(labels)


@given(seed=st.integers(0, 2**31 - 1), index=st.integers(0, 11))
def test_vertices_skinned_only_to_removed_joints_collapse_onto_the_amputation_joint(body_model, seed, index):
    intact, amputee, zeroed = _pose(body_model, seed, torch.tensor([index]))
    collapsed = collapsed_vertex_mask(body_model.lbs_weights, zeroed)[0]
    assert collapsed.sum() > 20  # a hand has hundreds of vertices
    joint = amputation_class(index).amputation_joint
    stump = amputee.joints[0, joint]
    # The amputation joint itself stays where the intact body has it.
    torch.testing.assert_close(stump, intact.joints[0, joint], atol=ATOL, rtol=0)
    distance = (amputee.vertices[0, collapsed] - stump).norm(dim=-1)
    assert distance.max() < ATOL


@given(seed=st.integers(0, 2**31 - 1), index=st.integers(0, 12))
def test_vertices_without_weight_on_removed_joints_do_not_move(body_model, seed, index):
    intact, amputee, zeroed = _pose(body_model, seed, torch.tensor([index]))
    untouched = ~affected_vertex_mask(body_model.lbs_weights, zeroed)[0]
    torch.testing.assert_close(
        amputee.vertices[0, untouched], intact.vertices[0, untouched], atol=ATOL, rtol=0
    )
    kept = ~zeroed[0]
    torch.testing.assert_close(amputee.joints[0, :24][kept], intact.joints[0, :24][kept], atol=ATOL, rtol=0)


@pytest.mark.parametrize("limb_classes", [(0, 1, 2), (3, 4, 5), (6, 7, 8), (9, 10, 11)])
def test_a_higher_amputation_level_removes_everything_a_lower_one_does_and_more(body_model, limb_classes):
    zeroed = zeroed_joint_mask(head_labels_from_classes(torch.tensor(limb_classes)))
    collapsed = collapsed_vertex_mask(body_model.lbs_weights, zeroed)
    for lower, higher in ((0, 1), (1, 2)):
        assert not (collapsed[lower] & ~collapsed[higher]).any()
        assert collapsed[higher].sum() > collapsed[lower].sum()


@given(seed=st.integers(0, 2**31 - 1), levels=st.lists(st.integers(0, 3), min_size=4, max_size=4))
def test_several_limbs_amputated_at_once_collapse_each_onto_its_own_joint(body_model, seed, levels):
    labels = torch.tensor([levels])
    intact, amputee, zeroed = _pose(body_model, seed, labels=labels)
    from a3d_data.amputation import classes_from_head_labels

    for index in classes_from_head_labels(levels):
        row = amputation_class(index)
        if row.amputation_joint is None:
            continue
        only_this = torch.zeros_like(zeroed)
        only_this[0, list(row.zeroed_joints)] = True
        collapsed = collapsed_vertex_mask(body_model.lbs_weights, only_this)[0]
        stump = amputee.joints[0, row.amputation_joint]
        assert (amputee.vertices[0, collapsed] - stump).norm(dim=-1).max() < ATOL
    untouched = ~affected_vertex_mask(body_model.lbs_weights, zeroed)[0]
    torch.testing.assert_close(
        amputee.vertices[0, untouched], intact.vertices[0, untouched], atol=ATOL, rtol=0
    )


def test_amputation_is_batched_per_sample(body_model):
    classes = torch.tensor([12, 0, 7, 12])
    intact, amputee, _ = _pose(body_model, 3, classes)
    torch.testing.assert_close(amputee.vertices[[0, 3]], intact.vertices[[0, 3]])
    assert not torch.allclose(amputee.vertices[1], intact.vertices[1])


def test_amputation_keeps_gradients_for_the_kept_joints():
    rotmats = torch.eye(3).repeat(2, 24, 1, 1).requires_grad_(True)
    out = amputate(rotmats, torch.tensor([head_labels(2), head_labels(12)]))
    out.sum().backward()
    assert rotmats.grad[0, 17].abs().sum() == 0  # removed: no gradient
    assert rotmats.grad[0, 16].abs().sum() > 0
    assert rotmats.grad[1].abs().min() > 0


@pytest.mark.parametrize(
    "rotmats, message",
    [
        (torch.zeros(2, 23, 3, 3), r"expected shape \(B, 24, 3, 3\)"),
        (torch.zeros(2, 72), r"expected shape \(B, 24, 3, 3\)"),
        (torch.full((1, 24, 3, 3), float("nan")), "NaN"),
    ],
)
def test_a_pose_of_the_wrong_shape_or_with_nan_is_rejected(rotmats, message):
    with pytest.raises(ValueError, match=message):
        amputate_rotmats(rotmats, torch.zeros(rotmats.shape[0], 24, dtype=torch.bool))


def test_body_model_rejects_poses_of_the_wrong_shape(body_model):
    with pytest.raises(ValueError, match=r"rotmats: expected shape \(B, 24, 3, 3\)"):
        body_model.forward_rotmats(torch.zeros(1, 21, 3, 3))
    with pytest.raises(ValueError, match=r"betas: expected shape \(1, 10\)"):
        body_model.forward_rotmats(torch.eye(3).repeat(1, 24, 1, 1), torch.zeros(1, 3))


def test_coco_keypoints_of_an_amputated_limb_sit_at_the_stump(body_model):
    intact, amputee, zeroed = _pose(body_model, 5, torch.tensor([1]))  # right elbow
    coco = body_model.coco_keypoints(amputee.vertices)[0]
    stump = amputee.joints[0, 19]
    # The right wrist keypoint is regressed from hand/forearm vertices: all collapsed.
    assert (coco[10] - stump).norm() < 0.02
