"""Procedural backgrounds: gradients, clouds, blurred colour fields, tiled walls, floors.

Each is a pure function of its kind and an integer seed, so the id
``procedural/<kind>/<seed>`` names one image exactly (at a given size).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
from matplotlib.colors import hsv_to_rgb
from PIL import Image
from scipy.ndimage import gaussian_filter, zoom


def _random_colours(rng: np.random.Generator, count: int) -> np.ndarray:
    """(count, 3) float sRGB in [0, 1]: any hue, mostly muted, as walls and scenery are."""
    hsv = np.stack(
        [
            rng.uniform(0.0, 1.0, count),
            rng.uniform(0.0, 0.7, count) ** 1.5,
            rng.uniform(0.15, 0.95, count),
        ],
        axis=1,
    )
    return hsv_to_rgb(hsv)


def _smooth(field: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of (H, W) or (H, W, C) ``field`` by ``sigma`` pixels.

    Wide blurs run on a grid shrunk by about sigma / 2 and are upsampled bilinearly: the result
    is smooth at that scale anyway, and a 256 px image takes ~1 ms instead of ~10 ms.
    """
    factor = max(1, int(sigma // 2))
    size = field.shape[:2]
    if factor == 1:
        return gaussian_filter(field, (sigma, sigma) + (0,) * (field.ndim - 2), mode="nearest")
    small = field[::factor, ::factor]
    small = gaussian_filter(small, (sigma / factor,) * 2 + (0,) * (field.ndim - 2), mode="nearest")
    zoomed = zoom(small, (factor, factor) + (1,) * (field.ndim - 2), order=1, mode="nearest", grid_mode=True)
    return zoomed[: size[0], : size[1]]


def _fractal_noise(size: int, rng: np.random.Generator, scale_px: float, octaves: int = 4) -> np.ndarray:
    """(size, size) smooth noise with zero mean and unit standard deviation; features ~scale_px."""
    total = np.zeros((size, size))
    amplitude, sigma = 1.0, scale_px
    for _ in range(octaves):
        # White noise blurred by sigma has standard deviation ~1 / (2 sqrt(pi) sigma): undo that,
        # so each octave's amplitude is what the loop says.
        blurred = _smooth(rng.standard_normal((size, size)), sigma)
        total += amplitude * blurred / max(blurred.std(), 1e-8)
        amplitude *= 0.5
        sigma = max(sigma / 2.0, 0.7)
    return (total - total.mean()) / max(total.std(), 1e-8)


def _ramp(t: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Map t in [0, 1] (H, W) through evenly spaced colours (K, 3) -> (H, W, 3)."""
    stops = np.linspace(0.0, 1.0, len(colours))
    return np.stack([np.interp(t, stops, colours[:, c]) for c in range(3)], axis=-1)


def _gradient(size: int, rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(0.0, 2.0 * np.pi)
    y, x = np.mgrid[0:size, 0:size] / (size - 1) - 0.5
    t = np.clip((x * np.cos(angle) + y * np.sin(angle)) / 0.71 + 0.5, 0.0, 1.0)
    image = _ramp(t, _random_colours(rng, int(rng.integers(2, 4))))
    # A faint vignette and grain keep large flat areas from looking like a rendering artefact.
    vignette = 1.0 - rng.uniform(0.0, 0.35) * (x**2 + y**2) * 2.0
    grain = 0.02 * _fractal_noise(size, rng, size / 16, octaves=2)
    return image * vignette[..., None] + grain[..., None]


def _clouds(size: int, rng: np.random.Generator) -> np.ndarray:
    field = _fractal_noise(size, rng, size * rng.uniform(0.04, 0.15))
    t = np.clip(0.5 + field / rng.uniform(3.0, 6.0), 0.0, 1.0)
    return _ramp(t, _random_colours(rng, int(rng.integers(2, 5))))


def _colour_field(size: int, rng: np.random.Generator) -> np.ndarray:
    """Patches of colour around random centres, blurred like an out-of-focus scene."""
    count = int(rng.integers(4, 12))
    centres = rng.uniform(0, size, size=(count, 2))
    colours = _random_colours(rng, count)
    y, x = np.mgrid[0:size, 0:size]
    distance = (y[..., None] - centres[:, 0]) ** 2 + (x[..., None] - centres[:, 1]) ** 2
    image = colours[distance.argmin(-1)]
    return _smooth(image, size * rng.uniform(0.03, 0.1))


def _tile_colours(rng: np.random.Generator, rows: int, columns: int, base: np.ndarray) -> np.ndarray:
    variation = rng.uniform(0.0, 0.12)
    return np.clip(base + rng.normal(0.0, variation, size=(rows, columns, 1)), 0.0, 1.0)


def _tiles(size: int, rng: np.random.Generator) -> np.ndarray:
    """A wall of tiles or bricks seen face-on, with grout lines."""
    height = rng.uniform(12.0, 48.0)
    width = height * rng.choice([1.0, 2.0, 3.0])
    offset = rng.choice([0.0, 0.5])  # running bond for bricks
    grout = rng.uniform(1.0, 3.0)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    row = np.floor(y / height).astype(np.int64)
    shifted = x / width + offset * row
    column = np.floor(shifted).astype(np.int64)
    base, grout_colour = _random_colours(rng, 2)
    colours = _tile_colours(rng, row.max() + 1, column.max() + 1, base)
    image = colours[row, column]
    edge = np.minimum(
        np.minimum(y - row * height, (row + 1) * height - y),
        np.minimum(shifted - column, column + 1 - shifted) * width,
    )
    mortar = np.clip(1.5 - edge / (0.5 * grout), 0.0, 1.0)[..., None]
    image = image * (1.0 - mortar) + grout_colour * mortar
    return image * (1.0 + 0.05 * _fractal_noise(size, rng, 2.0)[..., None])


def _floor(size: int, rng: np.random.Generator) -> np.ndarray:
    """A wall meeting a tiled or planked floor at a horizon, in perspective."""
    horizon = rng.uniform(0.25, 0.65) * size
    wall, floor_a, floor_b = _random_colours(rng, 3)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    image = np.empty((size, size, 3))
    shade = 1.0 - 0.25 * (1.0 - y / horizon)  # walls darken towards the ceiling
    image[:] = (wall * shade[..., None])[:, :, :]
    below = y > horizon
    # Ground-plane coordinates of each pixel under a pinhole camera at unit height.
    depth = size / np.maximum(y - horizon, 1e-3)
    lateral = (x - 0.5 * size) / size * depth
    tile = rng.uniform(0.3, 1.2)
    if rng.uniform() < 0.5:  # checks
        checker = (np.floor(lateral / tile) + np.floor(depth / tile)) % 2
    else:  # planks running away from the camera
        checker = np.floor(lateral / (0.4 * tile)) % 2 * 0.5
    floor = floor_a + checker[..., None] * (floor_b - floor_a)
    # Far away the tiles are finer than a pixel: fade to their mean colour instead of aliasing.
    fade = np.clip((y - horizon) / (0.2 * size), 0.0, 1.0)[..., None]
    floor = fade * floor + (1.0 - fade) * (floor_a + 0.5 * (floor_b - floor_a))
    image[below] = floor[below]
    return gaussian_filter(image, (0.6, 0.6, 0))


PROCEDURAL_KINDS: Final[dict[str, Callable[[int, np.random.Generator], np.ndarray]]] = {
    "gradient": _gradient,
    "clouds": _clouds,
    "colour_field": _colour_field,
    "tiles": _tiles,
    "floor": _floor,
}


def procedural_background(kind: str, seed: int, size: int) -> np.ndarray:
    """The procedural background ``kind`` number ``seed`` as (size, size, 3) uint8 RGB."""
    if kind not in PROCEDURAL_KINDS:
        expected = ", ".join(PROCEDURAL_KINDS)
        raise ValueError(f"unknown procedural background {kind!r}; expected one of {expected}")
    # Drawn at half resolution and upsampled: these are smooth fields behind the person, and
    # generating them dominated the synthesis time per sample at full size.
    drawn = max(32, size // 2)
    image = PROCEDURAL_KINDS[kind](drawn, np.random.default_rng(seed))
    image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    if drawn == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
