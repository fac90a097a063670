"""Checkpoints a run will not continue: renamed aside, never overwritten, listed for pruning.

A run that finds a checkpoint of other settings, code, data or body model (or one it cannot
read) starts over, but the old file may be the only copy of a long run. Every trainer (the
tokenizers, the detector, AJAHR and the baselines) keeps it here as
``checkpoint.settings-<fingerprint>.pt`` or ``checkpoint.unreadable.pt``, with ``-<n>`` added
when that name is taken, and ``make prune-checkpoints`` lists them (``ajahr_model.prune``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# checkpoint.<reason>[-<n>].pt, <reason> being settings-<fingerprint> or unreadable.
SET_ASIDE_NAME = re.compile(r"^checkpoint\.(settings-[^.]+|unreadable)(-\d+)?\.pt$")


def set_aside(path: Path, reason: str) -> Path:
    """Rename ``path`` to ``<stem>.<reason><suffix>`` (``-1``, ``-2``, ... when taken) and return
    the new path. An earlier set-aside file of the same reason is never overwritten."""
    target = path.with_name(f"{path.stem}.{reason}{path.suffix}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.stem}.{reason}-{n}{path.suffix}")
        n += 1
    path.rename(target)
    return target


@dataclass(frozen=True)
class SetAside:
    path: Path
    size: int
    reason: str


def find_set_aside(folders: list[Path]) -> list[SetAside]:
    """Every set-aside checkpoint under ``folders`` (recursively), in path order. The live
    ``checkpoint.pt`` files and anything else are never listed."""
    found = []
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: not a folder")
        for path in sorted(folder.rglob("checkpoint.*.pt")):
            match = SET_ASIDE_NAME.match(path.name)
            if match and path.is_file():
                found.append(SetAside(path, path.stat().st_size, match.group(1)))
    return found
