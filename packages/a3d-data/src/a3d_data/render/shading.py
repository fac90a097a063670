"""Per-vertex Lambert shading, shared by both backends so they colour a mesh identically.

Both renderers shade the vertices here (Gouraud shading) and only interpolate the result across
each triangle: what differs between them is rasterization, never lighting.
"""

from __future__ import annotations

import torch

from a3d_data.render.base import Lights

# Below this length (in the units of the summed, area-weighted face normals: m^2) a vertex has no
# usable normal; it belongs only to zero-area triangles (a collapsed limb) and gets ambient light.
_NORMAL_EPS = 1e-20


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Unit vertex normals (B, V, 3) of posed meshes.

    Parameters
    ----------
    vertices : (B, V, 3) metres, any right-handed frame.
    faces : (F, 3) int64, counter-clockwise seen from outside (SMPL's winding).

    Each face adds its area-weighted normal (the raw cross product) to its three vertices, so
    large triangles dominate and zero-area triangles add nothing. Vertices touched only by
    zero-area triangles get a zero normal.
    """
    batch, num_vertices = vertices.shape[:2]
    num_faces = faces.shape[0]
    faces = faces.to(device=vertices.device, dtype=torch.long)
    corners = vertices.index_select(1, faces.flatten()).view(batch, num_faces, 3, 3)
    p0, p1, p2 = corners.unbind(2)
    face_normals = _cross(p1 - p0, p2 - p0)  # (B, F, 3), length = twice the area
    # Accumulate with the batch in the row, (V, B * 3): index_add_ along a leading dimension with
    # wide rows is an order of magnitude faster on CPU than along dimension 1 of (B, V, 3).
    summed = vertices.new_zeros(num_vertices, batch * 3)
    rows = face_normals.permute(1, 0, 2).reshape(num_faces, batch * 3)
    for corner in range(3):
        summed.index_add_(0, faces[:, corner], rows)
    normals = summed.view(num_vertices, batch, 3).permute(1, 0, 2)
    # A zero sum stays zero: 0 / eps.
    return normals / normals.norm(dim=-1, keepdim=True).clamp_min(_NORMAL_EPS)


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cross product over the last axis; written out, it runs faster than torch.linalg.cross on CPU."""
    ax, ay, az = a.unbind(-1)
    bx, by, bz = b.unbind(-1)
    return torch.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], dim=-1)


def shade_vertices(
    vertices: torch.Tensor, faces: torch.Tensor, albedo: torch.Tensor, lights: Lights
) -> torch.Tensor:
    """Lambert-shaded vertex colours (B, V, 3) in [0, 1].

    colour = albedo * light colour * (ambient + diffuse * max(0, n . direction)), per vertex, with
    ``n`` from :func:`vertex_normals` and ``lights`` as in :class:`~a3d_data.render.base.Lights`
    (camera frame). One-sided: a surface facing away from the light gets ambient light only.

    Parameters
    ----------
    vertices : (B, V, 3) camera frame, metres; faces : (F, 3); albedo : (B, V, 3) in [0, 1].
    """
    normals = vertex_normals(vertices, faces)
    direction = lights.direction.to(vertices)
    lambert = (normals * direction[:, None, :]).sum(-1).clamp_min(0.0)  # (B, V)
    intensity = lights.ambient.to(vertices)[:, None] + lights.diffuse.to(vertices)[:, None] * lambert
    colour = albedo.to(vertices) * lights.colour.to(vertices)[:, None, :] * intensity[..., None]
    return colour.clamp(0.0, 1.0)


def to_uint8(colour: torch.Tensor) -> torch.Tensor:
    """Colours in [0, 1] to uint8 by rounding, as OpenGL stores them in an 8-bit target."""
    # + 0.5 then truncation rounds non-negative values and is cheaper than round() on CPU.
    return (colour.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
