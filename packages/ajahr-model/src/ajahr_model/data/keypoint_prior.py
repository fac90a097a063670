"""The keypoint prior: an off-the-shelf 2D pose detector's COCO-17 keypoints for every A3D crop.

The paper reads its 2D keypoints from ViTPose, a detector pretrained on real people. None can be
downloaded here; the one detector whose weights ship inside a package is MediaPipe's BlazePose
(Apache-2.0), whose numpy pin keeps it in its own environment. Stage ``keypoint_prior`` runs it
once over the dataset (``ajahr keypoint-prior``) and writes one file, which this module reads.

BlazePose knows nothing of amputation: it draws a missing forearm where one would be, and its
visibility score stays high there. What it gives is where the joints of a body lie, left and
right told apart, which a detector trained from scratch in a few CPU minutes does not learn. Our
keypoint detector decides which joints are absent (``networks.keypoints``).

File (``npz``): ``keys`` (N,) str; ``keypoints`` (N, 17, 2) float32 crop pixels (x, y);
``confidence`` (N, 17) float32 in [0, 1] (BlazePose's visibility; 0 where no person was found);
``found`` (N,) bool.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

from a3d_data.skeleton import NUM_COCO_KEYPOINTS

PRIOR_FILE: Final[str] = "blazepose.npz"
PRIOR_ARRAYS: Final[dict[str, tuple[tuple[int, ...], str]]] = {
    "keypoints": ((NUM_COCO_KEYPOINTS, 2), "float32"),
    "confidence": ((NUM_COCO_KEYPOINTS,), "float32"),
    "found": ((), "bool"),
}


class PriorError(ValueError):
    """A keypoint prior file that cannot be used (names the file and what is wrong)."""


@dataclass(frozen=True)
class KeypointPrior:
    """Prior keypoints by sample key."""

    keys: np.ndarray
    keypoints: np.ndarray
    confidence: np.ndarray
    found: np.ndarray
    source: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rows", {str(k): i for i, k in enumerate(self.keys)})

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: str) -> bool:
        return key in self._rows  # type: ignore[attr-defined]

    def lookup(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """(keypoints (17, 2) crop px, confidence (17,)) of a sample; zeros where none was found."""
        row = self._rows.get(key)  # type: ignore[attr-defined]
        if row is None:
            raise PriorError(
                f"{self.source}: no prior keypoints for sample {key!r} (rerun the keypoint_prior stage)"
            )
        return self.keypoints[row], self.confidence[row]

    def check_covers(self, keys: list[str]) -> None:
        """Fail, naming the file and a few keys, unless every key has a row."""
        missing = [k for k in keys if k not in self]
        if missing:
            raise PriorError(
                f"{self.source}: {len(missing)} samples have no prior keypoints, e.g. {missing[:3]} "
                "(the file was made from another dataset: rerun the keypoint_prior stage)"
            )


def load_keypoint_prior(path: Path) -> KeypointPrior:
    """Read and check a prior file (``path`` may be its folder)."""
    path = path / PRIOR_FILE if path.is_dir() else path
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: np.asarray(npz[name]) for name in ("keys", *PRIOR_ARRAYS)}
    except (OSError, ValueError) as err:
        raise PriorError(f"{path}: cannot read the keypoint prior ({err})") from err
    except KeyError as err:
        raise PriorError(f"{path}: missing array {err}; expected keys, {', '.join(PRIOR_ARRAYS)}") from err
    n = len(arrays["keys"])
    for name, (shape, dtype) in PRIOR_ARRAYS.items():
        if arrays[name].shape != (n, *shape):
            raise PriorError(f"{path}: {name} has shape {arrays[name].shape}, expected {(n, *shape)}")
        arrays[name] = arrays[name].astype(dtype)
    confidence = arrays["confidence"]
    if not np.isfinite(arrays["keypoints"]).all() or ((confidence < 0) | (confidence > 1)).any():
        raise PriorError(f"{path}: keypoints must be finite and confidence in [0, 1]")
    return KeypointPrior(
        arrays["keys"].astype(str), arrays["keypoints"], confidence, arrays["found"], source=path
    )
