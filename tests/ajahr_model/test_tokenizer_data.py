"""Tokenizer poses, noise augmentation, and the loss's body-model skinning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from a3d_data.amputation import NON_AMPUTEE
from a3d_data.poses import ProceduralPoseSource
from ajahr_model.tokenizer.data import (
    TrainingPoseStream,
    add_part_noise,
    held_out_poses,
    noise_amplitude,
    part_masks,
)
from ajahr_model.tokenizer.losses import (
    LossWeights,
    PoseSkinning,
    full_rotmats,
    tokenizer_loss,
    vertex_area_weights,
)
from ajahr_model.tokenizer.rotation6d import matrix_to_rotation_6d, rotation_6d_to_matrix
from tests.conftest import random_rotmats


def test_the_amputee_stream_is_half_amputees_in_every_batch_with_their_joints_zeroed():
    stream = TrainingPoseStream(
        ProceduralPoseSource(), batch_size=8, amputee_fraction=0.5, seed=0, chunk_batches=2
    )
    for _ in range(3):
        batch = stream.next_batch()
        assert batch.amputee.sum() == 4
        zero_rows = batch.pose6d.abs().sum(-1) == 0  # (8, 21)
        assert torch.equal(zero_rows.any(1), batch.amputee)
        assert ((batch.classes >= 0) & (batch.classes <= NON_AMPUTEE)).all()


def test_the_stream_resumes_from_its_position_alone():
    source = ProceduralPoseSource()
    first = TrainingPoseStream(source, 4, 0.5, seed=3, chunk_batches=2)
    batches = [first.next_batch() for _ in range(5)]
    second = TrainingPoseStream(source, 4, 0.5, seed=3, chunk_batches=2)
    second.load_state_dict({"position": 3, "seed": 3, "chunk_batches": 2})
    for expected in batches[3:]:
        got = second.next_batch()
        assert torch.equal(got.pose6d, expected.pose6d) and list(got.pose_ids) == list(expected.pose_ids)
    with pytest.raises(ValueError, match="seed 3"):
        TrainingPoseStream(source, 4, 0.5, seed=4).load_state_dict(first.state_dict())


def test_held_out_poses_are_fixed_and_disjoint_from_training_even_with_the_same_seed():
    source = ProceduralPoseSource()
    held_out = held_out_poses(source, normal=16, amputee=16, seed=5)
    again = held_out_poses(source, normal=16, amputee=16, seed=5)
    assert torch.equal(held_out["amputee"].pose6d, again["amputee"].pose6d)
    assert not held_out["normal"].amputee.any() and held_out["amputee"].amputee.all()
    ids = {str(i) for poses in held_out.values() for i in poses.pose_ids}
    stream = TrainingPoseStream(source, 16, 0.5, seed=5, chunk_batches=4)
    trained = {str(i) for _ in range(8) for i in stream.next_batch().pose_ids}
    assert len(ids) == 32 and not ids & trained


def test_noise_goes_on_one_part_of_the_chosen_half_and_never_on_amputated_joints():
    pose6d = matrix_to_rotation_6d(random_rotmats(torch.Generator().manual_seed(0), 64)[:, 1:22])
    pose6d[:32, 16:] = 0.0  # an amputated right arm tip on half the poses
    noisy = add_part_noise(pose6d, amplitude=0.3, fraction=0.5, generator=torch.Generator().manual_seed(1))
    changed = (noisy != pose6d).any(-1)  # (64, 21)
    assert changed.any(1).sum() == 32
    parts = part_masks()
    for row in changed[changed.any(1)]:
        assert any((row & ~part).sum() == 0 for part in parts)  # inside one part
    assert torch.equal(noisy[:32, 16:], pose6d[:32, 16:])


def test_noise_amplitude_ramps_linearly_then_holds():
    assert noise_amplitude(0, 100, 0.01, 0.5) == pytest.approx(0.01)
    assert noise_amplitude(50, 100, 0.01, 0.5) == pytest.approx(0.255)
    assert noise_amplitude(100, 100, 0.01, 0.5) == noise_amplitude(5000, 100, 0.01, 0.5) == pytest.approx(0.5)


def test_skinning_a_vertex_subset_matches_the_body_model(body_model):
    rotmats = random_rotmats(torch.Generator().manual_seed(0), 3)
    rotmats[0, 18] = 0.0  # an amputated left elbow
    ids = torch.tensor([0, 17, 5000, body_model.num_vertices - 1])
    joints, vertices = PoseSkinning(body_model, ids)(rotmats)
    out = body_model.forward_rotmats(rotmats)
    assert torch.allclose(joints, out.joints[:, :24], atol=1e-5)
    assert torch.allclose(vertices, out.vertices[:, ids], atol=1e-5)


def test_area_weights_are_positive_and_sum_to_one(body_model):
    weights = vertex_area_weights(body_model.v_template, torch.as_tensor(body_model.faces.astype(np.int64)))
    assert weights.shape == (body_model.num_vertices,)
    assert (weights >= 0).all() and weights.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_the_loss_is_zero_for_a_perfect_reconstruction_and_pulls_zeroed_joints_to_zero(body_model):
    target = matrix_to_rotation_6d(random_rotmats(torch.Generator().manual_seed(2), 4)[:, 1:22])
    target[:, 15] = 0.0  # amputated
    skinning = PoseSkinning(body_model, torch.arange(0, body_model.num_vertices, 50))
    total, terms = tokenizer_loss(target, target, torch.tensor(0.0), skinning, LossWeights(), 0.7)
    assert total.item() == pytest.approx(0.0, abs=1e-9)
    pred = target.clone()
    pred[:, 15] = 0.05  # short: decodes to a zero matrix, but is not zero yet
    pred.requires_grad_(True)
    total, terms = tokenizer_loss(pred, target, torch.tensor(0.0), skinning, LossWeights(), 0.7)
    total.backward()
    assert terms["sixd"] > 0 and terms["vertices"] == pytest.approx(0.0, abs=1e-9)
    assert (pred.grad[:, 15] > 0).all()  # descending it shrinks the vector towards zero


def test_full_rotmats_have_identity_root_and_hands():
    body = rotation_6d_to_matrix(torch.zeros(2, 21, 6))
    full = full_rotmats(body)
    assert full.shape == (2, 24, 3, 3)
    assert torch.equal(full[:, [0, 22, 23]], torch.eye(3).expand(2, 3, 3, 3))
    assert torch.equal(full[:, 1:22], body)


def test_a_prefetching_stream_gives_the_same_batches_and_resumes_the_same():
    source = ProceduralPoseSource()
    plain = TrainingPoseStream(source, 4, 0.5, seed=7, chunk_batches=2)
    expected = [plain.next_batch() for _ in range(7)]
    ahead = TrainingPoseStream(source, 4, 0.5, seed=7, chunk_batches=2, prefetch=True)
    for want in expected[:5]:
        got = ahead.next_batch()
        assert torch.equal(got.pose6d, want.pose6d) and list(got.pose_ids) == list(want.pose_ids)
    ahead.close()
    # A resumed prefetching stream, mid-chunk: the prefetched chunk is not the one needed first.
    resumed = TrainingPoseStream(source, 4, 0.5, seed=7, chunk_batches=2, prefetch=True)
    resumed.load_state_dict({"position": 3, "seed": 7, "chunk_batches": 2})
    for want in expected[3:]:
        assert torch.equal(resumed.next_batch().pose6d, want.pose6d)
    resumed.close()
