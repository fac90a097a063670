"""What the training stages share: the parts they train on, and the fingerprint that decides
whether a checkpoint is resumed or set aside (settings that shape the weights, the code that
trains them, and what else each stage adds: data, body model, tokenizers, detector)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

import a3d_data
from a3d_data.atomic import atomic_path
from ajahr_model.data.keypoint_prior import KeypointPrior, load_keypoint_prior
from ajahr_model.training.loop import fingerprint

TRAIN_PARTS = ["amputee", "non_amputee", "occlusion"]
# Settings that do not change the weights: where and how fast a run executes.
_RUN_ONLY = {
    "accelerator",
    "devices",
    "num_workers",
    "checkpoint_every",
    "log_every",
    "eval_batch_size",
    "eval_limit",
    "compile",
}


_PACKAGE = Path(__file__).resolve().parents[1]
_DATA_PACKAGE = Path(a3d_data.__file__).resolve().parent
# Source files whose change changes what a run learns: a checkpoint trained by other code is set
# aside and retrained, as for the tokenizers. Evaluation code is not among them.
# Each stage's own training module (training/detector.py, training/ajahr.py) is in its list:
# it builds the run (which parts it reads, the loss it steps on).
SHARED_CODE = (
    "data/a3d.py", "data/keypoint_prior.py", "training/loop.py", "training/common.py", "networks/bpac.py",
)  # fmt: skip
# a3d-data's joint conventions and sample schema (the keypoints and states a run reads), and for
# AJAHR the amputation code that zeroes its body model: names under "a3d_data/"; folders are
# taken whole.
DATA_CODE = ("a3d_data/skeleton.py", "a3d_data/synthesis/schema.py")


def _source_files(name: str) -> list[tuple[str, Path]]:
    in_data = name.startswith("a3d_data/")
    path = _DATA_PACKAGE / name.removeprefix("a3d_data/") if in_data else _PACKAGE / name
    if path.is_dir():
        return [(f"{name}/{f.relative_to(path).as_posix()}", f) for f in sorted(path.rglob("*.py"))]
    return [(name, path)]


def code_fingerprint(files: tuple[str, ...]) -> str:
    return fingerprint([(label, path.read_text()) for name in files for label, path in _source_files(name)])


def weights_fingerprint(settings: Any, code: tuple[str, ...], **extra: Any) -> str:
    """A stage's resumption fingerprint: ``settings`` without the run-only keys, the source of
    ``code`` (package paths, "a3d_data/..." for a3d-data's, folders taken whole) and ``extra``."""
    dumped = settings.model_dump(mode="json")
    dumped["train"] = {k: v for k, v in dumped["train"].items() if k not in _RUN_ONLY}
    return fingerprint(dumped, code_fingerprint(code), extra)


def write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def load_prior(path: Path | None, needed_by: str) -> KeypointPrior:
    if path is None or not path.exists():
        raise ValueError(
            f"{needed_by} reads the keypoint prior, and {path} does not exist "
            "(run the keypoint_prior stage: ajahr keypoint-prior)"
        )
    return load_keypoint_prior(path)


def read_training_fp(path: Path) -> str:
    """A tokenizer's (or the detector's) checkpoint identity for AJAHR's resumption fingerprint:
    its settings and code fingerprint and step, so that a retrained one means retraining AJAHR."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    return f"{state.get('fingerprint', '')}-{state.get('step', '')}"
