"""The A3D loader: random access into the shards, augmentation that moves labels with the image,
balanced batches that restart exactly, and corrupt samples skipped and counted."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from a3d_data.synthesis.schema import KeypointState
from ajahr_model.data.a3d import (
    A3DDataset,
    Augmentation,
    BalancedBatches,
    CorruptCounter,
    CorruptSamplesError,
    DataError,
    augment,
    collate,
    index_samples,
    training_data_fingerprint,
)
from ajahr_model.data.keypoint_prior import load_keypoint_prior
from tests.ajahr_model.conftest_ajahr import make_truth_prior


def test_a_sample_has_the_crop_and_labels_with_their_shapes(a3d_tiny):
    dataset = A3DDataset(index_samples(a3d_tiny, "train", ["amputee", "non_amputee"]))
    assert len(dataset) == 16
    sample = dataset[0]
    assert sample["ok"] and sample["image"].shape == (3, 256, 256)
    assert sample["rotmats"].shape == (24, 3, 3) and sample["keypoints2d"].shape == (17, 2)
    assert sample["head_labels"].shape == (4,) and sample["joints3d_smpl"].shape == (24, 3)
    # One class per sample, one per batch row: a (B, 1) column would broadcast against (B,)
    # predictions into a (B, B) comparison (it once made every class accuracy ~1/13).
    assert sample["class_index"].shape == ()
    assert collate([dataset[0], dataset[1]])["class_index"].shape == (2,)
    batch = collate([dataset[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 256, 256) and batch["corrupt"] == []


def test_unknown_split_or_missing_index_is_a_clear_error(a3d_tiny, tmp_path):
    with pytest.raises(DataError, match="no samples with split='nope'"):
        index_samples(a3d_tiny, "nope", ["amputee"])
    with pytest.raises(DataError, match="index.parquet"):
        index_samples(tmp_path, "train", ["amputee"])


def test_an_in_plane_rotation_turns_keypoints_root_and_joints_by_the_same_angle(a3d_tiny):
    dataset = A3DDataset(index_samples(a3d_tiny, "train", ["non_amputee"]))
    image, labels = dataset.load(0)
    rotation_only = Augmentation(scale=0.0, rotation_deg=25.0, rotation_p=1.0, translation=0.0, colour=0.0)
    _, out = augment(image, labels, np.random.default_rng(3), rotation_only)
    visible = (labels["keypoint_state"] == KeypointState.VISIBLE) & (
        out["keypoint_state"] == KeypointState.VISIBLE
    )
    before, after = labels["keypoints2d"][visible] - 128.0, out["keypoints2d"][visible] - 128.0
    angles = np.arctan2(after[:, 1], after[:, 0]) - np.arctan2(before[:, 1], before[:, 0])
    angle = math.atan2(np.sin(angles).mean(), np.cos(angles).mean())
    turn = out["rotmats"][0] @ labels["rotmats"][0].T
    assert math.atan2(turn[1, 0], turn[0, 0]) == pytest.approx(angle, abs=1e-4)
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), np.linalg.norm(before, axis=1), rtol=1e-4)
    np.testing.assert_allclose(out["joints3d_smpl"] @ turn, labels["joints3d_smpl"], atol=1e-5)
    np.testing.assert_allclose(out["rotmats"][1:], labels["rotmats"][1:])  # only the root turns


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31))
def test_augmented_absent_keypoints_stay_absent_at_the_origin(a3d_tiny, seed):
    dataset = A3DDataset(index_samples(a3d_tiny, "train", ["amputee"]))
    image, labels = dataset.load(seed % len(dataset))
    _, out = augment(image, labels, np.random.default_rng(seed), Augmentation())
    absent = labels["keypoint_state"] == KeypointState.ABSENT
    assert (out["keypoint_state"][absent] == KeypointState.ABSENT).all()
    assert (out["keypoints2d"][absent] == 0).all()
    inside = ((out["keypoints2d"] >= 0) & (out["keypoints2d"] < 256)).all(1)
    assert (out["keypoint_state"][~absent & ~inside] == KeypointState.OUTSIDE).all()


def test_the_same_draw_number_gives_the_same_augmented_sample(a3d_tiny):
    dataset = A3DDataset(index_samples(a3d_tiny, "train", ["amputee"]), Augmentation(), seed=5)
    a, b, c = dataset[(2, 17)], dataset[(2, 17)], dataset[(2, 18)]
    assert (a["image"] == b["image"]).all() and not (a["image"] == c["image"]).all()


def test_balanced_batches_are_half_amputee_repeatable_and_restart_at_any_batch():
    parts = ["amputee"] * 10 + ["non_amputee"] * 30
    sampler = BalancedBatches(parts, batch_size=8, amputee_fraction=0.5, seed=1)
    stream = iter(sampler)
    first = [next(stream) for _ in range(5)]
    for batch in first:
        assert sum(parts[i] == "amputee" for i, _ in batch) == 4
        assert len({i for i, _ in batch}) == 8
    restarted = iter(BalancedBatches(parts, batch_size=8, amputee_fraction=0.5, seed=1, start_batch=3))
    assert next(restarted) == first[3]


@settings(max_examples=40, deadline=None)
@given(
    world_size=st.sampled_from([2, 4]),
    per_rank=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    number=st.integers(0, 1_000),
)
def test_each_process_takes_an_even_share_of_the_amputees_and_of_the_others(
    world_size, per_rank, seed, number
):
    """Under DDP the global batch is the single-process one, cut so that each rank keeps the
    50/50 split (a rank without amputees would leave the amputee tokenizer's head idle)."""
    parts = ["amputee"] * 20 + ["non_amputee"] * 30
    batch_size = 2 * per_rank * world_size
    whole = BalancedBatches(parts, batch_size, 0.5, seed).batch(number)
    shares = [BalancedBatches(parts, batch_size, 0.5, seed, rank=r, world_size=world_size).batch(number)
              for r in range(world_size)]  # fmt: skip
    assert sorted(sum(shares, [])) == sorted(whole)
    for share in shares:
        assert len(share) == 2 * per_rank
        assert sum(parts[i] == "amputee" for i, _ in share) == per_rank
        assert share == [pair for pair in whole if pair in share]  # the shuffled order is kept


def test_amputees_that_do_not_split_over_the_processes_are_refused():
    with pytest.raises(ValueError, match="the 3 amputees of a batch of 6 .* over the 2 processes"):
        BalancedBatches(["amputee"] * 10 + ["non_amputee"] * 10, 6, 0.5, 0, rank=0, world_size=2)


def test_a_batch_that_needs_more_amputees_than_the_split_has_is_refused():
    with pytest.raises(ValueError, match="needs 4 amputee samples, the split has 2"):
        BalancedBatches(["amputee"] * 2 + ["non_amputee"] * 10, 8, 0.5, 0)


def test_a_corrupt_image_is_skipped_and_counted_and_too_many_fail_the_run(a3d_tiny, tmp_path):
    copy = tmp_path / "a3d"
    shutil.copytree(a3d_tiny, copy)
    refs = index_samples(copy, "train", ["amputee", "non_amputee"])
    offset, size = refs[1].image
    with open(refs[1].shard, "r+b") as shard:  # scribble over the JPEG's bytes
        shard.seek(offset)
        shard.write(b"\x00" * size)
    dataset = A3DDataset(refs)
    bad = dataset[1]
    assert not bad["ok"] and refs[1].key in bad["error"]
    batch = collate([dataset[i] for i in range(4)])
    assert len(batch["keys"]) == 3 and batch["corrupt"][0][0] == 1
    tolerant = CorruptCounter(len(dataset), max_fraction=0.1)
    tolerant.add(batch["corrupt"])
    tolerant.add(batch["corrupt"])  # the same sample drawn again counts once
    assert tolerant.count == 1
    with pytest.raises(CorruptSamplesError, match="1 corrupt samples, more than the 0 allowed"):
        CorruptCounter(len(dataset), max_fraction=0.0).add(batch["corrupt"])


def test_labels_with_a_broken_zip_directory_are_a_corrupt_sample_not_a_dead_worker(a3d_tiny, tmp_path):
    copy = tmp_path / "a3d"
    shutil.copytree(a3d_tiny, copy)
    refs = index_samples(copy, "train", ["amputee", "non_amputee"])
    offset, size = refs[2].labels
    with open(refs[2].shard, "r+b") as shard:  # the npz keeps its zip header, loses its directory
        shard.seek(offset + size - 64)
        shard.write(b"\x00" * 64)
    bad = A3DDataset(refs)[2]
    assert not bad["ok"] and refs[2].key in bad["error"]


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_loader_workers_forked_after_the_parent_read_each_read_their_own_file(a3d_tiny):
    """The parent reads labels before the loader starts (the mean pose, the mean root); forked
    workers must not share its open shard files, whose one file offset their seeks would race on."""
    import torch

    dataset = A3DDataset(index_samples(a3d_tiny, "train", ["amputee", "non_amputee"]))
    expected = [dataset[i]["key"] for i in range(len(dataset))]  # the parent opens every shard
    assert all(dataset[i]["ok"] for i in range(len(dataset)))
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=[[i] * 24 for i in range(len(dataset))] * 4,
        num_workers=4,
        collate_fn=collate,
        multiprocessing_context="fork",
    )
    for number, batch in enumerate(loader):
        assert batch["corrupt"] == [] and batch["keys"] == [expected[number % len(dataset)]] * 24


def test_the_training_data_fingerprint_follows_the_samples_their_shards_and_the_prior(a3d_tiny, tmp_path):
    parts = ["amputee", "non_amputee"]
    refs = index_samples(a3d_tiny, "train", parts)
    base = training_data_fingerprint(a3d_tiny, refs)
    copy = tmp_path / "a3d"
    shutil.copytree(a3d_tiny, copy)
    # The same data elsewhere (a clone, the seed study's copy) is the same data.
    assert training_data_fingerprint(copy, index_samples(copy, "train", parts)) == base
    # Without the shard table, each file's own sha256 stands in for the recorded one.
    (copy / "shards.parquet").unlink()
    assert training_data_fingerprint(copy, index_samples(copy, "train", parts)) == base
    # Another selection of samples is other data.
    assert training_data_fingerprint(a3d_tiny, index_samples(a3d_tiny, "train", ["amputee"])) != base
    # So is a shard whose bytes changed (a dataset synthesized again with other params).
    changed = index_samples(copy, "train", parts)
    offset, _ = changed[0].image
    with open(changed[0].shard, "r+b") as shard:
        shard.seek(offset)
        first = shard.read(1)
        shard.seek(offset)
        shard.write(bytes([first[0] ^ 0xFF]))
    assert training_data_fingerprint(copy, changed) != base
    # A run that reads a keypoint prior trained on the prior's rows of its samples too.
    prior = load_keypoint_prior(make_truth_prior(a3d_tiny, tmp_path / "prior", seed=0))
    with_prior = training_data_fingerprint(a3d_tiny, refs, prior)
    assert with_prior != base
    assert training_data_fingerprint(a3d_tiny, refs, prior) == with_prior
    other_prior = load_keypoint_prior(make_truth_prior(a3d_tiny, tmp_path / "prior1", seed=1))
    assert training_data_fingerprint(a3d_tiny, refs, other_prior) != with_prior


def test_a_truncated_shard_keeps_its_whole_members_and_its_lost_samples_count_as_corrupt(
    a3d_tiny, tmp_path, caplog
):
    copy = tmp_path / "a3d"
    shutil.copytree(a3d_tiny, copy)
    refs = index_samples(copy, "train", ["amputee"])
    shard = refs[0].shard
    cut = refs[len(refs) // 2].image[0] + 10  # inside the image of the middle sample
    with open(shard, "r+b") as handle:
        handle.truncate(cut)
    # Test and evaluation sets are read strictly: the shard is named, nothing is dropped silently.
    with pytest.raises(
        DataError, match=rf"{shard.name}: \d+ samples listed in index.parquet are not in the shard"
    ):
        index_samples(copy, "train", ["amputee"])
    with caplog.at_level("WARNING"):
        cut_refs = index_samples(copy, "train", ["amputee"], allow_missing=True)
    assert [r.key for r in cut_refs] == [r.key for r in refs]  # the index's samples, all listed
    assert "are not in the shard (truncated?)" in caplog.text and shard.name in caplog.text
    samples = [A3DDataset(cut_refs)[i] for i in range(len(cut_refs))]
    lost = [s for s in samples if not s["ok"]]
    assert [s["ok"] for s in samples[: len(refs) // 2]] == [True] * (len(refs) // 2)
    assert len(lost) == len(refs) - len(refs) // 2 and all(str(shard) in s["error"] for s in lost)
    with pytest.raises(CorruptSamplesError, match="not in the shard"):
        CorruptCounter(len(cut_refs), max_fraction=0.1).add([(s["index"], s["error"]) for s in lost])
