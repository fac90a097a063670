"""A contact sheet of A3D samples: every class and the occlusion set, keypoints drawn by state."""

from __future__ import annotations

import io
import math
import tarfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from a3d_data.amputation import AMPUTATION_CLASSES, NON_AMPUTEE  # noqa: E402
from a3d_data.atomic import atomic_path  # noqa: E402
from a3d_data.skeleton import COCO_LIMB_CHAINS  # noqa: E402
from a3d_data.synthesis.params import ContactSheetParams  # noqa: E402
from a3d_data.synthesis.schema import (  # noqa: E402
    IMAGE_EXTENSION,
    INDEX_FILE,
    LABELS_EXTENSION,
    KeypointState,
)

STATE_STYLE = {
    KeypointState.VISIBLE: ("o", "#2ca02c", "visible"),
    KeypointState.OCCLUDED: ("s", "#ff7f0e", "occluded"),
    KeypointState.OUTSIDE: ("x", "#7f7f7f", "outside"),
}
# Limb segments for the skeleton lines, plus the shoulder and hip bars.
BONES = [pair for chain in COCO_LIMB_CHAINS for pair in zip(chain[:-1], chain[1:], strict=True)] + [
    (5, 6),
    (11, 12),
]


def read_samples(dataset_dir: Path, rows: pd.DataFrame) -> list[tuple[np.ndarray, dict]]:
    """Images (H, W, 3) uint8 and label dicts of the index ``rows``, read from their shards."""
    samples = []
    for shard, group in rows.groupby("shard", sort=False):
        wanted = set(group["key"])
        found: dict[str, dict] = {}
        with tarfile.open(dataset_dir / shard) as tar:
            for member in tar:
                key, _, extension = member.name.partition(".")
                if key not in wanted:
                    continue
                payload = tar.extractfile(member).read()
                entry = found.setdefault(key, {})
                if extension == IMAGE_EXTENSION:
                    entry["image"] = np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"))
                elif extension == LABELS_EXTENSION:
                    with np.load(io.BytesIO(payload)) as labels:
                        entry["labels"] = {k: labels[k] for k in labels.files}
        for key in group["key"]:
            samples.append((found[key]["image"], found[key]["labels"]))
    return samples


def _pick(index: pd.DataFrame, params: ContactSheetParams) -> pd.DataFrame:
    split = index[index["split"] == params.split]
    chosen = []
    for class_index in range(len(AMPUTATION_CLASSES)):
        pool = split[(split["class_index"] == class_index) & (split["part"] != "occlusion")]
        chosen.append(pool.head(params.per_class))
    chosen.append(split[split["part"] == "occlusion"].head(params.occlusion_samples))
    return pd.concat(chosen, ignore_index=True)


def draw_contact_sheet(dataset_dir: Path, params: ContactSheetParams, output: Path) -> Path:
    """Write a PNG grid of samples of every class and of the occlusion set, keypoints by state."""
    index = pd.read_parquet(dataset_dir / INDEX_FILE)
    rows = _pick(index, params)
    if rows.empty:
        raise ValueError(f"{dataset_dir / INDEX_FILE}: no samples in split {params.split!r} to draw")
    samples = read_samples(dataset_dir, rows)
    columns = 8
    grid_rows = math.ceil(len(samples) / columns)
    fig, axes = plt.subplots(grid_rows, columns, figsize=(columns * 2.0, grid_rows * 2.25), dpi=100)
    axes = np.atleast_1d(axes).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, (_, row), (image, labels) in zip(axes, rows.iterrows(), samples, strict=False):
        # Pixel edges at integers, as the labels count them (pixel i spans [i, i + 1)).
        ax.imshow(image, extent=(0, image.shape[1], image.shape[0], 0))
        points, states = labels["keypoints2d"], labels["keypoint_state"]
        for a, b in BONES:
            if states[a] != KeypointState.ABSENT and states[b] != KeypointState.ABSENT:
                ax.plot(points[[a, b], 0], points[[a, b], 1], "-", color="white", linewidth=0.8, alpha=0.7)
        for state, (marker, colour, _) in STATE_STYLE.items():
            chosen = states == state
            ax.plot(points[chosen, 0], points[chosen, 1], marker, color=colour, markersize=3.5,
                    markeredgecolor="black", markeredgewidth=0.3)  # fmt: skip
        name = "occlusion set" if row["part"] == "occlusion" else AMPUTATION_CLASSES[row["class_index"]].name
        absent = int((states == KeypointState.ABSENT).sum())
        ax.set_title(
            f"{row['class_index']}: {name}\nabsent {absent}, occl. {row['num_occluded']}", fontsize=7
        )
        ax.set_xlim(0, image.shape[1])
        ax.set_ylim(image.shape[0], 0)
    handles = [
        plt.Line2D([], [], marker=m, color=c, linestyle="", label=label)
        for m, c, label in STATE_STYLE.values()
    ]
    fig.legend(handles=handles, loc="lower right", fontsize=8, frameon=False)
    fig.suptitle(f"A3D {params.split} split: every class (12 = non-amputee) and the occlusion set "
                 f"(labelled {NON_AMPUTEE}); absent keypoints are not drawn", fontsize=10)  # fmt: skip
    fig.tight_layout()
    with atomic_path(output) as temporary:
        fig.savefig(temporary)
    plt.close(fig)
    return output
