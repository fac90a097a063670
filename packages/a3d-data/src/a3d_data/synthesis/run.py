"""The ``synthesize`` stage: plan shards, generate them in parallel, write the index.

Shards run as independent tasks (one seed each) on local processes by default, or on a Dask
cluster when params name one ("local" starts a LocalCluster). The index and shard tables are
written last, atomically: a killed run leaves at most stray temporary files, which the next run
removes, and never a table that lists an incomplete shard.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from a3d_data.atomic import atomic_path
from a3d_data.synthesis.params import SynthesizeParams
from a3d_data.synthesis.schema import (
    INDEX_COLUMNS,
    INDEX_FILE,
    PARTS,
    SHARD_COLUMNS,
    SHARDS_DIR,
    SHARDS_FILE,
    SPLITS,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardTask:
    """One shard to generate: where it goes, how many samples, and its seed."""

    split: str
    part: str
    number: int
    count: int
    seed: tuple[int, ...]  # SeedSequence entropy: (base seed, split, part, shard number)

    @property
    def relative_path(self) -> str:
        return f"{SHARDS_DIR}/{self.split}/{self.part}-{self.number:05d}.tar"

    def keys(self) -> list[str]:
        return [f"{self.split}-{self.part}-{self.number:05d}-{i:05d}" for i in range(self.count)]


def plan_shards(params: SynthesizeParams) -> list[ShardTask]:
    """Every shard of the dataset, each with an independent seed."""
    tasks = []
    for split_index, split in enumerate(SPLITS):
        sizes = params.sizes.get(split)
        if sizes is None:
            continue
        for part_index, part in enumerate(PARTS):
            total = getattr(sizes, part)
            for number, start in enumerate(range(0, total, params.shard_size)):
                count = min(params.shard_size, total - start)
                seed = (params.seed, split_index, part_index, number)
                tasks.append(ShardTask(split, part, number, count, seed))
    return tasks


# Per-process cache of the synthesis context: building it (body model, renderer, GL context)
# costs a second or more, and a worker runs many shards.
_CONTEXTS: dict[str, object] = {}


def _context(params_json: str, root: str, body_model_path: str | None):
    from a3d_data.synthesis.generate import SynthesisContext

    key = f"{params_json}|{root}|{body_model_path}"
    if key not in _CONTEXTS:
        params = SynthesizeParams.model_validate_json(params_json)
        import torch

        torch.set_num_threads(params.threads_per_worker)
        _CONTEXTS.clear()
        _CONTEXTS[key] = SynthesisContext.build(
            params, Path(root), Path(body_model_path) if body_model_path else None
        )
    return _CONTEXTS[key]


def synthesize_shard(task: ShardTask, params_json: str, root: str, dataset_dir: str,
                     body_model_path: str | None) -> dict:  # fmt: skip
    """Generate one shard and return its table row and index rows (runs in a worker)."""
    from a3d_data.synthesis.generate import balanced_classes, synthesize_batch
    from a3d_data.synthesis.shards import write_shard

    context = _context(params_json, root, body_model_path)
    rng = np.random.default_rng(np.random.SeedSequence(list(task.seed)))
    keys = task.keys()
    batch_size = context.params.batch_size
    classes = balanced_classes(task.part, len(keys), rng)

    def samples() -> Iterator:
        for start in range(0, len(keys), batch_size):
            chunk = slice(start, start + batch_size)
            yield from synthesize_batch(context, task.split, task.part, keys[chunk], rng, classes[chunk])

    rows: list[dict] = []

    def recorded() -> Iterator:
        for sample in samples():
            rows.append(dict(sample.row, shard=task.relative_path))
            yield sample

    count, checksum, size = write_shard(Path(dataset_dir) / task.relative_path, recorded())
    shard_row = {"shard": task.relative_path, "split": task.split, "part": task.part,
                 "num_samples": count, "sha256": checksum, "bytes": size}  # fmt: skip
    return {"shard": shard_row, "rows": rows}


def _run_local(tasks, worker: Callable, workers: int, progress: tqdm) -> Iterator[dict]:
    if workers == 1:
        for task in tasks:
            yield worker(task)
            progress.update(task.count)
        return
    # spawn: each worker starts clean (no forked torch threads or GL state).
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(worker, task): task for task in tasks}
        try:
            for future in as_completed(futures):
                yield future.result()
                progress.update(futures[future].count)
        except BaseException:
            # One failed shard fails the run: do not wait for the queued ones.
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _run_dask(tasks, worker: Callable, params: SynthesizeParams, progress: tqdm) -> Iterator[dict]:
    from distributed import Client, LocalCluster
    from distributed import as_completed as dask_completed

    cluster = None
    if params.dask_scheduler == "local":
        cluster = LocalCluster(n_workers=params.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, host="127.0.0.1")  # fmt: skip
        client = Client(cluster)
    else:
        client = Client(params.dask_scheduler)
    try:
        futures = client.map(worker, tasks, pure=False)
        counts = {future.key: task.count for future, task in zip(futures, tasks, strict=True)}
        for future in dask_completed(futures):
            yield future.result()
            progress.update(counts[future.key])
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def check_pose_splits(source, params: SynthesizeParams) -> None:
    """Fail early, naming the source, when a split to generate would get no file pose."""
    from a3d_data.poses import PoseFileError
    from a3d_data.synthesis.splits import pose_group_split

    pose_ids = getattr(source, "pose_ids", None)
    if pose_ids is None:  # procedural: every split draws fresh poses
        return
    available = {pose_group_split(str(pid)) for pid in pose_ids}
    wanted = {split for split, n in params.sizes.items() if n.amputee + n.non_amputee + n.occlusion}
    missing = sorted(wanted - available)
    if missing:
        raise PoseFileError(
            f"synthesize.poses.files: the {len(pose_ids)} {source.name} poses fall in splits "
            f"{sorted(available)} only (whole files, or single fits, are assigned to one split); "
            f"splits {missing} would get none: add files or drop those splits"
        )


def _remove_strays(dataset_dir: Path, keep: set[str]) -> None:
    """Delete shards not in the plan and temporaries of killed runs."""
    shards_dir = dataset_dir / SHARDS_DIR
    if not shards_dir.exists():
        return
    for path in shards_dir.rglob("*"):
        if path.is_file() and path.relative_to(dataset_dir).as_posix() not in keep:
            path.unlink()


def _typed(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    return frame[list(columns)].astype(columns)


def run_synthesis(params: SynthesizeParams, root: Path, body_model_path: Path | None = None) -> dict:
    """Generate the whole dataset under ``root / params.output``; return a summary dict."""
    from functools import partial

    from a3d_data.body_model import read_body_model
    from a3d_data.poses import create_pose_source

    tasks = plan_shards(params)
    if not tasks:
        raise ValueError("synthesize.sizes: every split and part is empty; nothing to generate")
    # Read the inputs once here, so a bad pose file or body model fails before any worker starts
    # and before anything is deleted, with the reader's message naming the file and field.
    check_pose_splits(create_pose_source(params.poses, root), params)
    if body_model_path is not None:
        read_body_model(body_model_path)
    dataset_dir = (root / params.output).resolve()
    dataset_dir.mkdir(parents=True, exist_ok=True)
    planned = {task.relative_path for task in tasks}
    # Tables first: until this run writes new ones, nothing describes the shards being rewritten.
    for table in (INDEX_FILE, SHARDS_FILE):
        (dataset_dir / table).unlink(missing_ok=True)
    _remove_strays(dataset_dir, planned)
    worker = partial(
        synthesize_shard,
        params_json=params.model_dump_json(),
        root=str(root.resolve()),
        dataset_dir=str(dataset_dir),
        body_model_path=str(body_model_path) if body_model_path else None,
    )
    total = sum(task.count for task in tasks)
    started = time.perf_counter()
    shard_rows, index_rows = [], []
    with tqdm(total=total, desc="synthesizing A3D", unit="sample") as progress:
        results = (
            _run_dask(tasks, worker, params, progress)
            if params.dask_scheduler
            else _run_local(tasks, worker, min(params.workers, len(tasks)), progress)
        )
        for result in results:
            shard_rows.append(result["shard"])
            index_rows.extend(result["rows"])
    seconds = time.perf_counter() - started

    shards = _typed(pd.DataFrame(shard_rows), SHARD_COLUMNS).sort_values("shard", ignore_index=True)
    index = _typed(pd.DataFrame(index_rows), INDEX_COLUMNS).sort_values("key", ignore_index=True)
    with atomic_path(dataset_dir / SHARDS_FILE) as temporary:
        shards.to_parquet(temporary, index=False)
    with atomic_path(dataset_dir / INDEX_FILE) as temporary:
        index.to_parquet(temporary, index=False)
    summary = {
        "samples": int(len(index)),
        "shards": int(len(shards)),
        "seconds": round(seconds, 2),
        "samples_per_second": round(len(index) / seconds, 2),
        "bytes": int(shards["bytes"].sum()),
        "workers": params.workers,
        "executor": params.dask_scheduler or "processes",
    }
    log.info("wrote %d samples in %d shards to %s (%.1f samples/s)", summary["samples"], summary["shards"],
             dataset_dir, summary["samples_per_second"])  # fmt: skip
    return summary
