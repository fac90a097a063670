"""A3D samples for the networks: random access into the tar shards, augmentation, balanced batches.

The shards are webdataset-style tars (a3d-data's ``synthesis.schema``). Training needs random
access and an exact resume, so instead of streaming them the loader reads each shard's member
table once (``tarfile`` gives each member's data offset) and then reads a sample's two members
with one seek each. A batch is a pure function of (seed, batch number), and a sample's
augmentation a pure function of (seed, draw number): resuming at step N is starting the sampler
at batch N, whatever the number of loader workers.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import tarfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Sampler

from a3d_data.synthesis.schema import (
    CROP_SIZE,
    IMAGE_EXTENSION,
    INDEX_FILE,
    LABELS_EXTENSION,
    SHARDS_FILE,
    KeypointState,
)
from a3d_data.synthesis.shards import file_sha256
from ajahr_model.data.keypoint_prior import KeypointPrior

log = logging.getLogger(__name__)

# Arrays a training sample carries besides the image, with their dtypes.
SAMPLE_ARRAYS: dict[str, str] = {
    "rotmats": "float32",
    "betas": "float32",
    "joints3d_smpl": "float32",
    "keypoints2d": "float32",
    "keypoint_state": "int64",
    "head_labels": "int64",
    "class_index": "int64",
}
# Arrays a sample carries when the dataset has a keypoint prior (data.keypoint_prior).
PRIOR_SAMPLE_ARRAYS: dict[str, str] = {"prior_keypoints2d": "float32", "prior_confidence": "float32"}


class DataError(ValueError):
    """A dataset folder, index or shard that cannot be used (names the file and what is wrong)."""


class CorruptSamplesError(RuntimeError):
    """More corrupt samples than the run allows."""


# What reading a damaged sample raises (image decoding, npz parsing, short reads): the loader
# counts such a sample as corrupt instead of failing.
SAMPLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    KeyError,
    EOFError,
    zipfile.BadZipFile,
    UnidentifiedImageError,
    Image.DecompressionBombError,
)


@dataclass(frozen=True)
class SampleRef:
    """Where one sample's members lie: the shard file and (offset, size) of each member."""

    key: str
    part: str
    shard: Path
    image: tuple[int, int]
    labels: tuple[int, int]


def _member_table(shard: Path) -> dict[str, tuple[int, int]]:
    """Byte ranges of the shard's files by name. A shard cut short (a copy or download that
    stopped) keeps the members before the cut; the samples it lost are counted as corrupt by
    the loader, like a damaged image, rather than failing the whole split here."""
    try:
        size = shard.stat().st_size
        tar = tarfile.open(shard, "r:")  # noqa: SIM115 - closed by the with below
    except (OSError, tarfile.TarError) as err:
        raise DataError(f"{shard}: not a readable tar shard ({err})") from err
    table = {}
    with tar:
        while True:
            try:
                member = tar.next()
            except (OSError, tarfile.TarError):  # a header cut in the middle: the end of what is left
                break
            if member is None:
                break
            if member.isfile() and member.offset_data + member.size <= size:
                table[member.name] = (member.offset_data, member.size)
    return table


def index_samples(
    dataset_dir: Path, split: str, parts: Sequence[str], allow_missing: bool = False
) -> list[SampleRef]:
    """The samples of ``split`` in ``parts``, in index order, with their members' byte ranges.

    A sample the index lists and its shard lacks (a truncated shard) is a DataError naming the
    shard; with ``allow_missing`` (training sets) it gets empty ranges instead: loading it
    fails, and the run counts it as corrupt, failing past ``train.max_corrupt_fraction``."""
    index_path = dataset_dir / INDEX_FILE
    try:
        index = pd.read_parquet(index_path, columns=["key", "split", "part", "shard"])
    except (OSError, ValueError) as err:
        raise DataError(f"{index_path}: cannot read the A3D index ({err})") from err
    rows = index[(index["split"] == split) & index["part"].isin(list(parts))]
    if rows.empty:
        raise DataError(f"{index_path}: no samples with split={split!r} and part in {list(parts)}")
    tables: dict[str, dict[str, tuple[int, int]]] = {}
    missing: dict[str, int] = {}
    refs = []
    for key, part, shard in zip(rows["key"], rows["part"], rows["shard"], strict=True):
        if shard not in tables:
            tables[shard] = _member_table(dataset_dir / shard)
        table = tables[shard]
        image, labels = f"{key}.{IMAGE_EXTENSION}", f"{key}.{LABELS_EXTENSION}"
        if image not in table or labels not in table:
            missing[shard] = missing.get(shard, 0) + 1
        empty = (0, 0)
        refs.append(
            SampleRef(
                str(key), str(part), dataset_dir / shard, table.get(image, empty), table.get(labels, empty)
            )
        )
    if missing and not allow_missing:
        shard, count = next(iter(missing.items()))
        raise DataError(
            f"{dataset_dir / shard}: {count} samples listed in {INDEX_FILE} are not in the shard "
            f"(truncated?); {len(missing)} shard(s) of split {split!r} lack samples"
        )
    for shard, count in missing.items():
        log.warning(
            "%s: %d samples listed in %s are not in the shard (truncated?); they count as corrupt",
            dataset_dir / shard, count, INDEX_FILE,
        )  # fmt: skip
    return refs


def training_data_fingerprint(
    dataset_dir: Path, refs: Sequence[SampleRef], prior: KeypointPrior | None = None
) -> str:
    """What a run trains on, for its resumption fingerprint: which samples (keys and parts), the
    content of their shards (the sha256 that ``shards.parquet`` records, the file's own where it
    records none) and, for a run that reads a keypoint prior, the prior's rows of those samples.
    A checkpoint trained on other data is then set aside, not resumed as if it were finished.
    Shards are named relative to the dataset, so a copied dataset keeps the fingerprint."""
    recorded: dict[str, str] = {}
    table = dataset_dir / SHARDS_FILE
    if table.exists():
        try:
            shards = pd.read_parquet(table, columns=["shard", "sha256"])
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"{table}: cannot read the shard table (columns shard, sha256): {err}") from err
        recorded = dict(zip(shards["shard"].astype(str), shards["sha256"].astype(str), strict=True))
    digests = {}
    for shard in dict.fromkeys(ref.shard for ref in refs):
        name = shard.relative_to(dataset_dir).as_posix() if shard.is_relative_to(dataset_dir) else str(shard)
        digests[name] = recorded.get(name) or file_sha256(shard)
    payload: dict[str, Any] = {"samples": [[r.key, r.part] for r in refs], "shards": digests}
    if prior is not None:
        rows = [prior.lookup(r.key) for r in refs]
        digest = hashlib.sha256()
        for keypoints, confidence in rows:
            digest.update(np.ascontiguousarray(keypoints, np.float32).tobytes())
            digest.update(np.ascontiguousarray(confidence, np.float32).tobytes())
        payload["prior"] = digest.hexdigest()
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Augmentation:
    """Augmentation of a training crop (brief §4.3; no flip: labels are side-specific).

    scale: uniform factor in [1 - scale, 1 + scale]; rotation_deg: uniform in-plane angle in
    [-rotation_deg, rotation_deg], applied with probability ``rotation_p``; translation: uniform
    shift up to this fraction of the crop; colour: per-channel gain in [1 - colour, 1 + colour].
    """

    scale: float = 0.3
    rotation_deg: float = 30.0
    rotation_p: float = 0.6
    translation: float = 0.02
    colour: float = 0.2


def _affine(rng: np.random.Generator, aug: Augmentation) -> tuple[np.ndarray, float]:
    """A 2x3 map of crop pixels (original -> augmented) about the crop centre, and its angle (rad)."""
    scale = 1.0 + rng.uniform(-aug.scale, aug.scale)
    angle = (
        math.radians(rng.uniform(-aug.rotation_deg, aug.rotation_deg))
        if rng.random() < aug.rotation_p
        else 0.0
    )
    shift = rng.uniform(-aug.translation, aug.translation, size=2) * CROP_SIZE
    cos, sin = math.cos(angle), math.sin(angle)
    linear = scale * np.array([[cos, -sin], [sin, cos]])
    centre = np.full(2, CROP_SIZE / 2.0)
    offset = centre + shift - linear @ centre
    return np.concatenate([linear, offset[:, None]], axis=1), angle


def rotation_about_optical_axis(angle: float) -> np.ndarray:
    """The camera-frame rotation (3, 3) that turns the image by ``angle`` (x right, y down)."""
    cos, sin = math.cos(angle), math.sin(angle)
    return np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)


def augment(
    image: Image.Image, labels: dict[str, np.ndarray], rng: np.random.Generator, aug: Augmentation
) -> tuple[Image.Image, dict[str, np.ndarray]]:
    """Scale, rotate, shift and recolour a crop; keypoints, root rotation and 3D joints follow.

    An in-plane rotation of the image is a rotation of the camera frame about its optical axis,
    so the root rotation and the camera-frame joints turn with it. Keypoints pushed out of the
    crop become OUTSIDE; absent keypoints stay at (0, 0).
    """
    matrix, angle = _affine(rng, aug)
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    image = image.transform(
        image.size, Image.Transform.AFFINE, tuple(inverse.ravel()), Image.Resampling.BILINEAR
    )
    gains = 1.0 + rng.uniform(-aug.colour, aug.colour, size=3)
    pixels = np.clip(np.asarray(image, dtype=np.float32) * gains, 0, 255).astype(np.uint8)
    out = dict(labels)
    state = labels["keypoint_state"].copy()
    points = labels["keypoints2d"] @ matrix[:, :2].T + matrix[:, 2]
    absent = state == KeypointState.ABSENT
    points[absent] = 0.0
    inside = (points >= 0).all(1) & (points < CROP_SIZE).all(1)
    state[~absent & ~inside] = KeypointState.OUTSIDE
    # A keypoint that the augmentation brings back into the crop was never checked for visibility
    # (synthesis only tests keypoints inside the crop): call it occluded, its position is known.
    state[~absent & inside & (labels["keypoint_state"] == KeypointState.OUTSIDE)] = KeypointState.OCCLUDED
    out["keypoints2d"] = points.astype(np.float32)
    out["keypoint_state"] = state
    if "prior_keypoints2d" in labels:
        # The prior's keypoints move with the crop; one pushed out of it is dropped, as the
        # detector would not report it.
        found = labels["prior_confidence"] > 0
        prior = labels["prior_keypoints2d"] @ matrix[:, :2].T + matrix[:, 2]
        kept = found & (prior >= 0).all(1) & (prior < CROP_SIZE).all(1)
        out["prior_keypoints2d"] = np.where(kept[:, None], prior, 0.0).astype(np.float32)
        out["prior_confidence"] = np.where(kept, labels["prior_confidence"], 0.0).astype(np.float32)
    turn = rotation_about_optical_axis(angle)
    rotmats = labels["rotmats"].copy()
    rotmats[0] = turn @ rotmats[0]
    out["rotmats"] = rotmats
    out["joints3d_smpl"] = (labels["joints3d_smpl"] @ turn.T).astype(np.float32)
    return Image.fromarray(pixels), out


class A3DDataset(Dataset):
    """Samples of one split, addressed by ``(sample index, draw number)``.

    A sample is a dict: ``image`` uint8 (3, 256, 256), the arrays of :data:`SAMPLE_ARRAYS`,
    ``key`` and ``ok``; with a keypoint ``prior``, also :data:`PRIOR_SAMPLE_ARRAYS` (the prior
    detector's keypoints in crop pixels, moved by the augmentation like the labels, and their
    confidence, 0 where it found none). A sample whose image or labels cannot be decoded comes
    back with ``ok=False`` (and is counted by :class:`Batches`), not as an exception that kills
    a worker.
    """

    def __init__(
        self,
        refs: Sequence[SampleRef],
        augmentation: Augmentation | None = None,
        seed: int = 0,
        prior: KeypointPrior | None = None,
    ):
        self.refs = list(refs)
        self.augmentation = augmentation
        self.seed = seed
        self.prior = prior
        if prior is not None:
            prior.check_covers([ref.key for ref in self.refs])
        self._handles: dict[Path, Any] = {}
        self._handles_pid = os.getpid()

    def __len__(self) -> int:
        return len(self.refs)

    def _read(self, shard: Path, span: tuple[int, int]) -> bytes:
        if self._handles_pid != os.getpid():
            # A forked loader worker inherits the parent's open files, and with them one file
            # offset shared by every process: their seeks would race. Each process opens its own.
            self._handles, self._handles_pid = {}, os.getpid()
        handle = self._handles.get(shard)
        if handle is None:
            handle = self._handles[shard] = open(shard, "rb")  # noqa: SIM115 - kept open per worker
        if span == (0, 0):
            raise OSError(f"{shard}: the member is not in the shard (truncated?)")
        handle.seek(span[0])
        data = handle.read(span[1])
        if len(data) != span[1]:
            raise OSError(f"{shard}: truncated member at byte {span[0]}")
        return data

    def __getstate__(self) -> dict[str, Any]:
        # File handles stay behind when the dataset is sent to a loader worker.
        return {**self.__dict__, "_handles": {}}

    def load(self, index: int) -> tuple[Image.Image, dict[str, np.ndarray]]:
        ref = self.refs[index]
        image = Image.open(io.BytesIO(self._read(ref.shard, ref.image)))
        image.load()
        image = image.convert("RGB")
        if image.size != (CROP_SIZE, CROP_SIZE):
            raise ValueError(f"image is {image.size}, expected {CROP_SIZE}x{CROP_SIZE}")
        with np.load(io.BytesIO(self._read(ref.shard, ref.labels))) as npz:
            labels = {name: np.asarray(npz[name]).astype(dtype) for name, dtype in SAMPLE_ARRAYS.items()}
        if self.prior is not None:
            keypoints, confidence = self.prior.lookup(ref.key)
            labels["prior_keypoints2d"] = keypoints.astype(np.float32)
            labels["prior_confidence"] = confidence.astype(np.float32)
        return image, labels

    def all_labels(self, index: int) -> dict[str, np.ndarray]:
        """Every array of a sample's labels file (the schema's, e.g. ``cam_t`` and ``focal`` too)."""
        ref = self.refs[index]
        with np.load(io.BytesIO(self._read(ref.shard, ref.labels))) as npz:
            return {name: np.asarray(npz[name]) for name in npz.files}

    def __getitem__(self, item: tuple[int, int] | int) -> dict[str, Any]:
        index, draw = item if isinstance(item, tuple) else (item, -1)
        ref = self.refs[index]
        try:
            image, labels = self.load(index)
        except SAMPLE_ERRORS as err:
            return {"ok": False, "key": ref.key, "index": index, "error": f"{ref.shard}: {ref.key}: {err}"}
        if self.augmentation is not None and draw >= 0:
            rng = np.random.default_rng([self.seed, draw])
            image, labels = augment(image, labels, rng, self.augmentation)
        sample: dict[str, Any] = {
            # np.array, not np.ascontiguousarray: that one turns a 0-d array (class_index) into 1-d.
            name: torch.from_numpy(np.array(v, order="C"))
            for name, v in labels.items()
        }
        sample["image"] = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
        sample.update(ok=True, key=ref.key, index=index)
        return sample


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the good samples; the bad ones are listed under ``corrupt`` (index, message)."""
    good = [s for s in samples if s["ok"]]
    batch: dict[str, Any] = {
        "corrupt": [(s["index"], s["error"]) for s in samples if not s["ok"]],
        "keys": [s["key"] for s in good],
    }
    if good:
        extra = [name for name in PRIOR_SAMPLE_ARRAYS if name in good[0]]
        for name in (*SAMPLE_ARRAYS, *extra, "image"):
            batch[name] = torch.stack([s[name] for s in good])
    return batch


class BalancedBatches(Sampler):
    """Infinite batches, ``amputee_fraction`` of each from the amputee samples, the rest not.

    Batch ``b`` is drawn with ``numpy.random.default_rng([seed, b])`` (without replacement inside
    a batch), so the stream restarts exactly at any batch. With ``world_size`` > 1 each rank takes
    its share of every global batch, the amputees and the others split evenly, so that every
    process's batch keeps ``amputee_fraction`` (DDP averages the ranks' gradients, and a rank
    without amputees would leave the amputee tokenizer's head without one). Items are
    ``(sample index, draw number)`` pairs.
    """

    def __init__(
        self,
        parts: Sequence[str],
        batch_size: int,
        amputee_fraction: float,
        seed: int,
        start_batch: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} is not a multiple of the {world_size} processes")
        parts = np.asarray(parts)
        self.amputee = np.flatnonzero(parts == "amputee")
        self.others = np.flatnonzero(parts != "amputee")
        self.batch_size, self.seed, self.start_batch = batch_size, seed, start_batch
        self.rank, self.world_size = rank, world_size
        self.num_amputee = round(batch_size * amputee_fraction)
        if world_size > 1 and self.num_amputee % world_size:
            raise ValueError(
                f"the {self.num_amputee} amputees of a batch of {batch_size} (amputee_fraction "
                f"{amputee_fraction}) do not split evenly over the {world_size} processes"
            )
        for name, pool, need in (
            ("amputee", self.amputee, self.num_amputee),
            ("non-amputee", self.others, batch_size - self.num_amputee),
        ):
            if need and len(pool) < need:
                raise ValueError(f"a batch needs {need} {name} samples, the split has {len(pool)}")

    def batch(self, number: int) -> list[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, number])
        chosen = np.concatenate(
            [
                rng.choice(self.amputee, self.num_amputee, replace=False) if self.num_amputee else [],
                rng.choice(self.others, self.batch_size - self.num_amputee, replace=False)
                if self.batch_size > self.num_amputee
                else [],
            ]
        ).astype(int)
        rng.shuffle(chosen)
        draws = number * self.batch_size + np.arange(self.batch_size)
        pairs = list(zip(chosen.tolist(), draws.tolist(), strict=True))
        if self.world_size == 1:
            return pairs
        # Every world_size-th amputee and every world_size-th other, in the shuffled order.
        is_amputee = np.isin(chosen, self.amputee)
        share = np.zeros(len(pairs), dtype=bool)
        for group in (np.flatnonzero(is_amputee), np.flatnonzero(~is_amputee)):
            share[group[self.rank :: self.world_size]] = True
        return [pair for pair, mine in zip(pairs, share, strict=True) if mine]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        number = self.start_batch
        while True:
            yield self.batch(number)
            number += 1

    def __len__(self) -> int:  # Lightning asks; the stream is as long as the run wants.
        return 2**62


class CorruptCounter:
    """Counts distinct corrupt samples and fails past ``max_fraction`` of the dataset."""

    def __init__(self, dataset_size: int, max_fraction: float):
        self.limit = math.floor(dataset_size * max_fraction)
        self.max_fraction, self.dataset_size = max_fraction, dataset_size
        self.seen: dict[int, str] = {}

    def add(self, corrupt: list[tuple[int, str]]) -> None:
        for index, message in corrupt:
            if index not in self.seen:
                log.warning("skipped a corrupt sample: %s", message)
                self.seen[index] = message
        if len(self.seen) > self.limit:
            listed = "; ".join(list(self.seen.values())[:5])
            raise CorruptSamplesError(
                f"{len(self.seen)} corrupt samples, more than the {self.limit} allowed "
                f"(train.max_corrupt_fraction {self.max_fraction} of {self.dataset_size}); first: {listed}"
            )

    @property
    def count(self) -> int:
        return len(self.seen)
