"""The picture of the 13 AJAHR classes: one body, each limb removed at each level.

Drawn with matplotlib alone (painter's algorithm, flat Lambert shading, orthographic view), so it
needs no GL. The removed part of the intact body is drawn as a faint ghost behind the amputee
mesh, and a red dot marks the joint the limb collapsed onto.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

from a3d_data.amputation import (  # noqa: E402
    AMPUTATION_CLASSES,
    affected_vertex_mask,
    amputate,
    head_labels_from_classes,
    zeroed_joint_mask,
)
from a3d_data.atomic import atomic_path  # noqa: E402
from a3d_data.body_model import BodyModel  # noqa: E402
from a3d_data.figures.painter import SKIN_COLOUR, shaded_polygons, yaw_rotation  # noqa: E402
from a3d_data.params import AmputationFigureParams  # noqa: E402
from a3d_data.skeleton import NUM_SMPL_JOINTS, SMPL_JOINT_NAMES  # noqa: E402

log = logging.getLogger(__name__)

_GHOST = np.array([0.85, 0.25, 0.25])


def draw_amputation_classes(model: BodyModel, params: AmputationFigureParams, output: Path) -> Path:
    """Render every AJAHR class on the mean body in the T-pose and write a labelled PNG."""
    num = len(AMPUTATION_CLASSES)
    classes = torch.arange(num)
    labels = head_labels_from_classes(classes)
    rotmats = torch.eye(3).expand(num, NUM_SMPL_JOINTS, 3, 3).clone()
    rotmats[:, 0] = yaw_rotation(params.yaw_degrees)
    with torch.no_grad():
        intact = model.forward_rotmats(rotmats)
        amputee = model.forward_rotmats(amputate(rotmats, labels))
    zeroed = zeroed_joint_mask(labels)
    ghost_vertices = affected_vertex_mask(model.lbs_weights, zeroed).numpy()
    faces = model.faces.astype(np.int64)

    columns = params.columns
    rows = math.ceil(num / columns)
    dpi = 100
    inches = params.panel_pixels / dpi
    fig, axes = plt.subplots(rows, columns, figsize=(columns * inches, rows * inches * 1.1), dpi=dpi)
    axes = np.atleast_1d(axes).ravel()
    all_xy = intact.vertices[..., :2].reshape(-1, 2).numpy()
    low, high = all_xy.min(0), all_xy.max(0)
    pad = 0.05 * (high - low).max()
    for ax in axes:
        ax.set_axis_off()
    for i, row in enumerate(AMPUTATION_CLASSES):
        ax = axes[i]
        ghost_faces = ghost_vertices[i][faces].any(1)
        if ghost_faces.any():
            polys, colours = shaded_polygons(intact.vertices[i].numpy(), faces, _GHOST, ghost_faces)
            ax.add_collection(PolyCollection(polys, facecolors=colours, edgecolors="none", alpha=0.18))
        polys, colours = shaded_polygons(amputee.vertices[i].numpy(), faces, SKIN_COLOUR)
        # Edges in the face colour close the anti-aliasing seams between adjacent triangles.
        ax.add_collection(PolyCollection(polys, facecolors=colours, edgecolors=colours, linewidths=0.3))
        if row.amputation_joint is not None:
            stump = amputee.joints[i, row.amputation_joint, :2].numpy()
            ax.plot(*stump, "o", color="#d62728", markersize=5)
            detail = f"zeroed: {', '.join(SMPL_JOINT_NAMES[j] for j in row.zeroed_joints)}"
        else:
            detail = "nothing zeroed"
        ax.set_xlim(low[0] - pad, high[0] + pad)
        ax.set_ylim(low[1] - pad, high[1] + pad)
        ax.set_aspect("equal")
        ax.set_title(f"{row.index}: {row.name}\n{detail}", fontsize=8)
    fig.suptitle(
        "AJAHR amputation classes on the A3D body model (zero rotation matrices; red: stump joint, "
        "faint: removed part)",
        fontsize=10,
    )
    fig.tight_layout()
    with atomic_path(output) as temporary:
        fig.savefig(temporary, dpi=dpi)
    plt.close(fig)
    log.info("wrote %s", output)
    return output
