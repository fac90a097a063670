"""Drawing meshes with matplotlib alone: orthographic view, painter's algorithm, flat Lambert shading.

For figures (the class sheet, the pose families), where a GL context is not worth it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

SKIN_COLOUR = np.array([0.80, 0.66, 0.56])
_LIGHT = np.array([-0.35, 0.45, 0.82]) / np.linalg.norm([-0.35, 0.45, 0.82])


def yaw_rotation(degrees: float) -> torch.Tensor:
    """Rotation (3, 3) about the vertical (y) axis."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def shaded_polygons(
    vertices: np.ndarray, faces: np.ndarray, base: np.ndarray, face_mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Front-facing, non-degenerate triangles (N, 3, 2) sorted far to near, with their colours (N, 3).

    ``vertices`` (V, 3) in a y-up frame seen from +z; ``base`` the RGB albedo in [0, 1].
    """
    triangles = vertices[faces]
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    area = np.linalg.norm(normals, axis=1)
    keep = (area > 1e-12) & (normals[:, 2] > 0)  # the camera looks down -z from +z
    if face_mask is not None:
        keep &= face_mask
    triangles, normals, area = triangles[keep], normals[keep], area[keep]
    shade = 0.35 + 0.65 * np.clip((normals / area[:, None]) @ _LIGHT, 0.0, 1.0)
    order = np.argsort(triangles[:, :, 2].mean(1))
    return triangles[order][:, :, :2], np.clip(base[None] * shade[order, None], 0, 1)
