"""The synthesize stage end to end on a tiny dataset: shards, index, determinism, executors."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from a3d_data.amputation import absent_coco_keypoints, head_labels_from_classes, zeroed_joint_mask
from a3d_data.synthesis.params import PartSizes, SynthesizeParams
from a3d_data.synthesis.run import plan_shards, run_synthesis
from a3d_data.synthesis.schema import (
    INDEX_COLUMNS,
    INDEX_FILE,
    LABEL_ARRAYS,
    SHARD_COLUMNS,
    SHARDS_FILE,
    KeypointState,
)
from a3d_data.synthesis.shards import file_sha256

TINY = {
    "train": PartSizes(amputee=12, non_amputee=12),
    "val": PartSizes(amputee=4, non_amputee=4, occlusion=4),
    "test": PartSizes(amputee=6, non_amputee=6, occlusion=6),
}


def tiny_params(**overrides) -> SynthesizeParams:
    values = {"sizes": TINY, "shard_size": 6, "batch_size": 4, "workers": 1, "output": Path("a3d")}
    return SynthesizeParams(**(values | overrides))


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synth")
    summary = run_synthesis(tiny_params(), root)
    return root / "a3d", summary


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}


def test_the_dataset_has_every_planned_sample_in_checksummed_shards(tiny_dataset):
    dataset, summary = tiny_dataset
    index = pd.read_parquet(dataset / INDEX_FILE)
    shards = pd.read_parquet(dataset / SHARDS_FILE)
    assert list(index.columns) == list(INDEX_COLUMNS) and list(shards.columns) == list(SHARD_COLUMNS)
    assert summary["samples"] == len(index) == 54
    assert index["key"].is_unique
    assert len(shards) == len(plan_shards(tiny_params()))
    for row in shards.itertuples():
        assert file_sha256(dataset / row.shard) == row.sha256
        assert len(_members(dataset / row.shard)) == 2 * row.num_samples
    counts = index.groupby(["split", "part"]).size().to_dict()
    assert counts == {("train", "amputee"): 12, ("train", "non_amputee"): 12, ("val", "amputee"): 4,
                      ("val", "non_amputee"): 4, ("val", "occlusion"): 4, ("test", "amputee"): 6,
                      ("test", "non_amputee"): 6, ("test", "occlusion"): 6}  # fmt: skip


def test_each_sample_is_a_256_jpeg_with_labels_that_agree_with_the_index(tiny_dataset):
    dataset, _ = tiny_dataset
    index = pd.read_parquet(dataset / INDEX_FILE).set_index("key")
    shard = index["shard"].iloc[0]
    members = _members(dataset / shard)
    for key in index.index[index["shard"] == shard]:
        image = Image.open(io.BytesIO(members[f"{key}.jpg"]))
        assert image.size == (256, 256) and image.mode == "RGB"
        with np.load(io.BytesIO(members[f"{key}.npz"])) as labels:
            for name, (shape, dtype) in LABEL_ARRAYS.items():
                assert labels[name].shape == shape and labels[name].dtype == np.dtype(dtype), name
            assert int(labels["class_index"]) == index.loc[key, "class_index"]
            np.testing.assert_allclose(labels["cam_t"][2], index.loc[key, "cam_tz"], rtol=1e-6)


def test_amputated_keypoints_are_absent_at_the_origin_and_the_limb_joints_are_zero(tiny_dataset):
    dataset, _ = tiny_dataset
    index = pd.read_parquet(dataset / INDEX_FILE)
    amputees = index[index["part"] == "amputee"]
    assert set(amputees["class_index"]) <= set(range(12))
    for shard, rows in amputees.groupby("shard"):
        members = _members(dataset / shard)
        for key in rows["key"]:
            with np.load(io.BytesIO(members[f"{key}.npz"])) as labels:
                expected = absent_coco_keypoints(zeroed_joint_mask(head_labels_from_classes(
                    __import__("torch").tensor([int(labels["class_index"])]))))[0].numpy()  # fmt: skip
                absent = labels["keypoint_state"] == KeypointState.ABSENT
                np.testing.assert_array_equal(absent, expected)
                assert (labels["keypoints2d"][absent] == 0).all()
                zeroed = labels["smpl_joint_absent"]
                assert (labels["rotmats"][zeroed] == 0).all() and zeroed.any()


def test_non_amputee_parts_are_class_12_and_the_occlusion_part_hides_keypoints(tiny_dataset):
    dataset, _ = tiny_dataset
    index = pd.read_parquet(dataset / INDEX_FILE)
    intact = index[index["part"] != "amputee"]
    assert (intact["class_index"] == 12).all() and (intact["num_absent"] == 0).all()
    occluded = index[index["part"] == "occlusion"]["num_occluded"].mean()
    plain = index[index["part"] == "non_amputee"]["num_occluded"].mean()
    assert occluded > plain  # the occluders hide keypoints beyond self-occlusion


def test_splits_share_no_pose_and_no_background(tiny_dataset):
    dataset, _ = tiny_dataset
    index = pd.read_parquet(dataset / INDEX_FILE)
    for column in ("pose_id", "background_id"):
        assert (index.groupby(column)["split"].nunique() == 1).all(), column


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not(tiny_dataset, tmp_path):
    dataset, _ = tiny_dataset
    sizes = {"test": PartSizes(amputee=6, non_amputee=6, occlusion=6)}
    small = tiny_params(sizes=sizes)
    run_synthesis(small, tmp_path)
    again = pd.read_parquet(tmp_path / "a3d" / SHARDS_FILE).set_index("shard")["sha256"]
    first = pd.read_parquet(dataset / SHARDS_FILE).set_index("shard")["sha256"]
    assert (again == first.loc[again.index]).all()
    run_synthesis(tiny_params(sizes=sizes, seed=1), tmp_path / "other")
    other = pd.read_parquet(tmp_path / "other" / "a3d" / SHARDS_FILE).set_index("shard")["sha256"]
    assert (other != again).all()


def test_a_dask_cluster_produces_the_same_shards_as_local_processes(tiny_dataset, tmp_path):
    dataset, _ = tiny_dataset
    sizes = {"test": PartSizes(amputee=6, non_amputee=6, occlusion=6)}
    summary = run_synthesis(tiny_params(sizes=sizes, workers=2, dask_scheduler="local"), tmp_path)
    assert summary["executor"] == "local"
    on_dask = pd.read_parquet(tmp_path / "a3d" / SHARDS_FILE).set_index("shard")["sha256"]
    first = pd.read_parquet(dataset / SHARDS_FILE).set_index("shard")["sha256"]
    assert (on_dask == first.loc[on_dask.index]).all()


def test_a_killed_synthesis_leaves_no_index_and_no_partial_shard(tmp_path, monkeypatch):
    from a3d_data.synthesis import generate

    sizes = {"test": PartSizes(amputee=6, non_amputee=6, occlusion=6)}
    run_synthesis(tiny_params(sizes=sizes), tmp_path)  # a complete earlier dataset
    real = generate.synthesize_batch
    calls = []

    def dies_in_the_second_batch(*args, **kwargs):  # the first shard is half written by then
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(generate, "synthesize_batch", dies_in_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        run_synthesis(tiny_params(sizes=sizes, seed=5), tmp_path)
    dataset = tmp_path / "a3d"
    assert not (dataset / INDEX_FILE).exists() and not (dataset / SHARDS_FILE).exists()
    assert not [p for p in dataset.rglob("*") if ".tmp" in p.name]


def test_a_single_file_of_hmr_fits_spreads_over_the_splits_fit_by_fit(tmp_path):
    rotations = np.tile(np.eye(3, dtype=np.float32), (200, 24, 1, 1))
    rotations[:, 0] = np.diag([1.0, -1.0, -1.0])  # upright in the camera frame
    np.savez(tmp_path / "fits.npz", global_orient=rotations[:, :1], body_pose=rotations[:, 1:],
             betas=np.zeros((200, 10), np.float32))  # fmt: skip
    from a3d_data.poses import PoseParams

    params = tiny_params(
        sizes={
            "train": PartSizes(amputee=4, non_amputee=4),
            "test": PartSizes(amputee=2, non_amputee=2, occlusion=2),
        },
        shard_size=4,
        poses=PoseParams(source="hmr", files=["fits.npz"]),
    )
    run_synthesis(params, tmp_path)
    index = pd.read_parquet(tmp_path / "a3d" / INDEX_FILE)
    assert (index["pose_source"] == "hmr").all()
    assert (index.groupby("pose_id")["split"].nunique() == 1).all()


def test_a_split_without_file_poses_is_refused_before_any_work(tmp_path):
    from a3d_data.poses import PoseFileError, PoseParams

    clip = tmp_path / "clip.npz"
    np.savez(clip, poses=np.zeros((30, 72), np.float32), betas=np.zeros(10, np.float32))
    params = tiny_params(poses=PoseParams(source="amass", files=["clip.npz"]))  # one sequence: one split
    with pytest.raises(PoseFileError, match=r"synthesize.poses.files: .* would get none"):
        run_synthesis(params, tmp_path)
    assert not (tmp_path / "a3d").exists()
