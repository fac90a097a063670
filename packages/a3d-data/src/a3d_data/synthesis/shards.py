"""Webdataset-style tar shards, written whole or not at all, with their sha256."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from a3d_data.atomic import atomic_path
from a3d_data.synthesis.schema import IMAGE_EXTENSION, LABELS_EXTENSION


@dataclass(frozen=True)
class Sample:
    """One encoded sample: its shard members (JPEG and labels npz) and its index row."""

    key: str
    jpeg: bytes
    labels: bytes
    row: dict[str, Any]


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _add_member(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mode = 0o444
    info.mtime = 0  # fixed, so a shard's bytes (and checksum) depend on its content only
    tar.addfile(info, io.BytesIO(payload))


def write_shard(path: Path, samples: Iterable[Sample]) -> tuple[int, str, int]:
    """Write ``samples`` as ``<key>.jpg`` + ``<key>.npz`` members; return (count, sha256, bytes).

    The tar is written under a temporary name and renamed when complete.
    """
    count = 0
    with atomic_path(path) as temporary:
        # Plain ustar, members in key order: what webdataset readers expect.
        with tarfile.open(temporary, "w", format=tarfile.USTAR_FORMAT) as tar:
            for sample in samples:
                _add_member(tar, f"{sample.key}.{IMAGE_EXTENSION}", sample.jpeg)
                _add_member(tar, f"{sample.key}.{LABELS_EXTENSION}", sample.labels)
                count += 1
        checksum = file_sha256(temporary)
        size = temporary.stat().st_size
    return count, checksum, size
