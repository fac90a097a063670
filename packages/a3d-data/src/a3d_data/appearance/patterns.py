"""Fabric patterns evaluated per vertex from rest-pose surface coordinates.

A pattern is a mask in [0, 1] per vertex (0: the garment's main colour, 1: its second colour).
Vertex colours can only show detail down to the mesh's edge length, so every edge of a pattern is
blurred over the local vertex spacing (a box filter): stripes stay stripes instead of zigzags.
"""

from __future__ import annotations

from typing import Final

import numpy as np

PATTERNS: Final[tuple[str, ...]] = (
    "solid", "horizontal_stripes", "vertical_stripes", "checks", "dots", "noise",
)  # fmt: skip
_NOISE_GRID: Final[int] = 32  # lattice cells of the value noise before it repeats


def _square_wave(coordinate: np.ndarray, period: float, phase: float, duty: float, blur: np.ndarray):
    """Anti-aliased square wave: 1 inside the first ``duty`` of each period, 0 outside.

    coordinate, blur : (N,) metres; period metres; phase in periods; duty in (0, 1).
    """
    t = np.mod(coordinate / period + phase, 1.0) * period
    width = duty * period
    inside = t < width
    # Signed distance (metres) to the nearest stripe edge, positive inside the stripe.
    distance = np.where(inside, np.minimum(t, width - t), -np.minimum(t - width, period - t))
    return np.clip(0.5 + distance / blur, 0.0, 1.0)


def _value_noise(points: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth 3D value noise in [-1, 1] with features of about ``scale`` metres; points (N, 3)."""
    lattice = rng.uniform(-1.0, 1.0, size=(_NOISE_GRID,) * 3)
    q = points / scale + rng.uniform(0.0, _NOISE_GRID, size=3)
    base = np.floor(q).astype(np.int64)
    f = q - base
    f = f * f * (3.0 - 2.0 * f)  # smoothstep hides the lattice
    result = np.zeros(len(points))
    for corner in np.ndindex(2, 2, 2):
        index = np.mod(base + np.array(corner), _NOISE_GRID)
        weight = np.prod(np.where(np.array(corner, dtype=bool), f, 1.0 - f), axis=1)
        result += weight * lattice[index[:, 0], index[:, 1], index[:, 2]]
    return result


def pattern_mask(
    kind: str,
    surface_uv: np.ndarray,
    rest: np.ndarray,
    spacing: np.ndarray,
    period: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Where a garment shows its second colour.

    Parameters
    ----------
    kind : one of :data:`PATTERNS`.
    surface_uv : (N, 2) metres, (around, along) the body part's axis.
    rest : (N, 3) rest-pose positions, metres (for the 3D noise, which needs no seams).
    spacing : (N,) metres, local vertex spacing; pattern edges are blurred over it.
    period : repeat length, metres.
    rng : draws phase, duty cycle, dot radius and noise lattice.

    Returns
    -------
    (N,) float64 in [0, 1].
    """
    around, along = surface_uv[:, 0].astype(np.float64), surface_uv[:, 1].astype(np.float64)
    blur = np.maximum(spacing.astype(np.float64), 1e-4)
    if kind == "solid":
        return np.zeros(len(surface_uv))
    if kind == "horizontal_stripes":
        return _square_wave(along, period, rng.uniform(), rng.uniform(0.3, 0.6), blur)
    if kind == "vertical_stripes":
        return _square_wave(around, period, rng.uniform(), rng.uniform(0.3, 0.6), blur)
    if kind == "checks":
        first = 2.0 * _square_wave(around, period, rng.uniform(), 0.5, blur) - 1.0
        second = 2.0 * _square_wave(along, period, rng.uniform(), 0.5, blur) - 1.0
        return 0.5 - 0.5 * first * second
    if kind == "dots":
        radius = rng.uniform(0.2, 0.32) * period
        phase = rng.uniform(0.0, 1.0, size=2)
        du = (around / period + phase[0]) % 1.0 - 0.5
        dv = (along / period + phase[1]) % 1.0 - 0.5
        distance = radius - np.hypot(du, dv) * period
        return np.clip(0.5 + distance / blur, 0.0, 1.0)
    if kind == "noise":
        # Two octaves, then a steep ramp: blotches (camouflage, tie-dye) rather than a grey haze.
        field = _value_noise(rest, period, rng) + 0.5 * _value_noise(rest, 0.5 * period, rng)
        return np.clip(0.5 + 2.5 * field, 0.0, 1.0)
    raise ValueError(f"unknown pattern {kind!r}; expected one of {', '.join(PATTERNS)}")
