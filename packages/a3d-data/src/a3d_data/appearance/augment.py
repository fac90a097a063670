"""Photometric jitter of finished images: brightness, contrast, saturation, hue, blur, noise, JPEG.

Only colours change; pixels never move. In particular nothing here flips an image: A3D's labels
are side-specific (left arm vs right arm), so a mirrored image would carry wrong labels.
"""

from __future__ import annotations

import io
from typing import Final

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from a3d_data.appearance.params import ColourJitterParams

# Rec. 601 luma weights and the RGB -> YIQ matrix: hue rotates the (I, Q) chroma plane.
_LUMA: Final[np.ndarray] = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_RGB_TO_YIQ: Final[np.ndarray] = np.array(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=np.float64
)


def _hue_matrices(turns: np.ndarray) -> np.ndarray:
    """(B, 3, 3) RGB -> RGB matrices rotating hue by ``turns`` (B,) full turns."""
    angle = 2.0 * np.pi * turns
    rotation = np.zeros((len(turns), 3, 3))
    rotation[:, 0, 0] = 1.0
    rotation[:, 1, 1] = rotation[:, 2, 2] = np.cos(angle)
    rotation[:, 1, 2], rotation[:, 2, 1] = -np.sin(angle), np.sin(angle)
    # The exact inverse (not the rounded textbook YIQ -> RGB) keeps a zero rotation the identity.
    return np.linalg.inv(_RGB_TO_YIQ) @ rotation @ _RGB_TO_YIQ


def colour_jitter(
    images: np.ndarray,
    rng: np.random.Generator,
    params: ColourJitterParams | None = None,
    strength: float = 1.0,
) -> np.ndarray:
    """Jitter the colours of a batch of images, each with its own random factors.

    Parameters
    ----------
    images : (B, H, W, 3) uint8 RGB.
    rng : numpy random generator.
    params : ranges and probabilities; defaults when None.
    strength : scales every range about the identity and the probabilities of blur, noise and
        JPEG (capped at 1); 0 returns the images unchanged.

    Returns
    -------
    (B, H, W, 3) uint8, a new array.
    """
    params = params or ColourJitterParams()
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images: expected (B, H, W, 3) uint8, got {images.shape} {images.dtype}")
    if strength < 0.0:
        raise ValueError(f"strength must be non-negative, got {strength}")
    batch = images.shape[0]
    chance = min(strength, 1.0)

    def factor(half_range: float) -> np.ndarray:
        return 1.0 + strength * rng.uniform(-half_range, half_range, size=batch)

    brightness = factor(params.brightness)
    contrast = factor(params.contrast)
    saturation = factor(params.saturation)
    hue = strength * rng.uniform(-params.hue, params.hue, size=batch)

    # Brightness, contrast about the mean grey, saturation and hue are all affine in RGB, so they
    # compose into one 3x3 matrix and offset per image and the pixels are touched once (torch's
    # batched einsum is ~4x numpy's here).
    pixels = torch.from_numpy(images).to(torch.float32) / 255.0
    mean_grey = (pixels @ torch.from_numpy(_LUMA)).mean(dim=(1, 2)).numpy() * brightness
    identity = np.eye(3)
    keep_grey = np.ones((3, 1)) @ _LUMA[None].astype(np.float64)  # x -> (luma . x) in every channel
    saturate = saturation[:, None, None] * identity + (1.0 - saturation)[:, None, None] * keep_grey
    chroma = _hue_matrices(hue) @ saturate
    matrix = chroma * (contrast * brightness)[:, None, None]
    offset = chroma @ np.ones(3) * ((1.0 - contrast) * mean_grey)[:, None]
    pixels = torch.einsum("bhwc,bdc->bhwd", pixels, torch.from_numpy(matrix.astype(np.float32)))
    pixels += torch.from_numpy(offset.astype(np.float32))[:, None, None, :]
    x = pixels.numpy()

    blur = rng.uniform(size=batch) < params.blur_probability * chance
    blur_sigma = strength * rng.uniform(params.blur_sigma.low, params.blur_sigma.high, size=batch)
    for i in np.flatnonzero(blur & (blur_sigma > 0.0)):
        x[i] = gaussian_filter(x[i], (blur_sigma[i], blur_sigma[i], 0.0), mode="nearest")
    noisy = rng.uniform(size=batch) < params.noise_probability * chance
    noise_sigma = strength * rng.uniform(params.noise_sigma.low, params.noise_sigma.high, size=batch) / 255.0
    for i in np.flatnonzero(noisy & (noise_sigma > 0.0)):
        x[i] += rng.normal(0.0, noise_sigma[i], size=x[i].shape).astype(np.float32)

    out = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    jpeg = rng.uniform(size=batch) < params.jpeg_probability * chance
    quality = rng.uniform(params.jpeg_quality.low, params.jpeg_quality.high, size=batch)
    for i in np.flatnonzero(jpeg):
        out[i] = jpeg_roundtrip(out[i], round(quality[i]))
    return out


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """(H, W, 3) uint8 encoded as JPEG at ``quality`` (1-100) and decoded again."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))
