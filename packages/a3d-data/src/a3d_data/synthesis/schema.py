"""The on-disk layout of A3D: shards, per-sample records and the index table.

A dataset folder holds::

    index.parquet        one row per sample (columns: INDEX_COLUMNS)
    shards.parquet       one row per shard (columns: SHARD_COLUMNS), with its sha256
    shards/<split>/<part>-<NNNNN>.tar   webdataset-style tar shards

Each sample in a shard is two members sharing a key: ``<key>.jpg`` (the RGB crop, JPEG) and
``<key>.npz`` (the labels: LABEL_ARRAYS). Shards are written to a temporary name and renamed when
complete, and their checksum is recorded only then, so a killed synthesis leaves nothing a later
stage accepts.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

SPLITS: Final[tuple[str, ...]] = ("train", "val", "test")
# amputee / non_amputee: A3D proper; occlusion: non-amputee bodies with a limb hidden behind a
# synthetic occluder (the 3DOH50K analog), labelled non-amputee.
PARTS: Final[tuple[str, ...]] = ("amputee", "non_amputee", "occlusion")

INDEX_FILE: Final[str] = "index.parquet"
SHARDS_FILE: Final[str] = "shards.parquet"
SHARDS_DIR: Final[str] = "shards"
IMAGE_EXTENSION: Final[str] = "jpg"
LABELS_EXTENSION: Final[str] = "npz"

CROP_SIZE: Final[int] = 256  # pixels, HMR2 convention
FOCAL_LENGTH: Final[float] = 5000.0  # pixels at a 256-pixel crop, HMR2 convention
BBOX_SCALE_UNIT: Final[float] = 200.0  # bbox_scale = bbox side in pixels / 200 (HMR convention)


class KeypointState(IntEnum):
    """The state of a 2D keypoint, in order of precedence (absent beats outside beats occluded)."""

    VISIBLE = 0
    OCCLUDED = 1  # hidden by the body itself or by an occluder
    ABSENT = 2  # on an amputated limb; stored at (0, 0)
    OUTSIDE = 3  # projects outside the crop


# Arrays of each sample's <key>.npz, with shapes and dtypes.
LABEL_ARRAYS: Final[dict[str, tuple[tuple[int, ...], str]]] = {
    "rotmats": ((24, 3, 3), "float32"),  # camera-frame root, zero matrices on amputated joints
    "betas": ((10,), "float32"),
    "cam_t": ((3,), "float32"),  # metres, camera frame (x right, y down, z forward)
    "focal": ((), "float32"),  # pixels
    "bbox_center": ((2,), "float32"),  # pixels in the crop
    "bbox_scale": ((), "float32"),  # bbox side / 200
    "joints3d_smpl": ((24, 3), "float32"),  # metres, camera frame
    "joints3d_coco": ((17, 3), "float32"),  # metres, camera frame
    "keypoints2d": ((17, 2), "float32"),  # crop pixels; (0, 0) where absent
    "keypoint_state": ((17,), "uint8"),  # KeypointState
    "smpl_joint_absent": ((24,), "bool"),
    "head_labels": ((4,), "int64"),  # BPAC-Net targets: right arm, left arm, left leg, right leg
    "class_index": ((), "int64"),  # AJAHR index 0..12
}

HEAD_COLUMNS: Final[tuple[str, ...]] = ("head_right_arm", "head_left_arm", "head_left_leg", "head_right_leg")
BETA_COLUMNS: Final[tuple[str, ...]] = tuple(f"beta_{i}" for i in range(10))

# index.parquet: column -> pandas/arrow dtype.
INDEX_COLUMNS: Final[dict[str, str]] = {
    "key": "string",  # unique sample key, also the member name stem inside the shard
    "split": "string",  # SPLITS
    "part": "string",  # PARTS
    "shard": "string",  # shard path relative to the dataset folder
    "class_index": "int64",
    **dict.fromkeys(HEAD_COLUMNS, "int64"),
    "pose_id": "string",
    "pose_source": "string",
    "activity": "string",
    "background_id": "string",
    **dict.fromkeys(BETA_COLUMNS, "float64"),
    "cam_tx": "float64",
    "cam_ty": "float64",
    "cam_tz": "float64",
    "focal": "float64",
    "bbox_center_x": "float64",
    "bbox_center_y": "float64",
    "bbox_scale": "float64",
    "yaw_deg": "float64",
    "skin_tone": "int64",  # index into the skin-tone palette
    "num_visible": "int64",
    "num_occluded": "int64",
    "num_absent": "int64",
    "num_outside": "int64",
    "coco_absent_mask": "int64",  # bit k set: COCO keypoint k is absent
    "coco_occluded_mask": "int64",  # bit k set: COCO keypoint k is occluded
    "truncated": "bool",  # some keypoint of the body lies outside the crop
    "image_bytes": "int64",  # size of the JPEG member
}

# shards.parquet: column -> dtype.
SHARD_COLUMNS: Final[dict[str, str]] = {
    "shard": "string",  # path relative to the dataset folder
    "split": "string",
    "part": "string",
    "num_samples": "int64",
    "sha256": "string",  # of the whole tar file
    "bytes": "int64",
}
