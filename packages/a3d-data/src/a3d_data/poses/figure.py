"""A contact sheet of sampled poses on the body model, to check by eye that they are plausible.

Each procedural family gets a row; each pose is drawn twice, from the front three-quarter and
from the side (knees and elbows must bend the right way in the side view). The random yaw is
left out so that every pose faces the same way; everything else is as sampled. Other sources
get rows of poses labelled by their ids, drawn as the files have them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from a3d_data.atomic import atomic_path  # noqa: E402
from a3d_data.body_model import BodyModel  # noqa: E402
from a3d_data.figures.painter import SKIN_COLOUR, shaded_polygons, yaw_rotation  # noqa: E402
from a3d_data.poses.base import PoseBatch, PoseSource  # noqa: E402
from a3d_data.poses.procedural import ProceduralPoseSource  # noqa: E402

log = logging.getLogger(__name__)

VIEW_YAWS: Final[tuple[float, float]] = (25.0, 90.0)  # degrees: front three-quarter, right side
_HALF_EXTENT: Final[float] = 1.0  # metres shown either side of a body's centre: fits a lying body
_PANEL_INCHES: Final[float] = 1.6
_DPI: Final[int] = 100
_FILE_SOURCE_ROWS: Final[int] = 4


def draw_pose_families(
    model: BodyModel, source: PoseSource, output: Path, per_family: int = 4, seed: int = 0
) -> Path:
    """Render poses of ``source`` on ``model`` (mean shape) and write the contact sheet to ``output``.

    Parameters
    ----------
    model : the body model to pose.
    source : a :class:`ProceduralPoseSource` (one row per family) or any other pose source (rows
        of random poses).
    output : PNG path, written atomically.
    per_family : poses per row; each takes two panels (two views).
    seed : seed of the poses drawn.
    """
    rng = np.random.default_rng(seed)
    rows: list[tuple[str, PoseBatch]] = []
    procedural = isinstance(source, ProceduralPoseSource)
    if procedural:
        upright = ProceduralPoseSource(source.params.model_copy(update={"yaw_degrees": (0.0, 0.0)}))
        for family in upright.families:
            rows.append((family, upright.sample_family(family, per_family, rng)))
    else:
        for _ in range(_FILE_SOURCE_ROWS):
            batch = source.sample(per_family, rng)
            rows.append((source.name, batch))

    columns = 2 * per_family
    fig, axes = plt.subplots(
        len(rows),
        columns,
        figsize=(columns * _PANEL_INCHES, len(rows) * _PANEL_INCHES * 1.08),
        dpi=_DPI,
        squeeze=False,
    )
    faces = model.faces.astype(np.int64)
    for row, (label, batch) in enumerate(rows):
        vertices = _posed_vertices(model, batch)
        for i in range(len(batch)):
            for k, view in enumerate(VIEW_YAWS):
                ax = axes[row, 2 * i + k]
                _draw_body(ax, vertices[i] @ yaw_rotation(view).numpy().T, faces)
                title = batch.pose_ids[i].rsplit("/", 1)[-1] if k == 0 else f"side ({view:.0f} deg)"
                ax.set_title(title, fontsize=6)
        axes[row, 0].text(
            -0.08,
            0.5,
            label,
            transform=axes[row, 0].transAxes,
            rotation=90,
            va="center",
            ha="right",
            fontsize=9,
        )
    shown = "mean shape; yaw removed" if procedural else "the files' shapes and orientations"
    fig.suptitle(f"Pose source '{source.name}' on the body model ({shown})", fontsize=10)
    # Leave the top strip to the suptitle, which tight_layout does not see.
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - 0.35 / fig.get_figheight()))
    with atomic_path(output) as temporary:
        fig.savefig(temporary, dpi=_DPI)
    plt.close(fig)
    log.info("wrote %s", output)
    return Path(output)


def _posed_vertices(model: BodyModel, batch: PoseBatch) -> np.ndarray:
    """Vertices (N, V, 3) metres of the batch's poses; the batch's betas, or the mean shape."""
    rotmats = torch.as_tensor(batch.rotmats, dtype=torch.float32)
    betas = None if batch.betas is None else torch.as_tensor(batch.betas[:, : model.num_betas])
    with torch.no_grad():
        return model.forward_rotmats(rotmats, betas).vertices.numpy()


def _draw_body(ax, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Orthographic front view (camera at +z) of one mesh, centred in a fixed-size window."""
    polys, colours = shaded_polygons(vertices, faces, SKIN_COLOUR)
    # Edges in the face colour close the anti-aliasing seams between adjacent triangles.
    ax.add_collection(PolyCollection(polys, facecolors=colours, edgecolors=colours, linewidths=0.2))
    centre = 0.5 * (vertices[:, :2].min(0) + vertices[:, :2].max(0))
    ax.set_xlim(centre[0] - _HALF_EXTENT, centre[0] + _HALF_EXTENT)
    ax.set_ylim(centre[1] - _HALF_EXTENT, centre[1] + _HALF_EXTENT)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    # A floor line under the lowest point, to judge contact and balance.
    ax.axhline(vertices[:, 1].min(), color="0.8", linewidth=0.5, zorder=0)
