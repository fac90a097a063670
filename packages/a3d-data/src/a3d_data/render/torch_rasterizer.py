"""A batched z-buffer triangle rasterizer in pure torch: the renderer for CUDA and for CPUs without EGL.

How it works, in three vectorised passes over the whole batch:

1. Set-up, per triangle: project the corners (pinhole, OpenCV frame), drop triangles with a corner
   behind the camera or (almost) zero screen area, and take the box of pixel centres each one can
   cover. Triangles are grouped by the power-of-two square tile that holds their box (1, 2, 4, ...
   pixels a side; a body in a 256 crop needs tiles of 1 to 8).
2. Coverage, per group: every triangle tests all pixel centres of its tile at once, broadcasting
   its own coefficients (no per-pixel gathers, which dominate the cost on CPU). Covered pixels
   write a packed key ``depth bits << 32 | face`` into a per-pixel buffer with
   ``scatter_reduce(amin)``: a positive float32's bit pattern orders like its value, so the
   smallest key is the nearest surface, and equal depths go to the lower face index, the same on
   every device.
3. Shading, per covered pixel: the winning face's barycentrics are recomputed at the pixel centre
   and its shaded vertex colours interpolated perspective-correctly.

Tiles are processed in chunks of at most ``max_candidates`` pixel tests, so memory stays bounded
for big triangles or batches. No triangle is culled for facing away: a mesh with holes (or a
collapsed limb's stump) shows its inside rather than the background.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from a3d_data.render.base import (
    MIN_DEPTH,
    Lights,
    RenderOutput,
    check_render_inputs,
)
from a3d_data.render.shading import shade_vertices, to_uint8

# Twice the screen area (pixels^2) under which a triangle is degenerate. Amputation collapses a
# limb's vertices onto one point up to float rounding (~1e-7 m, ~1e-10 px^2 at 40 m); a real
# triangle of a 13.7k-vertex body in a 256 crop is ~1 px^2.
MIN_DOUBLE_AREA = 1e-8
# Barycentric slack, so that a pixel centre on an edge shared by two triangles is covered by at
# least one of them despite rounding (the depth test settles which).
EDGE_EPS = 1e-5
# Key of an empty pixel; every real key (positive float32 bits << 32) is smaller.
_EMPTY = torch.iinfo(torch.int64).max
_FACE_BITS = 32


class TorchRenderer:
    """The :class:`~a3d_data.render.base.Renderer` in pure torch, on CPU or CUDA.

    Parameters
    ----------
    device : where rasterization runs; inputs are moved there and outputs stay there.
    max_candidates : most (triangle, pixel) tests run at once; peak memory is about 50 bytes per
        test (~100 MB at the default). A body at 256 px needs about 110k tests per image.
    """

    def __init__(self, device: str | torch.device = "cpu", max_candidates: int = 1 << 21):
        if max_candidates < 1:
            raise ValueError(f"max_candidates must be positive, got {max_candidates}")
        self.device = torch.device(device)
        self.max_candidates = int(max_candidates)

    @torch.no_grad()
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
        """Render B meshes sharing one topology; see :meth:`Renderer.render` (not differentiable)."""
        check_render_inputs(vertices, faces, vertex_colors, focal, principal, image_size, lights, background)
        device = self.device
        vertices = vertices.to(device=device, dtype=torch.float32)
        faces = faces.to(device=device, dtype=torch.long)
        focal = focal.to(device=device, dtype=torch.float32)
        principal = principal.to(device=device, dtype=torch.float32)

        colours = shade_vertices(vertices, faces, vertex_colors.to(device), lights)
        u, v, inv_z = _project(vertices, focal, principal)
        face_id, depth = self._rasterize(u, v, inv_z, faces, image_size)
        pixels, pixel_colours = _interpolate_colours(u, v, inv_z, colours, faces, face_id)
        if background is None:
            rgb = torch.zeros(*face_id.shape, 3, dtype=torch.uint8, device=device)
        else:
            rgb = background.to(device).clone(memory_format=torch.contiguous_format)
        # Only covered pixels are converted and written: full-image float passes cost more than
        # the rasterization of a small body.
        rgb.view(-1, 3).index_copy_(0, pixels, to_uint8(pixel_colours))
        return RenderOutput(rgb=rgb, depth=depth, face_id=face_id)

    def _rasterize(
        self, u: torch.Tensor, v: torch.Tensor, inv_z: torch.Tensor, faces: torch.Tensor, size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Face ids (B, S, S) int64 (-1 empty) and depth (B, S, S) float32 metres (+inf empty)."""
        batch = u.shape[0]
        setup = _triangle_setup(u, v, inv_z, faces, size)
        keys = torch.full((batch * size * size,), _EMPTY, dtype=torch.int64, device=u.device)
        # Level -1 (triangles that cover no pixel centre) is shifted to bin 0 and skipped.
        per_level = torch.bincount(setup.level + 1).tolist()
        for level in (lv for lv, count in enumerate(per_level[1:]) if count):
            tile = 1 << level
            triangles = torch.nonzero(setup.level == level).squeeze(1)
            for chunk in triangles.split(max(1, self.max_candidates // (tile * tile))):
                _cover(setup, chunk, tile, keys, size)

        keys = keys.view(batch, size, size)
        covered = keys != _EMPTY
        face_id = torch.where(covered, keys & ((1 << _FACE_BITS) - 1), -1)
        depth_bits = (keys >> _FACE_BITS).to(torch.int32)
        depth = torch.where(covered, depth_bits.view(torch.float32), torch.inf)
        return face_id, depth


def _project(
    vertices: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixel coordinates u, v (B, V) and inverse depth 1/z (B, V); 1/z is 0 behind the camera."""
    x, y, z = vertices.unbind(-1)
    in_front = (z > MIN_DEPTH) & torch.isfinite(vertices).all(-1)
    inv_z = torch.where(in_front, 1.0 / torch.where(in_front, z, 1.0), 0.0)
    u = torch.where(in_front, focal[:, None] * x * inv_z + principal[:, :1], 0.0)
    v = torch.where(in_front, focal[:, None] * y * inv_z + principal[:, 1:], 0.0)
    return u, v, inv_z


@dataclass(frozen=True)
class _Setup:
    """Per-triangle data, flat over the batch: entry ``b * F + f`` is face f of image b.

    u0, v0 : corner 0 in pixels. p, q, r, s : the inverse edge matrix, so that the barycentrics
    of corners 1 and 2 at (dx, dy) pixels from corner 0 are b1 = p dx + q dy, b2 = r dx + s dy.
    inv_z0, dinv_z1, dinv_z2 : 1/z at corner 0 and its change towards corners 1 and 2.
    x_lo, x_hi, y_lo, y_hi : int64 pixel box (inclusive) of the pixel centres it may cover.
    level : int64 log2 of the square tile that holds the box; -1 for a triangle to skip.
    """

    u0: torch.Tensor
    v0: torch.Tensor
    p: torch.Tensor
    q: torch.Tensor
    r: torch.Tensor
    s: torch.Tensor
    inv_z0: torch.Tensor
    dinv_z1: torch.Tensor
    dinv_z2: torch.Tensor
    x_lo: torch.Tensor
    x_hi: torch.Tensor
    y_lo: torch.Tensor
    y_hi: torch.Tensor
    level: torch.Tensor
    num_faces: int


def _triangle_setup(
    u: torch.Tensor, v: torch.Tensor, inv_z: torch.Tensor, faces: torch.Tensor, size: int
) -> _Setup:
    batch, num_faces = u.shape[0], faces.shape[0]
    corners = torch.stack([u, v, inv_z], dim=-1).index_select(1, faces.flatten())
    tu, tv, tiz = corners.view(batch * num_faces, 3, 3).unbind(-1)  # each (B * F, 3 corners)
    e1u, e1v = tu[:, 1] - tu[:, 0], tv[:, 1] - tv[:, 0]
    e2u, e2v = tu[:, 2] - tu[:, 0], tv[:, 2] - tv[:, 0]
    double_area = e1u * e2v - e2u * e1v
    usable = (tiz > 0).all(-1) & (double_area.abs() > MIN_DOUBLE_AREA)
    inv_area = 1.0 / torch.where(usable, double_area, 1.0)

    # Pixel i has its centre at i + 0.5: the box holds the centres inside the triangle's extent.
    x_lo = torch.ceil(tu.amin(-1) - 0.5).clamp(0, size)
    x_hi = torch.floor(tu.amax(-1) - 0.5).clamp(-1, size - 1)
    y_lo = torch.ceil(tv.amin(-1) - 0.5).clamp(0, size)
    y_hi = torch.floor(tv.amax(-1) - 0.5).clamp(-1, size - 1)
    extent = torch.maximum(x_hi - x_lo, y_hi - y_lo) + 1  # pixels, < 1 when the box is empty
    empty = (x_hi < x_lo) | (y_hi < y_lo) | ~usable
    # Tiles are powers of two, so a tile wastes at most 3/4 of its tests on pixels outside the box.
    level = torch.ceil(torch.log2(extent.clamp_min(1.0))).long()
    return _Setup(
        u0=tu[:, 0],
        v0=tv[:, 0],
        p=e2v * inv_area,
        q=-e2u * inv_area,
        r=-e1v * inv_area,
        s=e1u * inv_area,
        inv_z0=tiz[:, 0],
        dinv_z1=tiz[:, 1] - tiz[:, 0],
        dinv_z2=tiz[:, 2] - tiz[:, 0],
        x_lo=x_lo.long(),
        x_hi=x_hi.long(),
        y_lo=y_lo.long(),
        y_hi=y_hi.long(),
        level=torch.where(empty, -1, level),
        num_faces=num_faces,
    )


def _cover(setup: _Setup, triangles: torch.Tensor, tile: int, keys: torch.Tensor, size: int) -> None:
    """Z-buffer triangles (n,) (flat indices) whose boxes fit a ``tile x tile`` square into ``keys``.

    Every triangle tests the tile x tile pixel centres from its box's corner at once, by
    broadcasting its own coefficients: no per-pixel gathers, which dominate the cost on CPU.
    """

    def take(values: torch.Tensor) -> torch.Tensor:
        return values.index_select(0, triangles)

    steps = torch.arange(tile, device=keys.device)
    x_lo, y_lo = take(setup.x_lo), take(setup.y_lo)
    px = x_lo[:, None] + steps  # (n, tile) pixel columns
    py = y_lo[:, None] + steps  # (n, tile) pixel rows
    dx = (px.to(torch.float32) + (0.5 - take(setup.u0))[:, None])[:, None, :]  # (n, 1, tile)
    dy = (py.to(torch.float32) + (0.5 - take(setup.v0))[:, None])[:, :, None]  # (n, tile, 1)
    b1 = take(setup.p)[:, None, None] * dx + take(setup.q)[:, None, None] * dy  # (n, tile, tile)
    b2 = take(setup.r)[:, None, None] * dx + take(setup.s)[:, None, None] * dy
    inside = (b1 >= -EDGE_EPS) & (b2 >= -EDGE_EPS) & (b1 + b2 <= 1.0 + EDGE_EPS)
    inside &= (px <= take(setup.x_hi)[:, None])[:, None, :] & (py <= take(setup.y_hi)[:, None])[:, :, None]
    hits = torch.nonzero(inside.flatten()).squeeze(1)
    if hits.numel() == 0:
        return
    # 1/z is affine in screen space, so interpolating it linearly is perspective-correct.
    inv_z = take(setup.inv_z0)[:, None, None] + take(setup.dinv_z1)[:, None, None] * b1
    inv_z = inv_z + take(setup.dinv_z2)[:, None, None] * b2
    inv_z = inv_z.flatten().index_select(0, hits).clamp_min(torch.finfo(torch.float32).tiny)

    owner = torch.div(hits, tile * tile, rounding_mode="floor")  # index into ``triangles``
    within = hits - owner * (tile * tile)
    row = torch.div(within, tile, rounding_mode="floor")
    col = within - row * tile
    flat = triangles.index_select(0, owner)  # b * F + f
    image = torch.div(flat, setup.num_faces, rounding_mode="floor")
    pixel = (
        image * (size * size) + (y_lo.index_select(0, owner) + row) * size + x_lo.index_select(0, owner) + col
    )
    depth_bits = (1.0 / inv_z).view(torch.int32).to(torch.int64)
    key = (depth_bits << _FACE_BITS) | (flat - image * setup.num_faces)
    keys.scatter_reduce_(0, pixel, key, reduce="amin")


def _interpolate_colours(
    u: torch.Tensor,
    v: torch.Tensor,
    inv_z: torch.Tensor,
    colours: torch.Tensor,
    faces: torch.Tensor,
    face_id: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The covered pixels (P,) as flat indices into (B * S * S) and their colours (P, 3) in [0, 1].

    Colours are the winning face's shaded vertex colours, interpolated perspective-correctly at
    the pixel centre.
    """
    size = face_id.shape[1]
    pixels = torch.nonzero(face_id.flatten() >= 0).squeeze(1)
    image = torch.div(pixels, size * size, rounding_mode="floor")
    within = pixels - image * (size * size)
    py = torch.div(within, size, rounding_mode="floor")
    px = within - py * size
    # Flat indices into (B * V): index_select is much faster than advanced indexing on CPU.
    num_vertices = u.shape[1]
    corners = (
        faces.index_select(0, face_id.flatten().index_select(0, pixels)) + (image * num_vertices)[:, None]
    )
    corners = corners.flatten()
    cu, cv, ciz = (t.flatten().index_select(0, corners).view(-1, 3) for t in (u, v, inv_z))  # each (P, 3)
    e1u, e1v = cu[:, 1] - cu[:, 0], cv[:, 1] - cv[:, 0]
    e2u, e2v = cu[:, 2] - cu[:, 0], cv[:, 2] - cv[:, 0]
    area = e1u * e2v - e2u * e1v
    dx = px.to(torch.float32) + 0.5 - cu[:, 0]
    dy = py.to(torch.float32) + 0.5 - cv[:, 0]
    b1 = (e2v * dx - e2u * dy) / area
    b2 = (e1u * dy - e1v * dx) / area
    screen = torch.stack([1.0 - b1 - b2, b1, b2], dim=1)
    # Perspective-correct weights: screen barycentrics weighted by 1/z, renormalised.
    weights = screen * ciz
    weights = weights / weights.sum(1, keepdim=True)
    corner_colours = colours.reshape(-1, 3).index_select(0, corners).view(-1, 3, 3)
    return pixels, (weights[..., None] * corner_colours).sum(1)
