"""The A3D renderer: one interface (:mod:`a3d_data.render.base`), two backends.

- ``opengl``: moderngl on a headless EGL context (Mesa llvmpipe on CPU machines); the fastest path
  on CPU, needing the Debian packages libegl1, libgl1-mesa-dri and libegl-mesa0.
- ``torch``: a z-buffer rasterizer in pure torch; runs wherever torch does, on CPU or CUDA (the
  GPU machines have no GL packages).

Both shade identically (:mod:`a3d_data.render.shading`) and agree pixel for pixel up to which of
two triangles wins at an edge. Use :func:`create_renderer`; nothing is created at import time.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch

from a3d_data.render.base import (
    MIN_DEPTH,
    Lights,
    Renderer,
    RendererUnavailableError,
    RenderOutput,
)
from a3d_data.render.opengl import EGL_DEBIAN_PACKAGES, OpenGLRenderer, egl_available, egl_context
from a3d_data.render.torch_rasterizer import TorchRenderer

Backend = Literal["auto", "opengl", "torch"]
BACKENDS: tuple[str, ...] = ("auto", "opengl", "torch")

logger = logging.getLogger(__name__)


def create_renderer(backend: Backend = "auto", device: str | torch.device = "cpu") -> Renderer:
    """A renderer for ``backend`` on ``device``.

    Parameters
    ----------
    backend : "opengl" (EGL, CPU only), "torch" (any device) or "auto": OpenGL when ``device`` is
        the CPU and an EGL context can be created, the torch rasterizer otherwise (always on CUDA).
    device : where rendering runs. The torch renderer computes there and returns its tensors
        there; the OpenGL renderer exists only for the CPU and returns tensors on the device of
        its inputs.

    Raises
    ------
    RendererUnavailableError : "opengl" was asked for and no EGL context can be made here (the
        message names the missing Debian packages), or it was asked for on a non-CPU device.
    ValueError : an unknown backend name.
    """
    if backend not in BACKENDS:
        raise ValueError(f"render backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    device = torch.device(device)
    if backend == "torch":
        return TorchRenderer(device)
    if backend == "opengl":
        if device.type != "cpu":
            raise RendererUnavailableError(
                f"the opengl backend renders through EGL on the CPU side; use backend='torch' for {device}"
            )
        egl_context()  # fail now, with the package names, rather than at the first render
        return OpenGLRenderer()
    if device.type == "cpu" and egl_available():
        return OpenGLRenderer()
    if device.type == "cpu":
        logger.warning(
            "no EGL context (install %s for the faster OpenGL renderer); using the torch rasterizer",
            ", ".join(EGL_DEBIAN_PACKAGES),
        )
    return TorchRenderer(device)


__all__ = [
    "BACKENDS",
    "EGL_DEBIAN_PACKAGES",
    "MIN_DEPTH",
    "Backend",
    "Lights",
    "OpenGLRenderer",
    "RenderOutput",
    "Renderer",
    "RendererUnavailableError",
    "TorchRenderer",
    "create_renderer",
    "egl_available",
]
