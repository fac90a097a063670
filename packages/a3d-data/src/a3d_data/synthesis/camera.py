"""Cameras in the HMR2 convention: a 256-pixel crop, focal 5000 px, the person framed by a bbox.

Camera frame: OpenCV (x right, y down, z forward). A body posed by smplx with ``transl = 0`` and its
root rotation already in the camera frame is moved into view by ``cam_t``:
``vertices_camera = vertices + cam_t``. With a weak-perspective scale ``s`` (crop fraction per
metre at unit depth), HMR2 writes ``cam_t = [tx, ty, 2 * focal / (crop * s + 1e-9)]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from a3d_data.synthesis.schema import BBOX_SCALE_UNIT, CROP_SIZE, FOCAL_LENGTH

# SMPL bodies are y up; the camera's y points down. A rotation of pi about x turns an upright
# body facing +z (towards a camera looking along +z) into one facing the camera (-z) upright.
BODY_TO_CAMERA = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])


@dataclass(frozen=True)
class CameraSpec:
    """Per-sample camera placement (B = batch).

    cam_t : (B, 3) metres; bbox_center : (B, 2) crop pixels; bbox_scale : (B,) bbox side / 200.
    """

    cam_t: torch.Tensor
    bbox_center: torch.Tensor
    bbox_scale: torch.Tensor
    focal: float = FOCAL_LENGTH
    crop_size: int = CROP_SIZE

    @property
    def principal(self) -> torch.Tensor:
        """(B, 2) principal point at the crop centre."""
        centre = self.crop_size / 2.0
        return torch.full((len(self.cam_t), 2), centre, dtype=self.cam_t.dtype)


def project(points: torch.Tensor, focal: float, principal: torch.Tensor) -> torch.Tensor:
    """Pinhole projection of camera-frame points (B, N, 3) metres to pixels (B, N, 2)."""
    depth = points[..., 2:3].clamp(min=1e-6)
    return points[..., :2] / depth * focal + principal[:, None, :]


def place_in_crop(
    vertices: torch.Tensor,
    rng: np.random.Generator,
    fill_range: tuple[float, float],
    centre_jitter: float,
    truncation_probability: float,
    truncation_shift: tuple[float, float],
    focal: float = FOCAL_LENGTH,
    crop_size: int = CROP_SIZE,
) -> CameraSpec:
    """Choose ``cam_t`` so each body (B, V, 3), camera-oriented at the origin, fills part of the crop.

    The longer side of the body's bbox covers ``fill`` ~ U(fill_range) of the crop (scale
    augmentation); its centre is jittered by ``centre_jitter`` of the crop; with
    ``truncation_probability`` it is shifted further (``truncation_shift`` of the crop, random
    direction) so the crop edge cuts the body. The bbox recorded is the projected body's
    square bbox, so it matches the image whatever the depth variation.
    """
    batch = vertices.shape[0]
    low, high = vertices.amin(1), vertices.amax(1)  # (B, 3)
    extent = (high - low)[:, :2].amax(1)  # metres, the longer of width and height
    fill = torch.as_tensor(rng.uniform(*fill_range, batch), dtype=vertices.dtype)
    # Depth that makes the extent cover fill * crop pixels, measured at the body's centre depth.
    centre = (low + high) / 2
    depth = focal * extent / (fill * crop_size)
    offset = torch.as_tensor(rng.uniform(-centre_jitter, centre_jitter, (batch, 2)), dtype=vertices.dtype)
    truncated = torch.as_tensor(rng.random(batch) < truncation_probability)
    angle = rng.uniform(0, 2 * math.pi, batch)
    shift = rng.uniform(*truncation_shift, batch)
    push = torch.as_tensor(np.stack([np.cos(angle), np.sin(angle)], 1) * shift[:, None], dtype=vertices.dtype)
    offset = torch.where(truncated[:, None], offset + push, offset) * crop_size  # pixels
    cam_t = torch.empty(batch, 3, dtype=vertices.dtype)
    cam_t[:, 2] = depth - centre[:, 2]
    # Pixel offset at the body's centre depth -> metres.
    cam_t[:, :2] = offset * depth[:, None] / focal - centre[:, :2]

    principal = torch.full((batch, 2), crop_size / 2.0, dtype=vertices.dtype)
    pixels = project(vertices + cam_t[:, None], focal, principal)
    box_low, box_high = pixels.amin(1), pixels.amax(1)
    bbox_center = (box_low + box_high) / 2
    bbox_scale = (box_high - box_low).amax(1) / BBOX_SCALE_UNIT
    return CameraSpec(cam_t=cam_t, bbox_center=bbox_center, bbox_scale=bbox_scale, focal=focal,
                      crop_size=crop_size)  # fmt: skip


def yaw_of(root_rotation: torch.Tensor) -> torch.Tensor:
    """Yaw (B,) in degrees of body-frame root rotations (B, 3, 3): where the body's +z faces."""
    forward = root_rotation[:, :, 2]
    return torch.rad2deg(torch.atan2(forward[:, 0], forward[:, 2]))
