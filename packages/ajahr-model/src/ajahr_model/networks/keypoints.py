"""A 2D keypoint detector with a state per joint (present / occluded / absent), trained on A3D.

The paper feeds BPAC-Net with ViTPose keypoints, zeroing those under confidence 0.55. ViTPose
cannot be downloaded here, and its confidence does not tell an amputated limb from a hidden one.
This detector predicts COCO-17 heatmaps (a timm ResNet at stride 8, upsampled to stride 4) and,
from the pooled deepest feature, a 3-way state per joint. Its confidence is 1 - P(absent): an
occluded joint keeps its position (BPAC-Net must see that the limb is there), an absent one goes
to (0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import timm
import torch
import torch.nn.functional as F
from torch import nn

from a3d_data.skeleton import NUM_COCO_KEYPOINTS
from a3d_data.synthesis.schema import CROP_SIZE, KeypointState
from ajahr_model.networks.bpac import gaussian_heatmaps, normalise_image


class JointState(IntEnum):
    """What the detector says of a joint."""

    PRESENT = 0
    OCCLUDED = 1  # hidden by the body or an occluder, or outside the crop: the limb is there
    ABSENT = 2  # amputated


def joint_state_targets(keypoint_state: torch.Tensor) -> torch.Tensor:
    """A3D keypoint states (VISIBLE / OCCLUDED / ABSENT / OUTSIDE) -> :class:`JointState`."""
    target = torch.full_like(keypoint_state, JointState.OCCLUDED)
    target[keypoint_state == KeypointState.VISIBLE] = JointState.PRESENT
    target[keypoint_state == KeypointState.ABSENT] = JointState.ABSENT
    return target


@dataclass(frozen=True)
class DetectorConfig:
    backbone: str = "resnet18"
    input_size: int = 256
    heatmap_sigma: float = 2.0  # heatmap pixels (the heatmap is input_size / 4)
    confidence_threshold: float = 0.55


@dataclass
class Detections:
    """heatmaps (B, 17, h, w) logits; state_logits (B, 17, 3); keypoints (B, 17, 2) crop pixels
    (zeroed where confidence < threshold); confidence (B, 17) = 1 - P(absent)."""

    heatmaps: torch.Tensor
    state_logits: torch.Tensor
    keypoints: torch.Tensor
    confidence: torch.Tensor

    def states(self) -> torch.Tensor:
        return self.state_logits.argmax(-1)


class KeypointDetector(nn.Module):
    def __init__(self, config: DetectorConfig = DetectorConfig()):
        super().__init__()
        self.config = config
        self.backbone = timm.create_model(
            config.backbone, pretrained=False, features_only=True, out_indices=(2, 4)
        )
        mid, deep = self.backbone.feature_info.channels()
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(mid, 128, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, NUM_COCO_KEYPOINTS, 1),
        )
        self.state = nn.Linear(deep, NUM_COCO_KEYPOINTS * len(JointState))

    @property
    def heatmap_size(self) -> int:
        return self.config.input_size // 4

    def forward(self, image: torch.Tensor) -> Detections:
        """Detect keypoints in crops (B, 3, 256, 256) uint8."""
        x = normalise_image(image)
        if x.shape[-1] != self.config.input_size:
            x = F.interpolate(x, size=(self.config.input_size,) * 2, mode="bilinear", antialias=True)
        mid, deep = self.backbone(x)
        heatmaps = self.upsample(mid)
        state_logits = self.state(deep.mean(dim=(2, 3))).view(-1, NUM_COCO_KEYPOINTS, len(JointState))
        keypoints = heatmap_argmax(heatmaps.float()) * (CROP_SIZE / heatmaps.shape[-1])
        confidence = 1.0 - state_logits.float().softmax(-1)[..., JointState.ABSENT]
        keypoints = keypoints * (confidence >= self.config.confidence_threshold)[..., None]
        return Detections(heatmaps, state_logits, keypoints, confidence)


def heatmap_argmax(heatmaps: torch.Tensor) -> torch.Tensor:
    """Peak positions (B, K, 2) in heatmap pixels (cell centres), x then y."""
    b, k, h, w = heatmaps.shape
    flat = heatmaps.view(b, k, -1).argmax(-1)
    return torch.stack([(flat % w).float() + 0.5, (flat // w).float() + 0.5], dim=-1)


def heatmap_targets(keypoints: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Gaussian targets (B, K, size, size) of keypoints (B, K, 2) in crop pixels."""
    return gaussian_heatmaps(keypoints, size, sigma)


def detector_loss(
    detections: Detections,
    keypoints: torch.Tensor,
    keypoint_state: torch.Tensor,
    sigma: float,
    state_weight: float,
    absent_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Heatmap MSE on joints inside the crop and not absent (visible or occluded: the position is
    known), plus ``state_weight`` x cross-entropy of the joint states, in which the rare absent
    class (a few % of the joints of a half-amputee batch) counts ``absent_weight`` times."""
    size = detections.heatmaps.shape[-1]
    target = heatmap_targets(keypoints, size, sigma)
    located = (keypoint_state == KeypointState.VISIBLE) | (keypoint_state == KeypointState.OCCLUDED)
    per_joint = ((detections.heatmaps.float() - target) ** 2).mean(dim=(2, 3))
    heatmap = (per_joint * located).sum() / located.sum().clamp_min(1) * 1000.0
    class_weights = torch.ones(len(JointState), device=keypoints.device)
    class_weights[JointState.ABSENT] = absent_weight
    states = F.cross_entropy(
        detections.state_logits.float().reshape(-1, len(JointState)),
        joint_state_targets(keypoint_state).reshape(-1),
        weight=class_weights,
    )
    loss = heatmap + state_weight * states
    return loss, {"heatmap": heatmap.detach(), "state": states.detach()}
