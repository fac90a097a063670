"""Skin tones: the Monk Skin Tone scale as albedo, sampled with a little per-body jitter.

The palette is the 10-tone Monk Skin Tone (MST) scale (Ellis Monk, 2019; released by Google under
CC BY 4.0), which spans the range of human skin from very light (MST-1) to very dark (MST-10) more
evenly than the Fitzpatrick types. The palette index is what A3D's index stores as ``skin_tone``.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from a3d_data.appearance.params import SkinParams

# sRGB swatches of the published scale, lightest first.
MONK_SKIN_TONES_HEX: Final[tuple[str, ...]] = (
    "#f6ede4", "#f3e7db", "#f7ead0", "#eadaba", "#d7bd96",
    "#a07e56", "#825c43", "#604134", "#3a312a", "#292420",
)  # fmt: skip
NUM_SKIN_TONES: Final[int] = len(MONK_SKIN_TONES_HEX)


def hex_to_rgb(code: str) -> np.ndarray:
    """``"#rrggbb"`` -> (3,) float64 sRGB in [0, 1]."""
    code = code.lstrip("#")
    return np.array([int(code[i : i + 2], 16) for i in (0, 2, 4)], dtype=np.float64) / 255.0


def skin_palette() -> np.ndarray:
    """(NUM_SKIN_TONES, 3) float64 sRGB in [0, 1], lightest first."""
    return np.stack([hex_to_rgb(code) for code in MONK_SKIN_TONES_HEX])


def relative_luminance(rgb: np.ndarray) -> np.ndarray:
    """Relative luminance (Rec. 709 weights on linearised sRGB) of (..., 3) sRGB in [0, 1] -> (...)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    return linear @ np.array([0.2126, 0.7152, 0.0722])


def sample_skin_tones(
    count: int, rng: np.random.Generator, params: SkinParams | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``count`` skin albedos.

    Parameters
    ----------
    count : number of bodies.
    rng : numpy random generator (the only source of randomness).
    params : palette weights and jitter; defaults when None.

    Returns
    -------
    colours : (count, 3) float32 sRGB albedo in [0, 1].
    tones : (count,) int64 palette index (0 = MST-1, lightest).
    """
    params = params or SkinParams()
    palette = skin_palette()
    if params.tone_weights is None:
        probabilities = np.full(NUM_SKIN_TONES, 1.0 / NUM_SKIN_TONES)
    else:
        weights = np.asarray(params.tone_weights, dtype=np.float64)
        if weights.shape != (NUM_SKIN_TONES,) or weights.sum() <= 0.0:
            raise ValueError(
                f"skin.tone_weights: expected {NUM_SKIN_TONES} non-negative weights with a positive "
                f"sum (one per Monk tone), got {params.tone_weights}"
            )
        probabilities = weights / weights.sum()
    tones = rng.choice(NUM_SKIN_TONES, size=count, p=probabilities).astype(np.int64)
    # A brightness factor keeps the tone's hue; the small per-channel shift varies the undertone.
    brightness = np.exp(rng.normal(0.0, params.lightness_jitter, size=(count, 1)))
    undertone = rng.normal(0.0, params.channel_jitter, size=(count, 3))
    colours = np.clip(palette[tones] * brightness + undertone, 0.0, 1.0)
    return colours.astype(np.float32), tones
