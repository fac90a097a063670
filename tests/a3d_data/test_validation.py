"""The A3D validation gate passes a sound dataset and names what is wrong with a broken one.

The fixture writes a tiny dataset from the schema alone (synthesis/schema.py): every split and part,
random JPEG crops, and label files whose absent joints and keypoints follow from the class through
the amputation core. Each corruption test breaks one thing and expects the gate to fail on the
expectation that describes it.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from a3d_data.amputation import absent_coco_keypoints, head_labels_from_classes, zeroed_joint_mask
from a3d_data.synthesis.schema import (
    BETA_COLUMNS,
    CROP_SIZE,
    FOCAL_LENGTH,
    HEAD_COLUMNS,
    INDEX_COLUMNS,
    INDEX_FILE,
    PARTS,
    SHARD_COLUMNS,
    SHARDS_DIR,
    SHARDS_FILE,
    KeypointState,
)
from a3d_data.validation import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREADABLE,
    REPORT_HTML,
    REPORT_MARKDOWN,
    REPORT_METRICS,
    DatasetReadError,
    ValidateA3DParams,
    ValidationResult,
    main,
    validate_dataset,
)

AMPUTEE_CLASSES = list(range(12))
# (split, part) -> class of each sample. Balanced: every amputee class equally often, as many
# amputee as non-amputee samples per split, occlusion only in test.
BALANCED: dict[tuple[str, str], list[int]] = {
    ("train", "amputee"): AMPUTEE_CLASSES * 2,
    ("train", "non_amputee"): [12] * 24,
    ("val", "amputee"): AMPUTEE_CLASSES,
    ("val", "non_amputee"): [12] * 12,
    ("test", "amputee"): AMPUTEE_CLASSES,
    ("test", "non_amputee"): [12] * 12,
    ("test", "occlusion"): [12] * 6,
}
SAMPLES_PER_SHARD = 12
PARAMS = ValidateA3DParams(min_samples_per_split=12)


# --- a tiny dataset in the schema ------------------------------------------------------------------


def _rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(n, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    q[np.linalg.det(q) < 0, :, 0] *= -1  # proper rotations only
    return q.astype(np.float32)


def _jpeg(rng: np.random.Generator) -> bytes:
    ramp = np.linspace(0, 255, CROP_SIZE)
    flat = np.full((CROP_SIZE, CROP_SIZE), rng.uniform(0, 255))
    pixels = np.stack([*np.meshgrid(ramp, ramp), flat], axis=-1) + rng.normal(0, 8, (CROP_SIZE, CROP_SIZE, 3))
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(out, format="JPEG", quality=70)
    return out.getvalue()


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def _bitmask(flags: np.ndarray) -> int:
    return int(sum(1 << int(k) for k in np.flatnonzero(flags)))


def _make_sample(rng: np.random.Generator, class_index: int, part: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(index fields, label arrays) of one sample whose labels follow from its class."""
    heads = head_labels_from_classes(torch.tensor([class_index]))
    zeroed = zeroed_joint_mask(heads)
    absent = absent_coco_keypoints(zeroed)[0].numpy()
    state = rng.choice(
        [KeypointState.VISIBLE, KeypointState.OCCLUDED, KeypointState.OUTSIDE], p=[0.7, 0.2, 0.1], size=17
    )
    if part == "occlusion":
        state[9] = KeypointState.OCCLUDED  # the occluder hides the left wrist
    state[absent] = KeypointState.ABSENT
    state = state.astype(np.uint8)
    keypoints = rng.uniform(0, CROP_SIZE, size=(17, 2)).astype(np.float32)
    keypoints[state == KeypointState.OUTSIDE] += CROP_SIZE
    keypoints[absent] = 0.0
    rotmats = _rotations(rng, 24)
    rotmats[zeroed[0].numpy()] = 0.0
    arrays = {
        "rotmats": rotmats,
        "betas": np.clip(rng.normal(size=10), -3, 3).astype(np.float32),
        "cam_t": np.array([rng.normal(0, 0.1), rng.normal(0, 0.1), rng.uniform(20, 60)], dtype=np.float32),
        "focal": np.array(FOCAL_LENGTH, dtype=np.float32),
        "bbox_center": rng.uniform(100, 156, size=2).astype(np.float32),
        "bbox_scale": np.array(rng.uniform(0.9, 1.2), dtype=np.float32),
        "joints3d_smpl": rng.normal(size=(24, 3)).astype(np.float32),
        "joints3d_coco": rng.normal(size=(17, 3)).astype(np.float32),
        "keypoints2d": keypoints,
        "keypoint_state": state,
        "smpl_joint_absent": zeroed[0].numpy(),
        "head_labels": heads[0].numpy().astype(np.int64),
        "class_index": np.array(class_index, dtype=np.int64),
    }
    counts = {s: int((state == s).sum()) for s in KeypointState}
    fields = {
        "class_index": class_index,
        **{h: int(v) for h, v in zip(HEAD_COLUMNS, arrays["head_labels"], strict=True)},
        **{b: float(v) for b, v in zip(BETA_COLUMNS, arrays["betas"], strict=True)},
        "cam_tx": float(arrays["cam_t"][0]),
        "cam_ty": float(arrays["cam_t"][1]),
        "cam_tz": float(arrays["cam_t"][2]),
        "focal": float(arrays["focal"]),
        "bbox_center_x": float(arrays["bbox_center"][0]),
        "bbox_center_y": float(arrays["bbox_center"][1]),
        "bbox_scale": float(arrays["bbox_scale"]),
        "yaw_deg": float(rng.uniform(-180, 180)),
        "skin_tone": int(rng.integers(0, 6)),
        "num_visible": counts[KeypointState.VISIBLE],
        "num_occluded": counts[KeypointState.OCCLUDED],
        "num_absent": counts[KeypointState.ABSENT],
        "num_outside": counts[KeypointState.OUTSIDE],
        "coco_absent_mask": _bitmask(state == KeypointState.ABSENT),
        "coco_occluded_mask": _bitmask(state == KeypointState.OCCLUDED),
        "truncated": counts[KeypointState.OUTSIDE] > 0,
    }
    return fields, arrays


def _write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_dataset(root: Path, spec: dict[tuple[str, str], list[int]], seed: int = 0) -> Path:
    """Write index.parquet, shards.parquet and the tar shards of ``spec`` under ``root``."""
    rng = np.random.default_rng(seed)
    rows, shard_rows = [], []
    for (split, part), classes in spec.items():
        for first in range(0, len(classes), SAMPLES_PER_SHARD):
            shard = f"{SHARDS_DIR}/{split}/{part}-{first // SAMPLES_PER_SHARD:05d}.tar"
            members = []
            for i, class_index in enumerate(classes[first : first + SAMPLES_PER_SHARD], start=first):
                key = f"{split}-{part}-{i:05d}"
                fields, arrays = _make_sample(rng, class_index, part)
                image = _jpeg(rng)
                members += [(f"{key}.jpg", image), (f"{key}.npz", _npz(arrays))]
                rows.append({
                    "key": key, "split": split, "part": part, "shard": shard, "pose_id": f"pose-{split}-{part}-{i}",
                    "pose_source": "sampled", "activity": "standing", "background_id": f"bg-{split}-{i % 5}",
                    "image_bytes": len(image), **fields,
                })  # fmt: skip
            _write_tar(root / shard, members)
            shard_rows.append({
                "shard": shard, "split": split, "part": part, "num_samples": len(members) // 2,
                "sha256": _sha256(root / shard), "bytes": (root / shard).stat().st_size,
            })  # fmt: skip
    pd.DataFrame(rows)[list(INDEX_COLUMNS)].astype(INDEX_COLUMNS).to_parquet(root / INDEX_FILE)
    pd.DataFrame(shard_rows).astype(SHARD_COLUMNS).to_parquet(root / SHARDS_FILE)
    return root


@pytest.fixture(scope="module")
def balanced_dataset(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("a3d") / "dataset", BALANCED)


@pytest.fixture
def dataset(balanced_dataset, tmp_path) -> Path:
    """A private copy of the balanced dataset, free to corrupt."""
    return Path(shutil.copytree(balanced_dataset, tmp_path / "dataset"))


@pytest.fixture(scope="module")
def valid_result(balanced_dataset, tmp_path_factory) -> ValidationResult:
    return validate_dataset(balanced_dataset, PARAMS, tmp_path_factory.mktemp("report"))


def _validate(dataset: Path, params: ValidateA3DParams = PARAMS) -> ValidationResult:
    return validate_dataset(dataset, params, dataset.parent / "report")


# --- corruptions -----------------------------------------------------------------------------------
# Each breaks one thing, on its own sample, shard or column, and returns the culprit's name. They
# are applied together to one copy and validated once (GX is slow per run), and each must still be
# reported by its own expectation, naming its culprit.


def _edit_index(dataset: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    edit(pd.read_parquet(dataset / INDEX_FILE)).to_parquet(dataset / INDEX_FILE)


def _set(dataset: Path, key: str, column: str, value) -> str:
    def edit(index):
        index.loc[index["key"] == key, column] = value
        return index

    _edit_index(dataset, edit)
    return key


def _read_member(dataset: Path, shard: str, member: str) -> bytes:
    with tarfile.open(dataset / shard) as tar:
        return tar.extractfile(member).read()


def _replace_member(dataset: Path, shard: str, member: str, data: bytes) -> None:
    """Rewrite ``shard`` with new bytes for ``member`` and record the new checksum (and image
    size), as a synthesis that wrote bad data consistently would."""
    with tarfile.open(dataset / shard) as tar:
        members = [(m.name, data if m.name == member else tar.extractfile(m).read()) for m in tar]
    _write_tar(dataset / shard, members)
    shards = pd.read_parquet(dataset / SHARDS_FILE)
    row = shards["shard"] == shard
    shards.loc[row, "sha256"] = _sha256(dataset / shard)
    shards.loc[row, "bytes"] = (dataset / shard).stat().st_size
    shards.to_parquet(dataset / SHARDS_FILE)
    if member.endswith(".jpg"):
        _set(dataset, member.split(".")[0], "image_bytes", len(data))


TRAIN_AMPUTEES = f"{SHARDS_DIR}/train/amputee-00000.tar"  # keys train-amputee-00000..11, class = number


def absent_mask_of_the_other_hand(dataset: Path) -> str:
    # Class 3 (left hand) removes the left wrist, COCO 9; the index claims the right wrist, COCO 10.
    return _set(dataset, "train-amputee-00003", "coco_absent_mask", 1 << 10)


def nan_beta(dataset: Path) -> str:
    return _set(dataset, "train-amputee-00004", "beta_3", float("nan"))


def class_out_of_range(dataset: Path) -> str:
    return _set(dataset, "train-amputee-00005", "class_index", 13)


def pose_shared_by_train_and_test(dataset: Path) -> str:
    return _set(dataset, "test-amputee-00000", "pose_id", "pose-train-amputee-6")


def sequence_split_across_train_and_test(dataset: Path) -> str:
    # Two frames of one clip: different pose ids, one pose group (the id before "#").
    _set(dataset, "test-amputee-00001", "pose_id", "cmu/walk_01#40")
    return _set(dataset, "train-amputee-00009", "pose_id", "cmu/walk_01#12")


def labels_that_contradict_the_class(dataset: Path) -> str:
    key = "train-amputee-00007"
    with np.load(io.BytesIO(_read_member(dataset, TRAIN_AMPUTEES, f"{key}.npz"))) as npz:
        arrays = dict(npz)
    arrays["smpl_joint_absent"] = np.zeros(24, dtype=bool)  # a left-knee amputee with every joint
    _replace_member(dataset, TRAIN_AMPUTEES, f"{key}.npz", _npz(arrays))
    return key


def undecodable_jpeg(dataset: Path) -> str:
    key = "train-amputee-00008"
    _replace_member(dataset, TRAIN_AMPUTEES, f"{key}.jpg", b"\xff\xd8\xff\xe0 not really a JPEG")
    return key


def yaw_column_dropped(dataset: Path) -> str:
    _edit_index(dataset, lambda index: index.drop(columns="yaw_deg"))
    return "yaw_deg"


def class_index_stored_as_float(dataset: Path) -> str:
    _edit_index(dataset, lambda index: index.astype({"class_index": "float64"}))
    return "class_index"


def truncated_shard(dataset: Path) -> str:
    shard = f"{SHARDS_DIR}/val/amputee-00000.tar"
    data = (dataset / shard).read_bytes()
    (dataset / shard).write_bytes(data[: len(data) // 2])
    return shard


def garbled_shard(dataset: Path) -> str:
    shard = f"{SHARDS_DIR}/val/non_amputee-00000.tar"
    data = bytearray((dataset / shard).read_bytes())
    data[5000:5100] = bytes(100)  # same size, different content
    (dataset / shard).write_bytes(bytes(data))
    return shard


def missing_shard_file(dataset: Path) -> str:
    shard = f"{SHARDS_DIR}/test/occlusion-00000.tar"
    (dataset / shard).unlink()
    return shard


def shard_not_listed(dataset: Path) -> str:
    shard = f"{SHARDS_DIR}/train/non_amputee-00001.tar"
    shards = pd.read_parquet(dataset / SHARDS_FILE)
    shards[shards["shard"] != shard].to_parquet(dataset / SHARDS_FILE)
    return shard


CORRUPTIONS = [
    (absent_mask_of_the_other_hand, "index.absent_mask_matches_class"),
    (nan_beta, "index.no_nulls"),
    (class_out_of_range, "index.class_index_range"),
    (pose_shared_by_train_and_test, "index.pose_in_one_split"),
    (sequence_split_across_train_and_test, "index.pose_group_in_one_split"),
    (labels_that_contradict_the_class, "index.labels_valid"),
    (undecodable_jpeg, "shards.failed_images_within_limit"),
    (yaw_column_dropped, "columns.present"),
    (class_index_stored_as_float, "columns.dtype"),
    (truncated_shard, "shards.checksum_matches"),
    (truncated_shard, "shards.tar_readable"),
    (garbled_shard, "shards.checksum_matches"),
    (missing_shard_file, "shards.file_exists"),
    (shard_not_listed, "shards.listed"),
    (shard_not_listed, "index.shard_listed"),
]


@pytest.fixture(scope="module")
def corrupted(balanced_dataset, tmp_path_factory) -> tuple[ValidationResult, dict]:
    """(result, culprit of each corruption) for a copy of the dataset with every corruption."""
    dataset = Path(shutil.copytree(balanced_dataset, tmp_path_factory.mktemp("corrupted") / "dataset"))
    culprits = {corrupt: corrupt(dataset) for corrupt in dict.fromkeys(c for c, _ in CORRUPTIONS)}
    return _validate(dataset), culprits


@pytest.mark.parametrize(
    "corrupt, failed_check", CORRUPTIONS, ids=[f"{c.__name__}-{check}" for c, check in CORRUPTIONS]
)
def test_each_corruption_fails_the_expectation_that_describes_it(corrupted, corrupt, failed_check):
    result, culprits = corrupted
    assert not result.success
    assert failed_check in result.failed_checks
    # The failing rows name the corrupted sample, shard or column.
    assert culprits[corrupt] in json.dumps(result.outcome(failed_check).examples)


def test_a_valid_dataset_passes_every_expectation(valid_result):
    assert valid_result.failed_checks == ()
    assert valid_result.success
    assert {o.suite for o in valid_result.outcomes} == {"columns", "index", "shards", "splits", "classes"}


def test_the_metrics_describe_the_dataset(valid_result):
    metrics = valid_result.metrics
    assert metrics["samples"] == sum(len(c) for c in BALANCED.values())
    assert metrics["samples_test_occlusion"] == 6
    assert metrics["amputee_fraction_train"] == 0.5
    assert metrics["class_share_val_07"] == pytest.approx(1 / 12, abs=1e-6)
    assert metrics["images_checked"] == metrics["samples"]
    assert metrics["images_failed"] == metrics["labels_failed"] == metrics["expectations_failed"] == 0


def test_derived_columns_restate_the_class(valid_result):
    index = valid_result.statistics.index
    row = index.loc[index["key"] == "train-amputee-00003"].iloc[0]  # class 3: left hand
    assert row["expected_absent_mask"] == 1 << 9  # left hand: the left wrist
    assert row["expected_head_left_arm"] == 0  # distal level
    assert row["pose_id_split_count"] == 1
    assert set(index.loc[index["part"] == "occlusion", "is_amputee"]) == {False}


def test_the_report_files_are_written(valid_result):
    report_dir = valid_result.report_dir
    assert "A3D validation: PASSED" in (report_dir / REPORT_MARKDOWN).read_text()
    assert '<h1 class="PASSED">' in (report_dir / REPORT_HTML).read_text()
    metrics = json.loads((report_dir / REPORT_METRICS).read_text())
    assert metrics["success"] is True
    # Flat, so DVC can show and diff it.
    assert all(isinstance(v, (bool, int, float)) for v in metrics.values())


def test_the_report_names_the_failed_expectations_and_the_culprits(corrupted):
    result, culprits = corrupted
    markdown = (result.report_dir / REPORT_MARKDOWN).read_text()
    page = (result.report_dir / REPORT_HTML).read_text()
    assert "A3D validation: FAILED" in markdown
    for check in ("index.absent_mask_matches_class", "shards.checksum_matches", "columns.present"):
        assert check in markdown and check in page
    assert culprits[absent_mask_of_the_other_hand] in markdown
    assert "undecodable" in markdown  # the image that failed, with the reason
    metrics = json.loads((result.report_dir / REPORT_METRICS).read_text())
    assert metrics["success"] is False
    assert metrics["expectations_failed"] == len(result.failed_checks)
    assert metrics["shards_missing"] == 1 and metrics["images_failed"] == 1


def test_class_imbalance_beyond_the_tolerance_fails(tmp_path):
    skewed = dict(BALANCED)
    skewed[("train", "amputee")] = [0] * 6 + AMPUTEE_CLASSES[1:] * 2  # class 0: 6 of 28 instead of 1/12
    result = _validate(write_dataset(tmp_path / "dataset", skewed))
    assert "classes.class_balance" in result.failed_checks
    assert {"split": "train", "class_index": 0} in [
        {k: e[k] for k in ("split", "class_index")} for e in result.outcome("classes.class_balance").examples
    ]


def test_a_test_split_without_occlusion_fails(tmp_path):
    spec = {k: v for k, v in BALANCED.items() if k != ("test", "occlusion")}
    result = _validate(write_dataset(tmp_path / "dataset", spec))
    assert result.failed_checks == ("splits.has_part.occlusion",)


def test_failed_images_within_the_allowance_pass(dataset):
    undecodable_jpeg(dataset)
    result = _validate(dataset, PARAMS.model_copy(update={"max_failed_images": 1}))
    assert result.success
    assert result.metrics["images_failed"] == 1


def test_a_sample_of_images_is_decoded_per_shard(dataset):
    result = _validate(dataset, PARAMS.model_copy(update={"check_images": "sample", "images_per_shard": 2}))
    assert result.success
    assert result.metrics["images_checked"] == 2 * result.metrics["shards"]


def test_an_unreadable_dataset_is_an_error_not_a_verdict(tmp_path):
    with pytest.raises(DatasetReadError, match="index.parquet: missing"):
        validate_dataset(tmp_path, PARAMS, tmp_path / "report")
    assert main(tmp_path, PARAMS, tmp_path / "report") == EXIT_UNREADABLE
    assert not (tmp_path / "report").exists()


def test_main_returns_the_exit_code(dataset):
    assert main(dataset, PARAMS, dataset.parent / "report") == EXIT_OK
    missing_shard_file(dataset)
    assert main(dataset, PARAMS, dataset.parent / "report") == EXIT_FAILED


def test_params_reject_unknown_splits_and_keys():
    with pytest.raises(ValueError, match="unknown split 'training'"):
        ValidateA3DParams(required_parts={"training": ("amputee",)})
    with pytest.raises(ValueError, match="Extra inputs"):
        ValidateA3DParams(amputee_share=0.5)
    assert set(ValidateA3DParams().required_parts["test"]) == set(PARTS)
