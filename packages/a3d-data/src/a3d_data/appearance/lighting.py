"""Per-image lights for the renderer: one directional light from the camera's side, plus ambient.

Directions are in the OpenCV camera frame (x right, y down, z forward) and point *towards* the
light, as :class:`a3d_data.render.base.Lights` expects: a light above and behind the camera, which
lights the body's front, has negative y and negative z.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import torch

from a3d_data.appearance.params import LightingParams
from a3d_data.render.base import Lights

# Colour of a black body seen by an sRGB camera balanced for D65, by temperature (kelvin), after
# the widely used blackbody colour table of Mitchell Charity (8-bit sRGB, brightest channel 255),
# rounded; the two hottest rows only anchor the interpolation.
_BLACKBODY_KELVIN: Final[tuple[float, ...]] = (
    1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 6000.0, 6500.0, 7000.0, 8000.0, 9000.0, 10000.0,
    12000.0, 15000.0, 40000.0,
)  # fmt: skip
_BLACKBODY_RGB: Final[tuple[tuple[int, int, int], ...]] = (
    (255, 56, 0), (255, 137, 18), (255, 180, 107), (255, 209, 163), (255, 228, 206),
    (255, 243, 239), (255, 249, 253), (245, 243, 255), (227, 233, 255), (214, 225, 255),
    (204, 219, 255), (191, 211, 255), (181, 205, 255), (159, 191, 255),
)  # fmt: skip


def blackbody_rgb(kelvin: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB in [0, 1] (brightest channel 1) of black bodies at ``kelvin`` (...)."""
    # Interpolate in mireds (1e6 / K): colour changes about evenly per mired, not per kelvin.
    mireds = 1e6 / np.asarray(kelvin, dtype=np.float64)
    table_mireds = 1e6 / np.array(_BLACKBODY_KELVIN)[::-1]
    table_rgb = np.array(_BLACKBODY_RGB, dtype=np.float64)[::-1] / 255.0
    return np.stack([np.interp(mireds, table_mireds, table_rgb[:, c]) for c in range(3)], axis=-1)


def light_direction(elevation_deg: np.ndarray, azimuth_deg: np.ndarray) -> np.ndarray:
    """(..., 3) unit vectors towards a light, OpenCV camera frame.

    elevation_deg : angle above the horizontal (camera x-z plane); azimuth_deg : angle from the
    camera's backward direction (-z) towards +x (the image's right).
    """
    elevation = np.radians(elevation_deg)
    azimuth = np.radians(azimuth_deg)
    return np.stack(
        [
            np.sin(azimuth) * np.cos(elevation),
            -np.sin(elevation),  # up is -y
            -np.cos(azimuth) * np.cos(elevation),  # towards the camera is -z
        ],
        axis=-1,
    )


def sample_lights(count: int, rng: np.random.Generator, params: LightingParams | None = None) -> Lights:
    """Draw ``count`` lights.

    Parameters
    ----------
    count : number of images (B).
    rng : numpy random generator.
    params : angle, intensity and colour-temperature ranges; defaults when None.

    Returns
    -------
    :class:`Lights` with direction (B, 3) unit vectors, ambient (B,), diffuse (B,), colour (B, 3)
    in [0, 1], all float32 CPU tensors.
    """
    params = params or LightingParams()
    elevation = rng.uniform(params.elevation_deg.low, params.elevation_deg.high, size=count)
    azimuth = rng.uniform(params.azimuth_deg.low, params.azimuth_deg.high, size=count)
    ambient = rng.uniform(params.ambient.low, params.ambient.high, size=count)
    diffuse = rng.uniform(params.diffuse.low, params.diffuse.high, size=count)
    # Uniform in mireds, so warm and cool light are about equally common.
    mireds = rng.uniform(1e6 / params.temperature_k.high, 1e6 / params.temperature_k.low, size=count)
    tint = blackbody_rgb(1e6 / mireds)
    colour = 1.0 + params.tint_strength * (tint - 1.0)

    def as_tensor(values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(values, dtype=torch.float32)

    return Lights(
        direction=as_tensor(light_direction(elevation, azimuth)),
        ambient=as_tensor(ambient),
        diffuse=as_tensor(diffuse),
        colour=as_tensor(colour),
    )
