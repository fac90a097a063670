"""BPAC-Net, the body-part amputation classifier (brief §4.2).

A ResNet-34 with a CBAM block (channel ratio 1/16, 7x7 spatial attention) in each of its 16 basic
blocks, built by timm, on 15 channels: the RGB crop and 12 Gaussian heatmaps of COCO keypoints
5..16. Four heads classify the amputation level of each limb (3 levels + none); an alignment
head maps the pooled feature to ``h_token``, the context of the mesh decoder's second
cross-attention.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

from a3d_data.amputation.table import NON_AMPUTEE, NUM_HEAD_CLASSES, NUM_HEADS
from a3d_data.skeleton import BPAC_COCO_KEYPOINTS
from a3d_data.synthesis.schema import CROP_SIZE

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_INPUT_CHANNELS = 3 + len(BPAC_COCO_KEYPOINTS)
NONE_CLASS = NUM_HEAD_CLASSES - 1  # the "none" level of a head


class WeightsFileError(ValueError):
    """A user-supplied weights file that does not fit (names the file and what is wrong)."""


def normalise_image(image: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 255] float images (B, 3, H, W) -> ImageNet-normalised floats."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).view(1, 3, 1, 1)
    return (image.float() / 255.0 - mean) / std


def gaussian_heatmaps(
    keypoints: torch.Tensor, size: int, sigma: float, crop_size: int = CROP_SIZE
) -> torch.Tensor:
    """Heatmaps (B, K, size, size) of keypoints (B, K, 2) given in crop pixels.

    ``sigma`` is in heatmap pixels. A keypoint at (0, 0) (absent, or zeroed for low confidence)
    gives a blob in the corner, as in the paper: the network learns what that means.
    """
    scale = size / crop_size
    grid = torch.arange(size, device=keypoints.device, dtype=torch.float32) + 0.5
    x = keypoints[..., 0:1].float() * scale  # (B, K, 1)
    y = keypoints[..., 1:2].float() * scale
    gx = torch.exp(-((grid - x) ** 2) / (2 * sigma**2))  # (B, K, size)
    gy = torch.exp(-((grid - y) ** 2) / (2 * sigma**2))
    return gy[..., :, None] * gx[..., None, :]


@dataclass
class BPACOutput:
    """logits (B, 4, 4) per head (right arm, left arm, left leg, right leg); h_token (B, D);
    feature (B, 512)."""

    logits: torch.Tensor
    h_token: torch.Tensor
    feature: torch.Tensor

    def head_labels(self) -> torch.Tensor:
        """Predicted level per head (B, 4): 0..2 amputation level, 3 none."""
        return self.logits.argmax(-1)

    def is_amputee(self) -> torch.Tensor:
        """(B,) bool: some head predicts an amputation (the tokenizer switch)."""
        return (self.head_labels() != NONE_CLASS).any(-1)


class BPACNet(nn.Module):
    """BPAC-Net. ``forward(image, keypoints)`` takes the 256-pixel crop (uint8) and COCO-17 keypoints.

    Parameters
    ----------
    h_token_dim : width of the mesh backbone (the alignment head's output).
    input_size : side the crop and heatmaps are resized to (paper: 256).
    heatmap_sigma : Gaussian sigma in input pixels (paper: 2 at 256).
    """

    def __init__(self, h_token_dim: int, input_size: int = CROP_SIZE, heatmap_sigma: float = 2.0):
        super().__init__()
        self.input_size, self.heatmap_sigma = input_size, heatmap_sigma
        self.backbone = timm.create_model(
            "resnet34",
            pretrained=False,
            in_chans=NUM_INPUT_CHANNELS,
            num_classes=0,
            block_args={"attn_layer": "cbam"},
        )
        width = self.backbone.num_features
        self.heads = nn.ModuleList(nn.Linear(width, NUM_HEAD_CLASSES) for _ in range(NUM_HEADS))
        self.align = nn.Linear(width, h_token_dim)

    def inputs(self, image: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
        """The 15-channel input (B, 15, S, S) from crops (B, 3, 256, 256) and keypoints (B, 17, 2)."""
        rgb = normalise_image(image)
        if rgb.shape[-1] != self.input_size or rgb.shape[-2] != self.input_size:
            rgb = nn.functional.interpolate(
                rgb, size=(self.input_size, self.input_size), mode="bilinear", antialias=True
            )
        heatmaps = gaussian_heatmaps(
            keypoints[:, list(BPAC_COCO_KEYPOINTS)], self.input_size, self.heatmap_sigma
        )
        return torch.cat([rgb, heatmaps.to(rgb.dtype)], dim=1)

    def forward(self, image: torch.Tensor, keypoints: torch.Tensor) -> BPACOutput:
        feature = self.backbone(self.inputs(image, keypoints))
        logits = torch.stack([head(feature) for head in self.heads], dim=1)
        return BPACOutput(logits=logits, h_token=self.align(feature), feature=feature)


def load_imagenet_weights(model: BPACNet, path: Path) -> list[str]:
    """Load a user's ImageNet ResNet-34 state dict (torchvision or timm names) into BPAC-Net's backbone.

    conv1 is widened to 15 channels: the RGB filters are copied and the heatmap filters start at
    zero, so the network starts as the ImageNet model. The CBAM blocks, absent from plain ResNet
    weights, keep their initialisation. Returns the names left at their initialisation.

    Raises WeightsFileError when the file is unreadable or nothing in it fits.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, pickle.UnpicklingError, EOFError) as err:
        raise WeightsFileError(f"{path}: cannot read ImageNet weights ({err})") from err
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsFileError(f"{path}: expected a state dict of tensors, got {type(state).__name__}")
    own = model.backbone.state_dict()
    conv1 = state.get("conv1.weight")
    if conv1 is not None:
        if conv1.ndim != 4 or conv1.shape[1] != 3 or conv1.shape[0] != own["conv1.weight"].shape[0]:
            raise WeightsFileError(
                f"{path}: field 'conv1.weight' has shape {tuple(conv1.shape)}, expected "
                f"({own['conv1.weight'].shape[0]}, 3, 7, 7) of a ResNet-34"
            )
        widened = torch.zeros_like(own["conv1.weight"])
        widened[:, :3] = conv1
        state = {**state, "conv1.weight": widened}
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise WeightsFileError(f"{path}: no tensor fits a ResNet-34 (first names: {list(state)[:5]})")
    wrong = sorted(k for k, v in state.items() if k in own and own[k].shape != v.shape)
    if wrong:
        raise WeightsFileError(f"{path}: fields {wrong[:5]} have shapes that do not fit a ResNet-34")
    model.backbone.load_state_dict(usable, strict=False)
    left = sorted(set(own) - set(usable))
    log.info(
        "loaded %d ImageNet tensors from %s; %d left at initialisation (CBAM)", len(usable), path, len(left)
    )
    return left


__all__ = [
    "BPACNet",
    "BPACOutput",
    "NON_AMPUTEE",
    "NONE_CLASS",
    "WeightsFileError",
    "gaussian_heatmaps",
    "load_imagenet_weights",
    "normalise_image",
]
