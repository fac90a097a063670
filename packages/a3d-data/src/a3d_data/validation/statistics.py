"""What the A3D validation gate measures, as dataframes that expectations can test.

:func:`collect_statistics` reads a dataset folder laid out as :mod:`a3d_data.synthesis.schema`
describes, opens every shard (recomputing its sha256, listing its members, loading every label
file and decoding all or a sample of the JPEGs) and returns four tables:

- ``index``: index.parquet as read, plus derived columns (:data:`DERIVED_INDEX_COLUMNS`) that
  restate cross-row and cross-file facts as per-row values (what the class implies, how many splits
  a pose appears in, whether the sample's members are in its shard and its labels are sound);
- ``shards``: one row per shard listed in shards.parquet, named by the index or found on disk;
- ``splits``: one row per split (sample counts per part, amputee fraction);
- ``classes``: one row per split and amputee class 0-11 (count, share, deviation from uniform).

Nothing here decides pass or fail; :mod:`a3d_data.validation.suite` does.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import tarfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from tqdm import tqdm

from a3d_data.synthesis.schema import (
    BETA_COLUMNS,
    CROP_SIZE,
    HEAD_COLUMNS,
    IMAGE_EXTENSION,
    INDEX_COLUMNS,
    INDEX_FILE,
    LABEL_ARRAYS,
    LABELS_EXTENSION,
    PARTS,
    SHARD_COLUMNS,
    SHARDS_DIR,
    SHARDS_FILE,
    SPLITS,
    KeypointState,
)
from a3d_data.synthesis.splits import pose_group
from a3d_data.validation.params import ValidateA3DParams

log = logging.getLogger(__name__)

# Mirrors a3d_data.amputation.table without importing it (its package imports torch).
NUM_AMPUTEE_CLASSES = 12  # classes 0-11
NON_AMPUTEE_CLASS = 12
# Problems listed per shard in the shard table; the rest are counted.
MAX_LISTED_PROBLEMS = 5
HASH_CHUNK = 1 << 20
ROTATION_TOLERANCE = 1e-3
# float32 labels are stored as float64 in the index; compare at float32 precision.
LABEL_RTOL = 1e-5
LABEL_ATOL = 1e-6

SHARD_PATH_PATTERN = re.compile(rf"^{SHARDS_DIR}/(?P<split>[^/]+)/(?P<part>[^/]+)-\d{{5}}\.tar$")

UNCHECKED = "unchecked"
MISSING_MEMBER = "missing from shard"

# Derived index columns, with what each holds.
DERIVED_INDEX_COLUMNS: dict[str, str] = {
    "null_columns": "the schema columns that are null or NaN in the row, comma-separated",
    "beta_abs_max": "largest |beta_i| of the row",
    "expected_absent_mask": "COCO absent-keypoint bitmask the class implies (-1: class unknown)",
    **{f"expected_{c}": f"{c} the class implies (-1: class unknown)" for c in HEAD_COLUMNS},
    "absent_mask_bits": "number of bits set in coco_absent_mask",
    "occluded_mask_bits": "number of bits set in coco_occluded_mask",
    "absent_occluded_overlap": "keypoints marked both absent and occluded",
    "truncated_consistent": "False when a keypoint is outside the crop but truncated is False",
    "is_amputee": "class_index in 0..11",
    "pose_id_split_count": "number of splits the row's pose_id appears in",
    "pose_group_split_count": "number of splits the row's pose group (synthesis.splits.pose_group) is in",
    "background_split_count": "number of splits the row's background_id appears in",
    "shard_listed": "the row's shard is listed in shards.parquet",
    "shard_matches_split_part": "the row's shard is shards/<split>/<part>-NNNNN.tar of its split/part",
    "shard_exists": "the row's shard file exists",
    "in_shard": "both <key>.jpg and <key>.npz are members of the row's shard",
    "image_member_bytes": "size of the <key>.jpg member (-1: missing)",
    "image_problem": "'' decoded fine, 'unchecked' not in the sample, else what went wrong",
    "label_problem": "'' when the <key>.npz is sound and agrees with the class and the index",
}


class DatasetReadError(ValueError):
    """The dataset folder cannot be read at all (no index, unreadable parquet)."""


@dataclass(frozen=True)
class ClassTables:
    """What each AJAHR class 0..12 implies, from :mod:`a3d_data.amputation`."""

    heads: np.ndarray  # (13, 4) int64 per-head labels
    zeroed: np.ndarray  # (13, 24) bool absent SMPL joints
    absent_coco: np.ndarray  # (13, 17) bool absent COCO keypoints
    absent_mask: np.ndarray  # (13,) int64 bitmask of absent_coco


def class_tables() -> ClassTables:
    """Per-class labels from the amputation core (the single source of truth for them)."""
    import torch

    from a3d_data.amputation import (
        NUM_CLASSES,
        absent_coco_keypoints,
        head_labels_from_classes,
        zeroed_joint_mask,
    )

    heads = head_labels_from_classes(torch.arange(NUM_CLASSES))
    zeroed = zeroed_joint_mask(heads)
    absent = absent_coco_keypoints(zeroed).numpy()
    return ClassTables(
        heads=heads.numpy().astype(np.int64),
        zeroed=zeroed.numpy(),
        absent_coco=absent,
        absent_mask=keypoint_bitmask(absent),
    )


def keypoint_bitmask(flags: np.ndarray) -> np.ndarray:
    """Bitmask (...,) int64 of keypoint flags (..., 17): bit k set when keypoint k is flagged."""
    weights = np.left_shift(np.int64(1), np.arange(flags.shape[-1], dtype=np.int64))
    return (flags.astype(np.int64) * weights).sum(axis=-1)


@dataclass(frozen=True)
class DatasetStatistics:
    """The tables the validation suites test (see the module docstring)."""

    dataset_dir: Path
    columns: pd.DataFrame
    index: pd.DataFrame
    shards: pd.DataFrame
    splits: pd.DataFrame
    classes: pd.DataFrame

    @property
    def image_failures(self) -> pd.DataFrame:
        """Samples whose JPEG was checked and failed: key, shard, image_problem."""
        frame = self.index
        if "image_problem" not in frame:
            return pd.DataFrame(columns=["key", "shard", "image_problem"])
        bad = ~frame["image_problem"].isin(["", UNCHECKED])
        return frame.loc[bad, [c for c in ("key", "shard", "image_problem") if c in frame]]


@dataclass
class _SampleScan:
    image_bytes: int = -1
    has_labels: bool = False
    image_problem: str = MISSING_MEMBER
    label_problem: str = MISSING_MEMBER


@dataclass
class _ShardScan:
    exists: bool = False
    bytes_actual: int = -1
    sha256_actual: str = ""
    tar_problem: str = ""
    members: int = 0
    unexpected_members: int = 0
    images_checked: int = 0
    images_decodable: int = 0
    labels_checked: int = 0
    labels_valid: int = 0
    samples: dict[str, _SampleScan] = field(default_factory=dict)

    @property
    def samples_in_tar(self) -> int:
        return sum(s.image_bytes >= 0 and s.has_labels for s in self.samples.values())

    def failures(self, attribute: str) -> str:
        found = [
            f"{key}: {getattr(s, attribute)}"
            for key, s in self.samples.items()
            if getattr(s, attribute) not in ("", UNCHECKED, MISSING_MEMBER)
        ]
        more = f" (+{len(found) - MAX_LISTED_PROBLEMS} more)" if len(found) > MAX_LISTED_PROBLEMS else ""
        return "; ".join(found[:MAX_LISTED_PROBLEMS]) + more


def _read_parquet(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetReadError(f"{path}: missing (expected the A3D {path.name} written by the synthesis)")
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several unrelated types for a damaged file
        raise DatasetReadError(f"{path}: cannot read as parquet ({err})") from err


def sha256_of(path: Path) -> tuple[str, int]:
    """Hex sha256 and size in bytes of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _image_problem(data: bytes) -> str:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # open() reads only the header; load() decodes every pixel
            if image.format != "JPEG":
                return f"not a JPEG ({image.format})"
            if image.mode != "RGB":
                return f"mode {image.mode}, expected RGB"
            if image.size != (CROP_SIZE, CROP_SIZE):
                return f"size {image.size[0]}x{image.size[1]}, expected {CROP_SIZE}x{CROP_SIZE}"
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError... for bad data
        return f"undecodable: {type(err).__name__}: {err}"
    return ""


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _index_mismatches(arrays: Mapping[str, np.ndarray], row: Mapping[str, object]) -> list[str]:
    """Label arrays that disagree with the sample's index row (columns missing from the index are skipped)."""
    state = arrays["keypoint_state"]
    counts = np.array([(state == s).sum() for s in KeypointState])  # in the enum's order, as the columns
    masks = np.array([keypoint_bitmask(state == s) for s in (KeypointState.ABSENT, KeypointState.OCCLUDED)])
    pairs: list[tuple[str, tuple[str, ...], np.ndarray]] = [
        ("class_index", ("class_index",), arrays["class_index"].reshape(1)),
        ("head_labels", HEAD_COLUMNS, arrays["head_labels"]),
        ("betas", BETA_COLUMNS, arrays["betas"]),
        ("cam_t", ("cam_tx", "cam_ty", "cam_tz"), arrays["cam_t"]),
        ("focal", ("focal",), arrays["focal"].reshape(1)),
        ("bbox_center", ("bbox_center_x", "bbox_center_y"), arrays["bbox_center"]),
        ("bbox_scale", ("bbox_scale",), arrays["bbox_scale"].reshape(1)),
        ("keypoint_state counts", ("num_visible", "num_occluded", "num_absent", "num_outside"), counts),
        ("keypoint_state masks", ("coco_absent_mask", "coco_occluded_mask"), masks),
    ]
    problems = []
    for name, columns, stored in pairs:
        if not all(c in row for c in columns):
            continue
        indexed = np.array([row[c] if _is_number(row[c]) else np.nan for c in columns], dtype=np.float64)
        close = np.isclose(indexed, stored.astype(np.float64), rtol=LABEL_RTOL, atol=LABEL_ATOL)
        if not close.all():
            shown = [
                f"{columns[i]} {stored[i].item():.6g} vs {indexed[i]:.6g}" for i in np.flatnonzero(~close)
            ]
            problems.append(f"{name} differ from the index (npz vs index: {', '.join(shown[:3])})")
    return problems


def label_problems(
    arrays: Mapping[str, np.ndarray], row: Mapping[str, object], tables: ClassTables
) -> list[str]:
    """What is wrong with one sample's label arrays: shapes and dtypes (LABEL_ARRAYS), finite
    values, agreement with the class (heads, absent joints, zeroed rotations, absent keypoints at
    (0, 0)) and with the index row. Empty when sound."""
    missing = [name for name in LABEL_ARRAYS if name not in arrays]
    if missing:
        return [f"missing arrays {missing}"]
    problems = []
    for name, (shape, dtype) in LABEL_ARRAYS.items():
        array = arrays[name]
        if array.shape != shape or array.dtype != np.dtype(dtype):
            problems.append(f"{name}: {array.dtype}{list(array.shape)}, expected {dtype}{list(shape)}")
    if problems:
        return problems  # the checks below index the arrays by their schema shapes
    not_finite = [n for n, a in arrays.items() if a.dtype.kind == "f" and not np.isfinite(a).all()]
    if not_finite:
        problems.append(f"non-finite values in {not_finite}")
    class_index = int(arrays["class_index"])
    if not 0 <= class_index <= NON_AMPUTEE_CLASS:
        return [*problems, f"class_index {class_index} outside 0..{NON_AMPUTEE_CLASS}"]
    absent_joints = tables.zeroed[class_index]
    if not np.array_equal(arrays["head_labels"], tables.heads[class_index]):
        problems.append(f"head_labels {arrays['head_labels'].tolist()} do not match class {class_index}")
    if not np.array_equal(arrays["smpl_joint_absent"], absent_joints):
        problems.append(f"smpl_joint_absent does not match class {class_index}")
    rotmats = arrays["rotmats"].astype(np.float64)
    if np.any(rotmats[absent_joints] != 0.0):
        problems.append("rotmats not zero on absent joints")
    present = rotmats[~absent_joints]
    if not_finite == [] and present.size:
        orthogonality = np.abs(present @ present.transpose(0, 2, 1) - np.eye(3)).max()
        if orthogonality > ROTATION_TOLERANCE or np.any(np.linalg.det(present) < 0):
            problems.append("rotmats of present joints are not rotations")
    state = arrays["keypoint_state"]
    if state.max() > max(KeypointState):
        problems.append(f"keypoint_state values outside 0..{int(max(KeypointState))}")
    absent_keypoints = state == KeypointState.ABSENT
    if not np.array_equal(absent_keypoints, tables.absent_coco[class_index]):
        problems.append(
            f"absent keypoints {np.flatnonzero(absent_keypoints).tolist()} do not match class "
            f"{class_index} ({np.flatnonzero(tables.absent_coco[class_index]).tolist()})"
        )
    if np.any(arrays["keypoints2d"][absent_keypoints] != 0.0):
        problems.append("absent keypoints not at (0, 0)")
    return problems + _index_mismatches(arrays, row)


def _load_npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _sample_keys(shard: str, keys: list[str], params: ValidateA3DParams) -> set[str]:
    if params.check_images == "all" or len(keys) <= params.images_per_shard:
        return set(keys)
    # Seeded by the shard's name too, so each shard's sample is stable across runs and machines.
    rng = np.random.default_rng([params.sample_seed, zlib.crc32(shard.encode())])
    chosen = rng.choice(len(keys), size=params.images_per_shard, replace=False)
    ordered = sorted(keys)
    return {ordered[i] for i in chosen}


def _inside(dataset_dir: Path, shard: str) -> Path | None:
    relative = PurePosixPath(shard)
    if relative.is_absolute() or ".." in relative.parts:
        return None
    return dataset_dir / relative


def scan_shard(
    dataset_dir: Path,
    shard: str,
    rows: Mapping[str, Mapping[str, object]],
    tables: ClassTables,
    params: ValidateA3DParams,
) -> _ShardScan:
    """Hash one shard, list its members, load every label file and decode the chosen JPEGs.

    ``rows`` maps each key the index puts in this shard to its index row.
    """
    scan = _ShardScan(samples={key: _SampleScan() for key in rows})
    path = _inside(dataset_dir, shard)
    if path is None:
        scan.tar_problem = "path outside the dataset folder"
        return scan
    if not path.is_file():
        scan.tar_problem = "file missing"
        return scan
    scan.exists = True
    scan.sha256_actual, scan.bytes_actual = sha256_of(path)
    check_images = _sample_keys(shard, list(rows), params)
    seen: set[str] = set()
    try:
        with tarfile.open(path, mode="r:") as tar:
            for info in tar:
                scan.members += 1
                # webdataset's rule: the key is the member name up to its first dot.
                key, _, extension = info.name.partition(".")
                if not info.isfile() or key not in rows or info.name in seen:
                    scan.unexpected_members += 1
                    continue
                seen.add(info.name)
                sample = scan.samples[key]
                if extension == IMAGE_EXTENSION:
                    sample.image_bytes = info.size
                    sample.image_problem = UNCHECKED
                    if key in check_images:
                        sample.image_problem = _image_problem(tar.extractfile(info).read())
                        scan.images_checked += 1
                        scan.images_decodable += sample.image_problem == ""
                elif extension == LABELS_EXTENSION:
                    sample.has_labels = True
                    scan.labels_checked += 1
                    data = tar.extractfile(info).read()
                    try:
                        arrays = _load_npz(data)
                    except Exception as err:  # numpy raises ValueError, zipfile.BadZipFile, ...
                        sample.label_problem = f"unreadable npz: {type(err).__name__}: {err}"
                    else:
                        sample.label_problem = "; ".join(label_problems(arrays, rows[key], tables))
                    scan.labels_valid += sample.label_problem == ""
                else:
                    scan.unexpected_members += 1
    except (tarfile.TarError, OSError, EOFError) as err:
        scan.tar_problem = f"unreadable tar after {scan.members} members: {type(err).__name__}: {err}"
    return scan


def dtype_name(dtype: object) -> str:
    """The schema's name for a column dtype: every pandas string dtype is "string"."""
    return "string" if isinstance(dtype, pd.StringDtype) else str(dtype)


def column_table(files: Mapping[str, tuple[pd.DataFrame, Mapping[str, str]]]) -> pd.DataFrame:
    """One row per schema column of each file: present, dtype as read, dtype expected, null count."""
    rows = []
    for file, (frame, schema) in files.items():
        for column, expected in schema.items():
            present = column in frame
            rows.append(
                {
                    "file": file,
                    "column": column,
                    "present": present,
                    "dtype": dtype_name(frame[column].dtype) if present else "",
                    "expected_dtype": expected,
                    "nulls": int(frame[column].isna().sum()) if present else 0,
                }
            )
    return pd.DataFrame(rows).astype(
        {"file": "str", "column": "str", "dtype": "str", "expected_dtype": "str"}
    )


def null_columns(frame: pd.DataFrame, schema: Mapping[str, str]) -> pd.Series:
    """Per row, the schema columns that are null or NaN there, comma-separated ("" when none)."""
    nulls = frame[[c for c in schema if c in frame]].isna()
    text = pd.Series("", index=frame.index, dtype="str")
    bad = nulls.any(axis=1)
    if bad.any():
        text[bad] = nulls[bad].apply(lambda row: ",".join(row.index[row]), axis=1)
    return text


def _column(frame: pd.DataFrame, name: str, default: object) -> pd.Series:
    return frame[name] if name in frame else pd.Series(default, index=frame.index)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _valid_class(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(valid, class as int with 0 where invalid) for the index's class_index column."""
    values = pd.to_numeric(_column(frame, "class_index", np.nan), errors="coerce").astype("float64")
    valid = values.between(0, NON_AMPUTEE_CLASS) & (values == values.round())
    return valid, values.where(valid, 0).astype(np.int64)


def _popcount(series: pd.Series) -> pd.Series:
    values = pd.to_numeric(series, errors="coerce").fillna(0).astype(np.int64).clip(lower=0)
    return pd.Series(np.bitwise_count(values.to_numpy()).astype(np.int64), index=series.index)


def _splits_per_value(
    frame: pd.DataFrame, column: str, grouping: Callable[[str], str] | None = None
) -> pd.Series:
    """Per row, the number of splits its value of ``column`` appears in; with ``grouping``, values
    are mapped to their group first (``"seq#12"`` and ``"seq#13"`` are one sequence)."""
    if column not in frame or "split" not in frame:
        return pd.Series(0, index=frame.index, dtype=np.int64)
    values = frame[column]
    if grouping is not None:
        values = values.map(lambda v: grouping(v) if isinstance(v, str) else v)
    counts = frame["split"].groupby(values, dropna=True).transform("nunique")
    return counts.fillna(0).astype(np.int64)


def derive_index_columns(
    index: pd.DataFrame,
    scans: Mapping[str, _ShardScan],
    listed: set[str],
    tables: ClassTables,
) -> pd.DataFrame:
    """index.parquet with :data:`DERIVED_INDEX_COLUMNS` appended."""
    frame = index.copy()
    frame["null_columns"] = null_columns(index, INDEX_COLUMNS)
    betas = frame[[c for c in BETA_COLUMNS if c in frame]].apply(pd.to_numeric, errors="coerce")
    frame["beta_abs_max"] = betas.abs().max(axis=1, skipna=True).fillna(0.0).astype(np.float64)
    valid, classes = _valid_class(frame)
    frame["expected_absent_mask"] = np.where(valid, tables.absent_mask[classes], -1).astype(np.int64)
    for head, column in enumerate(HEAD_COLUMNS):
        frame[f"expected_{column}"] = np.where(valid, tables.heads[classes, head], -1).astype(np.int64)
    absent_mask = _column(frame, "coco_absent_mask", 0)
    occluded_mask = _column(frame, "coco_occluded_mask", 0)
    frame["absent_mask_bits"] = _popcount(absent_mask)
    frame["occluded_mask_bits"] = _popcount(occluded_mask)
    both = pd.to_numeric(absent_mask, errors="coerce").fillna(0).astype(np.int64) & pd.to_numeric(
        occluded_mask, errors="coerce"
    ).fillna(0).astype(np.int64)
    frame["absent_occluded_overlap"] = _popcount(both)
    outside = pd.to_numeric(_column(frame, "num_outside", 0), errors="coerce").fillna(0) > 0
    frame["truncated_consistent"] = ~outside | _column(frame, "truncated", False).eq(True)
    frame["is_amputee"] = valid & (classes < NUM_AMPUTEE_CLASSES)
    frame["pose_id_split_count"] = _splits_per_value(frame, "pose_id")
    frame["pose_group_split_count"] = _splits_per_value(frame, "pose_id", pose_group)
    frame["background_split_count"] = _splits_per_value(frame, "background_id")

    shards = [_text(s) for s in _column(frame, "shard", None)]
    keys = [_text(k) for k in _column(frame, "key", None)]
    splits = [_text(s) for s in _column(frame, "split", None)]
    parts = [_text(p) for p in _column(frame, "part", None)]
    samples = [
        scans[s].samples.get(k) if s in scans and k is not None else None
        for s, k in zip(shards, keys, strict=True)
    ]
    frame["shard_listed"] = [s in listed for s in shards]
    frame["shard_matches_split_part"] = [
        s is not None
        and (m := SHARD_PATH_PATTERN.match(s)) is not None
        and m["split"] == sp
        and m["part"] == p
        for s, sp, p in zip(shards, splits, parts, strict=True)
    ]
    frame["shard_exists"] = [s in scans and scans[s].exists for s in shards]
    frame["in_shard"] = [x is not None and x.image_bytes >= 0 and x.has_labels for x in samples]
    frame["image_member_bytes"] = pd.Series(
        [x.image_bytes if x is not None else -1 for x in samples], index=frame.index, dtype=np.int64
    )
    frame["image_problem"] = pd.Series(
        [x.image_problem if x is not None else MISSING_MEMBER for x in samples],
        index=frame.index,
        dtype="str",
    )
    frame["label_problem"] = pd.Series(
        [x.label_problem if x is not None else MISSING_MEMBER for x in samples],
        index=frame.index,
        dtype="str",
    )
    return frame


def _shard_table(listed: pd.DataFrame, index: pd.DataFrame, scans: Mapping[str, _ShardScan]) -> pd.DataFrame:
    """shards.parquet as read, plus rows for shards only the index or the disk knows, plus scan results."""
    listed_paths = {s for s in _column(listed, "shard", None) if isinstance(s, str)}
    unlisted = sorted(set(scans) - listed_paths)
    extra = pd.DataFrame({"shard": pd.Series(unlisted, dtype="str")})
    for path_column, group in (("split", "split"), ("part", "part")):
        extra[path_column] = pd.Series(
            [(m[group] if (m := SHARD_PATH_PATTERN.match(s)) else "") for s in unlisted], dtype="str"
        )
    extra["num_samples"] = pd.Series(-1, index=extra.index, dtype=np.int64)
    extra["sha256"] = pd.Series("", index=extra.index, dtype="str")
    extra["bytes"] = pd.Series(-1, index=extra.index, dtype=np.int64)
    frame = pd.concat([listed.assign(listed=True), extra.assign(listed=False)], ignore_index=True)
    # Only shards.parquet's own rows can hold nulls; the added rows have placeholders.
    frame["null_columns"] = pd.concat(
        [null_columns(listed, SHARD_COLUMNS), pd.Series("", index=extra.index, dtype="str")],
        ignore_index=True,
    )

    shards = [_text(s) for s in frame["shard"]]
    scan_of = [scans.get(s, _ShardScan(tar_problem="shard name missing")) for s in shards]
    frame["path_matches_split_part"] = [
        s is not None
        and (m := SHARD_PATH_PATTERN.match(s)) is not None
        and m["split"] == _text(sp)
        and m["part"] == _text(p)
        for s, sp, p in zip(shards, _column(frame, "split", None), _column(frame, "part", None), strict=True)
    ]
    rows_per_shard = _column(index, "shard", None).value_counts()
    frame["rows_in_index"] = pd.Series(
        [int(rows_per_shard.get(s, 0)) if s is not None else 0 for s in shards],
        index=frame.index,
        dtype=np.int64,
    )
    columns = {
        "file_exists": ("exists", bool),
        "bytes_actual": ("bytes_actual", np.int64),
        "sha256_actual": ("sha256_actual", "str"),
        "tar_problem": ("tar_problem", "str"),
        "members": ("members", np.int64),
        "samples_in_tar": ("samples_in_tar", np.int64),
        "unexpected_members": ("unexpected_members", np.int64),
        "images_checked": ("images_checked", np.int64),
        "images_decodable": ("images_decodable", np.int64),
        "labels_checked": ("labels_checked", np.int64),
        "labels_valid": ("labels_valid", np.int64),
    }
    for column, (attribute, dtype) in columns.items():
        frame[column] = pd.Series([getattr(s, attribute) for s in scan_of], index=frame.index, dtype=dtype)
    frame["images_failed"] = frame["images_checked"] - frame["images_decodable"]
    frame["labels_ok"] = (frame["labels_valid"] == frame["labels_checked"]) & (
        frame["labels_checked"] == frame["rows_in_index"]
    )
    frame["image_failures"] = pd.Series(
        [s.failures("image_problem") for s in scan_of], index=frame.index, dtype="str"
    )
    frame["label_failures"] = pd.Series(
        [s.failures("label_problem") for s in scan_of], index=frame.index, dtype="str"
    )
    return frame


def split_tables(index: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(splits, classes): per split, sample counts per part and the amputee fraction; per split and
    amputee class 0-11, the count, its share of the split's amputee samples and
    ``|share - 1/12| / (1/12)``."""
    split = _column(index, "split", None)
    part = _column(index, "part", None)
    valid, classes = _valid_class(index)
    split_rows, class_rows = [], []
    uniform = 1.0 / NUM_AMPUTEE_CLASSES
    for name in SPLITS:
        in_split = split == name
        counts = {p: int((in_split & (part == p)).sum()) for p in PARTS}
        proper = counts["amputee"] + counts["non_amputee"]
        amputee_classes = classes[in_split & valid & (classes < NUM_AMPUTEE_CLASSES)]
        per_class = amputee_classes.value_counts().reindex(range(NUM_AMPUTEE_CLASSES), fill_value=0)
        total = int(per_class.sum())
        shares = per_class / total if total else per_class.astype(np.float64)
        deviations = (shares - uniform).abs() / uniform
        split_rows.append(
            {
                "split": name,
                "num_samples": int(in_split.sum()),
                **{f"num_{p}": counts[p] for p in PARTS},
                "amputee_fraction": counts["amputee"] / proper if proper else 0.0,
                "amputee_class_samples": total,
                "max_class_deviation": float(deviations.max()),
            }
        )
        class_rows += [
            {
                "split": name,
                "class_index": c,
                "count": int(per_class[c]),
                "share": float(shares[c]),
                "relative_deviation": float(deviations[c]),
            }
            for c in range(NUM_AMPUTEE_CLASSES)
        ]
    splits = pd.DataFrame(split_rows).astype({"split": "str"})
    classes_frame = pd.DataFrame(class_rows).astype({"split": "str"})
    return splits, classes_frame


def collect_statistics(dataset_dir: Path, params: ValidateA3DParams) -> DatasetStatistics:
    """Read and scan the dataset at ``dataset_dir`` (see the module docstring).

    Raises :class:`DatasetReadError` when index.parquet or shards.parquet is missing or unreadable;
    every other problem ends up in the tables for the suites to report.
    """
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise DatasetReadError(f"{dataset_dir}: not a folder (expected an A3D dataset folder)")
    index = _read_parquet(dataset_dir / INDEX_FILE)
    listed = _read_parquet(dataset_dir / SHARDS_FILE)
    tables = class_tables()

    listed_paths = {s for s in _column(listed, "shard", None) if isinstance(s, str)}
    shards_dir = dataset_dir / SHARDS_DIR
    on_disk = (
        {p.relative_to(dataset_dir).as_posix() for p in shards_dir.rglob("*.tar")}
        if shards_dir.is_dir()
        else set()
    )
    records = index.to_dict("records")
    rows_by_shard: dict[str, dict[str, Mapping[str, object]]] = {}
    for record in records:
        shard, key = _text(record.get("shard")), _text(record.get("key"))
        if shard is not None and key is not None:
            rows_by_shard.setdefault(shard, {})[key] = record
    all_shards = sorted(listed_paths | set(rows_by_shard) | on_disk)
    log.info("validating %s: %d index rows, %d shards", dataset_dir, len(index), len(all_shards))
    scans = {
        shard: scan_shard(dataset_dir, shard, rows_by_shard.get(shard, {}), tables, params)
        for shard in tqdm(all_shards, desc="scanning shards", unit="shard", disable=None)
    }
    frame = derive_index_columns(index, scans, listed_paths, tables)
    splits, classes = split_tables(frame)
    return DatasetStatistics(
        dataset_dir=dataset_dir,
        columns=column_table({INDEX_FILE: (index, INDEX_COLUMNS), SHARDS_FILE: (listed, SHARD_COLUMNS)}),
        index=frame,
        shards=_shard_table(listed, frame, scans),
        splits=splits,
        classes=classes,
    )
