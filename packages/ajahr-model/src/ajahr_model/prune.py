"""List, and on request delete, the checkpoints that training set aside (``make prune-checkpoints``).

A run never overwrites a checkpoint it will not continue: one of other settings, code, data or
body model is renamed ``checkpoint.settings-<fingerprint>.pt`` (``checkpoint.unreadable.pt``
when it could not be read; ``ajahr_model.set_aside``) and training starts over. Nothing deletes
them, so they pile up (382 MB per cpu-profile AJAHR run). This lists them with their sizes and
what they were, and deletes them only with ``--delete``: a set-aside checkpoint may be the only
copy of a long run.

Usage: python -m ajahr_model.prune [FOLDER ...] [--delete]   (default folder: models)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ajahr_model.set_aside import find_set_aside


def _size(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n < 2**30 else f"{n / 2**30:,.2f} GiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*", type=Path, default=[Path("models")])
    parser.add_argument("--delete", action="store_true", help="delete them (default: only list)")
    args = parser.parse_args(argv)
    try:
        found = find_set_aside(args.folders)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for item in found:
        print(f"{_size(item.size):>12}  {item.path}  ({item.reason})")
    total = sum(item.size for item in found)
    if not found:
        print("no set-aside checkpoints")
    elif args.delete:
        for item in found:
            item.path.unlink()
        print(f"deleted {len(found)} set-aside checkpoints, {_size(total)}")
    else:
        print(f"{len(found)} set-aside checkpoints, {_size(total)}; --delete removes them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
