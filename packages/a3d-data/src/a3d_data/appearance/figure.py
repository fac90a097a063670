"""A contact sheet of sampled appearances, for looking at skin, clothing, lights and backgrounds.

Bodies are drawn like the amputation figure (matplotlib painter's algorithm, orthographic view,
no GL) but coloured per face from the sampled vertex albedo and shaded by the sampled light, over
sampled backgrounds, at the crop size of A3D; the colour jitter is then applied to each panel.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch

from a3d_data.appearance.augment import colour_jitter
from a3d_data.appearance.backgrounds import BackgroundCatalogue
from a3d_data.appearance.clothing import sample_vertex_colors
from a3d_data.appearance.lighting import sample_lights
from a3d_data.appearance.params import AppearanceParams
from a3d_data.appearance.regions import body_regions
from a3d_data.atomic import atomic_path
from a3d_data.body_model import BodyModel
from a3d_data.render.base import Lights
from a3d_data.synthesis.schema import CROP_SIZE

log = logging.getLogger(__name__)

BODY_FRACTION = 0.8  # of the panel height the body spans (A3D's bodies are ~200 px of 256)
_ARM_DOWN_DEG = 65.0


def _rotation(axis: str, degrees: float) -> torch.Tensor:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    if axis == "y":
        return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    if axis == "z":
        return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _relaxed_poses(count: int, rng: np.random.Generator) -> torch.Tensor:
    """(count, 24, 3, 3) arms lowered from the T-pose, elbows and knees a little bent, random yaw;
    every fourth body faces away, to show the back of the clothes and hair."""
    rotmats = torch.eye(3).expand(count, 24, 3, 3).clone()
    for i in range(count):
        yaw = 180.0 + rng.uniform(-20, 20) if i % 4 == 3 else rng.uniform(-35, 35)
        rotmats[i, 0] = _rotation("y", yaw)
        down = _ARM_DOWN_DEG + rng.uniform(-15, 15)
        rotmats[i, 16] = _rotation("z", -down)  # left arm lies along +x: turn it towards -y
        rotmats[i, 17] = _rotation("z", down)
        rotmats[i, 18] = _rotation("y", -rng.uniform(0, 40))
        rotmats[i, 19] = _rotation("y", rng.uniform(0, 40))
        rotmats[i, 4] = _rotation("x", rng.uniform(0, 20))
        rotmats[i, 5] = _rotation("x", rng.uniform(0, 20))
    return rotmats


def _shaded_faces(vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray, lights: Lights, i: int):
    """Front-facing triangles (N, 3, 2) sorted far to near and their shaded RGB (N, 3).

    The light's direction is in the OpenCV camera frame; this view looks down -z with y up, so
    the camera frame's y and z are this frame's -y and -z.
    """
    triangles = vertices[faces]
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    area = np.linalg.norm(normals, axis=1)
    keep = (area > 1e-12) & (normals[:, 2] > 0)
    triangles, normals, area = triangles[keep], normals[keep], area[keep]
    direction = lights.direction[i].numpy() * np.array([1.0, -1.0, -1.0])
    lambert = np.clip((normals / area[:, None]) @ direction, 0.0, 1.0)
    shade = float(lights.ambient[i]) + float(lights.diffuse[i]) * lambert
    albedo = colours[faces[keep]].mean(1)
    rgb = np.clip(albedo * shade[:, None] * lights.colour[i].numpy(), 0.0, 1.0)
    order = np.argsort(triangles[:, :, 2].mean(1))
    return triangles[order][:, :, :2], rgb[order]


def _render_panels(
    vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray, lights: Lights, backgrounds: np.ndarray
) -> np.ndarray:
    """(B, S, S, 3) uint8: each body over its background, drawn by matplotlib at S x S pixels.

    vertices : (B, V, 3) metres, y up; faces : (F, 3); colours : (B, V, 3) albedo in [0, 1];
    backgrounds : (B, S, S, 3) uint8.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection

    count, size = backgrounds.shape[0], backgrounds.shape[1]
    panels = np.empty_like(backgrounds)
    for i in range(count):
        fig = plt.figure(figsize=(size / 100, size / 100), dpi=100)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_axis_off()
        ax.imshow(backgrounds[i], extent=(0, size, 0, size), interpolation="nearest")
        xy = vertices[i][:, :2]
        low, high = xy.min(0), xy.max(0)
        scale = BODY_FRACTION * size / (high[1] - low[1])
        centre = 0.5 * (low + high)
        placed = vertices[i].copy()
        placed[:, :2] = (xy - centre) * scale + 0.5 * size
        polys, rgb = _shaded_faces(placed, faces, colours[i], lights, i)
        # Edges in the face colour close the anti-aliasing seams between adjacent triangles.
        ax.add_collection(PolyCollection(polys, facecolors=rgb, edgecolors=rgb, linewidths=0.2))
        ax.set_xlim(0, size)
        ax.set_ylim(0, size)
        fig.canvas.draw()
        panels[i] = np.asarray(fig.canvas.buffer_rgba())[:size, :size, :3]
        plt.close(fig)
    return panels


def draw_appearance_sheet(
    model: BodyModel,
    output: Path,
    params: AppearanceParams | None = None,
    seed: int = 0,
    count: int = 16,
    columns: int = 4,
    split: str = "train",
) -> Path:
    """Sample ``count`` appearances and write a labelled sheet of them to ``output`` (PNG).

    Each panel is one body (random shape, relaxed pose) with sampled skin, clothing and light
    over a sampled background of ``split``, colour-jittered, at A3D's crop size.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = params or AppearanceParams()
    rng = np.random.default_rng(seed)
    rotmats = _relaxed_poses(count, rng)
    betas = torch.as_tensor(rng.normal(0.0, 1.0, size=(count, model.num_betas)), dtype=torch.float32)
    with torch.no_grad():
        vertices = model.forward_rotmats(rotmats, betas).vertices.numpy()
    colours, meta = sample_vertex_colors(model, count, rng, params)
    lights = sample_lights(count, rng, params.lighting)
    catalogue = BackgroundCatalogue(params.backgrounds)
    backgrounds, ids = catalogue.sample_backgrounds(count, rng, split, CROP_SIZE)
    faces = np.asarray(model.faces, dtype=np.int64)
    # Sorting whole triangles cannot keep the teeth and tongue behind the head the way the
    # renderer's depth test does; they are never seen with the mouth closed, so leave them out.
    faces = faces[~body_regions(model).mouth[faces].any(1)]
    panels = _render_panels(vertices, faces, colours, lights, backgrounds)
    panels = colour_jitter(panels, rng, params.colour_jitter)

    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 2.9, rows * 3.4), dpi=100)
    axes = np.atleast_1d(axes).ravel()
    for ax in axes:
        ax.set_axis_off()
    for i in range(count):
        axes[i].imshow(panels[i])
        m = meta[i]
        shoes = "shoes" if m["shoes"] else "barefoot"
        axes[i].set_title(
            f"MST-{m['skin_tone'] + 1}  top {m['sleeves']}/{m['top_pattern']}\n"
            f"bottom {m['legs']}/{m['bottom_pattern']}  {shoes}  hair {m['hair']}\n{ids[i]}",
            fontsize=7,
        )
    title = f"Sampled A3D appearances ({split} backgrounds, seed {seed}, {CROP_SIZE} px crops, jittered)"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 0.98))  # keep the first row's titles clear of the suptitle
    with atomic_path(output) as temporary:
        fig.savefig(temporary, dpi=100)
    plt.close(fig)
    log.info("wrote %s", output)
    return output
