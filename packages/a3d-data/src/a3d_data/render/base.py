"""The renderer interface shared by the CPU and GPU paths."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

import torch

# Vertices closer to the camera plane than this (metres) count as behind the camera: a triangle
# with one of them is skipped whole by both backends, so neither has to clip at a near plane.
MIN_DEPTH: Final[float] = 1e-3


class RendererUnavailableError(RuntimeError):
    """The requested rendering backend cannot run here (a missing library or device)."""


@dataclass(frozen=True)
class Lights:
    """Per-image lighting (B = batch).

    direction : (B, 3) unit vectors *towards* the light, camera frame.
    ambient, diffuse : (B,) intensities; shading = ambient + diffuse * max(0, n . direction).
    colour : (B, 3) light colour in [0, 1] (white = ones).
    """

    direction: torch.Tensor
    ambient: torch.Tensor
    diffuse: torch.Tensor
    colour: torch.Tensor

    @classmethod
    def headlight(
        cls,
        batch: int,
        device: str | torch.device = "cpu",
        ambient: float = 0.35,
        diffuse: float = 0.65,
    ) -> Lights:
        """A white light from behind the camera and slightly above, the same for every image.

        A light along the viewing axis shades every visible surface, so tests and benchmarks see
        the whole body; the synthesis samples its own lights.
        """
        direction = torch.tensor([0.0, -0.5, -1.0], device=device)  # y down: -y is up
        return cls(
            direction=(direction / direction.norm()).expand(batch, 3).clone(),
            ambient=torch.full((batch,), ambient, device=device),
            diffuse=torch.full((batch,), diffuse, device=device),
            colour=torch.ones(batch, 3, device=device),
        )


@dataclass(frozen=True)
class RenderOutput:
    """rgb : (B, H, W, 3) uint8, the mesh composited over the background.
    depth : (B, H, W) float32 camera-z of the visible surface in metres, +inf where empty.
    face_id : (B, H, W) int64 index of the visible triangle, -1 where empty.
    """

    rgb: torch.Tensor
    depth: torch.Tensor
    face_id: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """(B, H, W) bool: pixels covered by the mesh."""
        return self.face_id >= 0


class Renderer(Protocol):
    """Headless, batched, depth-tested, shaded triangle renderer.

    Camera convention (OpenCV, as HMR2): x right, y down, z forward, pinhole with ``focal``
    pixels and principal point ``principal`` (pixels, origin at the top-left pixel corner).
    """

    def render(
        self,
        vertices: torch.Tensor,
        faces: torch.Tensor,
        vertex_colors: torch.Tensor,
        focal: torch.Tensor,
        principal: torch.Tensor,
        image_size: int,
        lights: Lights,
        background: torch.Tensor | None = None,
    ) -> RenderOutput:
        """Render B meshes sharing one topology.

        vertices : (B, V, 3) camera frame, metres, in front of the camera (z > 0).
        faces : (F, 3) int64; vertex_colors : (B, V, 3) float in [0, 1] (albedo).
        focal : (B,) pixels; principal : (B, 2) pixels; image_size : square side in pixels.
        background : (B, H, W, 3) uint8 or None (black).
        Degenerate (zero-area) triangles, as amputation makes, must be skipped, not crash.
        """
        ...


def check_render_inputs(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    vertex_colors: torch.Tensor,
    focal: torch.Tensor,
    principal: torch.Tensor,
    image_size: int,
    lights: Lights,
    background: torch.Tensor | None,
) -> None:
    """Raise ValueError naming the argument whose shape or type does not fit :meth:`Renderer.render`."""
    if vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices: expected shape (B, V, 3), got {tuple(vertices.shape)}")
    batch, num_vertices = vertices.shape[:2]
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces: expected shape (F, 3), got {tuple(faces.shape)}")
    if faces.dtype.is_floating_point:
        raise ValueError(f"faces: expected an integer tensor, got {faces.dtype}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= num_vertices):
        raise ValueError(f"faces: vertex indices must lie in [0, {num_vertices - 1}]")
    if vertex_colors.shape != vertices.shape:
        raise ValueError(
            f"vertex_colors: expected shape {tuple(vertices.shape)}, got {tuple(vertex_colors.shape)}"
        )
    if focal.shape != (batch,):
        raise ValueError(f"focal: expected shape ({batch},), got {tuple(focal.shape)}")
    if principal.shape != (batch, 2):
        raise ValueError(f"principal: expected shape ({batch}, 2), got {tuple(principal.shape)}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size: expected a positive integer, got {image_size!r}")
    expected = {"direction": (batch, 3), "ambient": (batch,), "diffuse": (batch,), "colour": (batch, 3)}
    for name, shape in expected.items():
        got = tuple(getattr(lights, name).shape)
        if got != shape:
            raise ValueError(f"lights.{name}: expected shape {shape}, got {got}")
    if background is not None:
        if background.shape != (batch, image_size, image_size, 3):
            raise ValueError(
                f"background: expected shape ({batch}, {image_size}, {image_size}, 3), "
                f"got {tuple(background.shape)}"
            )
        if background.dtype != torch.uint8:
            raise ValueError(f"background: expected dtype uint8, got {background.dtype}")


def composite(shaded: torch.Tensor, face_id: torch.Tensor, background: torch.Tensor | None) -> torch.Tensor:
    """The mesh's colours (B, H, W, 3) uint8 over ``background`` (black when None), by ``face_id``."""
    if background is None:
        background = torch.zeros_like(shaded)
    return torch.where((face_id >= 0)[..., None], shaded, background.to(shaded.device))
