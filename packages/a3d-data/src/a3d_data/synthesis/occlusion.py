"""Synthetic occluders: the occlusion set, analog of 3DOH50K.

A non-amputee body gets an object drawn over one limb, from the limb's end up to one of the three
amputation levels, so the hidden keypoints look like an amputation's missing ones. The labels stay
non-amputee; the hidden keypoints are marked occluded. BPAC-Net must learn to tell the two apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from a3d_data.skeleton import COCO_LIMB_CHAINS


@dataclass(frozen=True)
class Occluder:
    """One drawn occluder: its mask (H, W) bool, the limb and level it hides, its kind."""

    mask: np.ndarray
    limb: int
    level: int  # 0: the distal keypoint, 1: from the middle joint, 2: the whole limb
    kind: str


def _shape_mask(points: np.ndarray, size: int, rng: np.random.Generator, kind: str) -> np.ndarray:
    """A filled shape (size, size) bool covering every one of ``points`` (K, 2) with a margin."""
    margin = rng.uniform(12, 22)
    centre = (points.min(0) + points.max(0)) / 2
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    start, end = points[0], points[-1]
    direction = end - start
    length = np.linalg.norm(direction)
    direction = direction / length if length > 1e-6 else np.array([1.0, 0.0])
    normal = np.array([-direction[1], direction[0]])
    spread = np.abs((points - start) @ normal).max()  # how far the bend leaves the straight line
    if kind == "ellipse":  # along the limb: the ends on its major axis, the bend inside it
        middle = (start + end) / 2
        # Half-axes scaled by sqrt 2 hold the box around the points in the limb's frame.
        along = np.abs((points - middle) @ direction).max()
        across = np.abs((points - middle) @ normal).max()
        half_length, half_width = np.sqrt(2) * along + margin, np.sqrt(2) * across + margin
        t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        outline = (
            middle + np.outer(np.cos(t) * half_length, direction) + np.outer(np.sin(t) * half_width, normal)
        )
        draw.polygon([tuple(p) for p in outline], fill=255)
    elif kind == "bar":  # a thick bar along the limb, like a board or a bag
        width = spread + margin
        start, end = start - direction * margin, end + direction * margin
        corners = [start + normal * width, end + normal * width, end - normal * width, start - normal * width]
        draw.polygon([tuple(c) for c in corners], fill=255)
    else:  # an irregular octagon whose inscribed circle holds the points
        sides = 8
        reach = np.linalg.norm(points - centre, axis=1).max() + margin
        angles = rng.uniform(0, 2 * np.pi) + np.arange(sides) * 2 * np.pi / sides
        radii = reach / np.cos(np.pi / sides) * rng.uniform(1.0, 1.25, sides)
        polygon = centre + np.stack([np.cos(angles), np.sin(angles)], 1) * radii[:, None]
        draw.polygon([tuple(p) for p in polygon], fill=255)
    return np.asarray(canvas) > 0


def _fill(size: int, rng: np.random.Generator, texture: Callable[[], np.ndarray] | None) -> np.ndarray:
    """An occluder's appearance (size, size, 3) uint8: a texture, stripes or a shaded colour.

    ``texture`` is called only when a texture is chosen (drawing one costs milliseconds).
    """
    choice = rng.random()
    if texture is not None and choice < 0.45:
        return texture()
    colour = rng.uniform(20, 235, 3)
    ramp = np.linspace(0.75, 1.1, size)[:, None, None] * np.ones((1, size, 1))
    image = colour[None, None, :] * ramp
    if choice < 0.75:
        period = rng.uniform(8, 24)
        other = rng.uniform(20, 235, 3)
        stripes = (
            np.arange(size)[None, :] + np.arange(size)[:, None] * rng.uniform(-1, 1)
        ) % period < period / 2
        image = np.where(stripes[..., None], image, other[None, None, :] * ramp)
    return np.clip(image, 0, 255).astype(np.uint8)


def draw_occluders(
    images: np.ndarray,
    keypoints2d: np.ndarray,
    rng: np.random.Generator,
    texture: Callable[[], np.ndarray] | None = None,
) -> tuple[np.ndarray, list[Occluder]]:
    """Draw one occluder per image over a random limb at a random level.

    images : (B, H, W, 3) uint8 (modified copy returned); keypoints2d : (B, 17, 2) pixels of the
    intact body; texture : returns an (H, W, 3) uint8 patch to fill an occluder with, or None.
    """
    out = images.copy()
    size = images.shape[1]
    occluders = []
    for i in range(len(images)):
        limb = int(rng.integers(0, 4))
        level = int(rng.integers(0, 3))
        chain = np.array(COCO_LIMB_CHAINS[limb])[2 - level :]
        # The occluder reaches a little past the limb's end (the hand or foot beyond the wrist/ankle).
        points = keypoints2d[i, chain]
        if len(points) == 1:
            parent = keypoints2d[i, COCO_LIMB_CHAINS[limb][1]]
            points = np.stack([points[0], points[0] + 0.5 * (points[0] - parent)])
        kind = str(rng.choice(["ellipse", "bar", "polygon"]))
        mask = _shape_mask(points, size, rng, kind)
        fill = _fill(size, rng, texture)
        out[i][mask] = fill[mask]
        occluders.append(Occluder(mask=mask, limb=limb, level=level, kind=kind))
    return out, occluders
