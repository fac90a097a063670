"""Stage ``keypoint_prior``: BlazePose keypoints for every crop of A3D, in one file.

MediaPipe pins numpy 1.26, so BlazePose runs in its own environment (``.venv-blazepose``, made by
``make install``; another interpreter through ``AJAHR_BLAZEPOSE_PYTHON``). This module, in the
main environment, splits the shards between ``workers`` processes of that interpreter, each
running ``blazepose_worker.py``, shows their progress, checks and merges their outputs, and
writes ``<output>/blazepose.npz`` under a temporary name, renamed when complete.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from a3d_data.atomic import atomic_path
from a3d_data.synthesis.schema import INDEX_FILE
from ajahr_model.data.keypoint_prior import PRIOR_FILE, load_keypoint_prior

WORKER = Path(__file__).with_name("blazepose_worker.py")
PYTHON_ENV = "AJAHR_BLAZEPOSE_PYTHON"
DEFAULT_PYTHON = Path(".venv-blazepose/bin/python")


class KeypointPriorParams(BaseModel):
    """Section ``keypoint_prior`` of params.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # 1: BlazePose "full", the largest model the wheel ships (2, "heavy", is a download).
    model_complexity: Literal[0, 1] = 1
    min_detection_confidence: float = Field(0.3, ge=0.0, le=1.0)
    workers: int = Field(2, ge=1)


class KeypointPriorError(RuntimeError):
    """The BlazePose environment is missing or a worker failed (says which and why)."""


def blazepose_python(repo_root: Path) -> Path:
    """The BlazePose environment's interpreter: ``AJAHR_BLAZEPOSE_PYTHON``, else the repository's."""
    configured = os.environ.get(PYTHON_ENV)
    python = Path(configured) if configured else repo_root / DEFAULT_PYTHON
    if not python.exists():
        raise KeypointPriorError(
            f"{python}: no BlazePose interpreter (run make install, or set {PYTHON_ENV})"
        )
    return python


def dataset_shards(dataset_dir: Path) -> tuple[list[Path], list[str]]:
    """Every shard of the dataset (index order) and every sample key."""
    index_path = dataset_dir / INDEX_FILE
    try:
        index = pd.read_parquet(index_path, columns=["key", "shard"])
    except (OSError, ValueError) as err:
        raise KeypointPriorError(f"{index_path}: cannot read the A3D index ({err})") from err
    shards = [dataset_dir / s for s in dict.fromkeys(index["shard"])]
    return shards, [str(k) for k in index["key"]]


def _split(shards: list[Path], workers: int) -> list[list[Path]]:
    groups: list[list[Path]] = [[] for _ in range(min(workers, len(shards)))]
    for i, shard in enumerate(shards):
        groups[i % len(groups)].append(shard)
    return groups


def compute_keypoint_prior(
    dataset_dir: Path,
    output_dir: Path,
    params: KeypointPriorParams,
    python: Path,
    progress: bool = True,
) -> dict[str, float]:
    """Run BlazePose over the dataset into ``output_dir / blazepose.npz``; return a summary."""
    shards, keys = dataset_shards(dataset_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(keys), desc="keypoint prior (BlazePose)", unit="img", disable=not progress)
    lock = threading.Lock()

    def follow(stream) -> None:
        for line in stream:
            if line.startswith("progress "):
                with lock:
                    bar.update(int(line.split()[1]))

    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".prior-") as scratch:
        runs = []
        for number, group in enumerate(_split(shards, params.workers)):
            part = Path(scratch) / f"part-{number}.npz"
            command = [
                str(python), str(WORKER), "--output", str(part),
                "--model-complexity", str(params.model_complexity),
                "--min-detection-confidence", str(params.min_detection_confidence),
                *map(str, group),
            ]  # fmt: skip
            # One thread per worker: BlazePose's graph spawns its own, and two workers already
            # fill the cores of a 2-core machine.
            env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2"}
            # stderr to a file: MediaPipe's log lines must not fill a pipe nobody reads yet.
            log_path = part.with_suffix(".log")
            with open(log_path, "w") as log:
                process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
            reader = threading.Thread(target=follow, args=(process.stdout,), daemon=True)
            reader.start()
            runs.append((process, reader, part, group, log_path))
        failures = []
        for process, reader, part, group, log_path in runs:
            code = process.wait()
            reader.join()
            stderr = log_path.read_text()
            if code != 0 or not part.exists():
                errors = [
                    line for line in stderr.splitlines() if line.startswith("error")
                ] or stderr.splitlines()[-3:]
                failures.append(f"shards {[s.name for s in group]}: exit {code}: {' | '.join(errors)}")
        bar.close()
        if failures:
            raise KeypointPriorError("BlazePose worker(s) failed: " + "; ".join(failures))
        parts = [load_keypoint_prior(run[2]) for run in runs]
    merged = {
        "keys": np.concatenate([p.keys for p in parts]),
        "keypoints": np.concatenate([p.keypoints for p in parts]),
        "confidence": np.concatenate([p.confidence for p in parts]),
        "found": np.concatenate([p.found for p in parts]),
    }
    missing = set(keys) - set(merged["keys"].tolist())
    if missing:
        raise KeypointPriorError(f"{dataset_dir}: BlazePose returned no row for {len(missing)} samples")
    with atomic_path(output_dir / PRIOR_FILE) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **merged)
    return {"samples": len(merged["keys"]), "found_fraction": float(merged["found"].mean())}


def blazepose_on_crops(
    crops: np.ndarray, params: KeypointPriorParams, python: Path
) -> tuple[np.ndarray, np.ndarray]:
    """BlazePose on crops (N, 256, 256, 3) uint8 that are not in a dataset (photographs at
    inference): (keypoints (N, 17, 2) crop px, confidence (N, 17), 0 where nobody was found).
    The crops go to the worker as a temporary tar of JPEGs, as the stage's shards do."""
    import io
    import tarfile

    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="ajahr-prior-") as scratch:
        shard = Path(scratch) / "crops.tar"
        with tarfile.open(shard, "w") as tar:
            for i, crop in enumerate(crops):
                payload = io.BytesIO()
                Image.fromarray(crop).save(payload, format="JPEG", quality=95)
                info = tarfile.TarInfo(f"{i:08d}.jpg")
                info.size = payload.tell()
                payload.seek(0)
                tar.addfile(info, payload)
        output = Path(scratch) / "prior.npz"
        command = [
            str(python), str(WORKER), "--output", str(output),
            "--model-complexity", str(params.model_complexity),
            "--min-detection-confidence", str(params.min_detection_confidence), str(shard),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not output.exists():
            raise KeypointPriorError(
                f"BlazePose worker failed (exit {done.returncode}): {done.stderr[-500:]}"
            )
        prior = load_keypoint_prior(output)
    order = np.argsort(prior.keys)
    return prior.keypoints[order], prior.confidence[order]
