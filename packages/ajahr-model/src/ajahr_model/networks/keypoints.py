"""A 2D keypoint detector with a state per joint (present / occluded / absent), trained on A3D.

The paper feeds BPAC-Net with ViTPose keypoints, zeroing those under confidence 0.55. ViTPose
cannot be downloaded here, and its confidence does not tell an amputated limb from a hidden one.
This detector predicts COCO-17 heatmaps (a timm ResNet at stride 8, upsampled to stride 4) and,
from the pooled deepest feature, a 3-way state per joint. Its confidence is 1 - P(absent): an
occluded joint keeps its position (BPAC-Net must see that the limb is there), an absent one goes
to (0, 0).

With ``prior_input`` it reads, besides the image, the keypoints of an off-the-shelf detector
(BlazePose: ``data.keypoint_prior``) as 17 heatmap channels weighted by their confidence. A
joint's state then comes from the image features where the prior put that joint (is there a limb
at that place?), the pooled deepest feature, the joint's identity and the prior's confidence;
its position is the prior's where the prior found the person (BlazePose localises and tells left
from right far better than a network trained from scratch for a few CPU minutes), the heatmap
peak where it did not.

With ``skeleton_context`` (needs the prior) the state of each of BPAC-Net's 12 keypoints also
reads the shape of the prior's whole skeleton: bone lengths and joint positions over the torso
length, and the prior's confidences (:func:`skeleton_geometry`). An off-the-shelf detector puts
the joints of a missing limb somewhere, usually tucked onto the stump or the body; a forearm a
tenth of its upper arm, or a shin of no length, is what gives it away. A per-joint state head
sees only the image at its own joint and cannot compare one limb with the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import timm
import torch
import torch.nn.functional as F
from torch import nn

from a3d_data.skeleton import BPAC_COCO_KEYPOINTS, COCO_LIMB_CHAINS, NUM_COCO_KEYPOINTS
from a3d_data.synthesis.schema import CROP_SIZE, KeypointState
from ajahr_model.networks.bpac import gaussian_heatmaps, normalise_image

JOINT_EMBEDDING_DIM = 32
SKELETON_HIDDEN = 128

# The limb chains in COCO index order: left arm, right arm, left leg, right leg.
_CHAINS = sorted(COCO_LIMB_CHAINS)
SHOULDERS = (_CHAINS[0][0], _CHAINS[1][0])
HIPS = (_CHAINS[2][0], _CHAINS[3][0])
# Bones whose lengths describe the prior's skeleton: the eight limb bones (upper and lower arm
# and leg, each side), then the shoulder and hip widths and the two sides of the torso.
SKELETON_BONES: tuple[tuple[int, int], ...] = (
    *((chain[i], chain[i + 1]) for chain in _CHAINS for i in (0, 1)),
    SHOULDERS, HIPS, (SHOULDERS[0], HIPS[0]), (SHOULDERS[1], HIPS[1]),
)  # fmt: skip
MIN_TORSO_PIXELS = 4.0  # a skeleton the prior did not find has no torso: keep the ratios finite
# bone lengths + joint positions (x, y) + confidences of BPAC's 12 keypoints + torso scale + found
SKELETON_GEOMETRY_DIM = len(SKELETON_BONES) + 3 * len(BPAC_COCO_KEYPOINTS) + 2


def skeleton_geometry(keypoints: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """Scale- and shift-free features (B, SKELETON_GEOMETRY_DIM) of a skeleton (B, 17, 2) crop px
    with confidences (B, 17): log bone lengths over the torso length (mid-shoulders to mid-hips),
    the shoulder-to-ankle keypoints relative to the mid-hips over the torso length, their
    confidences, the log torso length over the crop, and whether any keypoint was found."""
    points = keypoints.float()
    mid_shoulders = points[:, list(SHOULDERS)].mean(dim=1)
    mid_hips = points[:, list(HIPS)].mean(dim=1)
    torso = (mid_shoulders - mid_hips).norm(dim=-1, keepdim=True).clamp_min(MIN_TORSO_PIXELS)  # (B, 1)
    first, second = zip(*SKELETON_BONES, strict=True)
    bones = (points[:, list(first)] - points[:, list(second)]).norm(dim=-1) / torso
    limb = list(BPAC_COCO_KEYPOINTS)
    relative = (points[:, limb] - mid_hips[:, None]) / torso[..., None]
    found = (confidence > 0).any(dim=1, keepdim=True).float()
    return torch.cat(
        [
            torch.log(bones + 1e-2),
            relative.flatten(1),
            confidence[:, limb].float(),
            torch.log(torso / CROP_SIZE),
            found,
        ],
        dim=1,
    )


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
    prior_input: bool = False
    skeleton_context: bool = False  # states also read the prior's whole skeleton (needs prior_input)

    def __post_init__(self) -> None:
        if self.skeleton_context and not self.prior_input:
            raise ValueError("skeleton_context reads the keypoint prior's skeleton: set prior_input: true")


@dataclass
class Detections:
    """heatmaps (B, 17, h, w) logits; state_logits (B, 17, 3); keypoints (B, 17, 2) crop pixels
    (zeroed where confidence < threshold: what BPAC-Net reads); confidence (B, 17) = 1 - P(absent);
    located (B, 17, 2) the positions before that zeroing, and with a prior only the prior's, (0, 0)
    where it found nobody (what a lifter reads: an amputated limb's joints are zeroed after the
    body model, by the amputation verdict)."""

    heatmaps: torch.Tensor
    state_logits: torch.Tensor
    keypoints: torch.Tensor
    confidence: torch.Tensor
    located: torch.Tensor
    # With skeleton_context: (B, 12) the skeleton's own absent logits of BPAC's keypoints, trained
    # on their own as well (detector_loss) so that the geometry learns in few steps.
    skeleton_logits: torch.Tensor | None = None

    def states(self) -> torch.Tensor:
        return self.state_logits.argmax(-1)


class KeypointDetector(nn.Module):
    def __init__(self, config: DetectorConfig = DetectorConfig()):
        super().__init__()
        self.config = config
        in_chans = 3 + (NUM_COCO_KEYPOINTS if config.prior_input else 0)
        self.backbone = timm.create_model(
            config.backbone, pretrained=False, features_only=True, out_indices=(2, 4), in_chans=in_chans
        )
        mid, deep = self.backbone.feature_info.channels()
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(mid, 128, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, NUM_COCO_KEYPOINTS, 1),
        )
        if config.prior_input:
            self.joint_embedding = nn.Parameter(torch.randn(NUM_COCO_KEYPOINTS, JOINT_EMBEDDING_DIM) * 0.02)
            if config.skeleton_context:
                self.skeleton = nn.Sequential(
                    # The features mix logs, ratios and probabilities: standardise them first.
                    nn.BatchNorm1d(SKELETON_GEOMETRY_DIM),
                    nn.Linear(SKELETON_GEOMETRY_DIM, SKELETON_HIDDEN),
                    nn.ReLU(inplace=True),
                    nn.Linear(SKELETON_HIDDEN, SKELETON_HIDDEN),
                    nn.ReLU(inplace=True),
                    nn.Linear(SKELETON_HIDDEN, len(BPAC_COCO_KEYPOINTS)),
                )
            self.state = nn.Sequential(
                nn.Linear(mid + deep + JOINT_EMBEDDING_DIM + 1, 256),
                nn.ReLU(inplace=True),
                nn.Linear(256, len(JointState)),
            )
        else:
            self.state = nn.Linear(deep, NUM_COCO_KEYPOINTS * len(JointState))

    @property
    def heatmap_size(self) -> int:
        return self.config.input_size // 4

    def forward(
        self,
        image: torch.Tensor,
        prior_keypoints: torch.Tensor | None = None,
        prior_confidence: torch.Tensor | None = None,
    ) -> Detections:
        """Detect keypoints in crops (B, 3, 256, 256) uint8; with ``prior_input``, also given the
        prior's keypoints (B, 17, 2) crop px and confidence (B, 17) (0: not found)."""
        x = normalise_image(image)
        if x.shape[-1] != self.config.input_size:
            x = F.interpolate(x, size=(self.config.input_size,) * 2, mode="bilinear", antialias=True)
        if self.config.prior_input:
            if prior_keypoints is None or prior_confidence is None:
                raise ValueError(
                    "this detector reads a keypoint prior: give prior_keypoints and prior_confidence"
                )
            maps = gaussian_heatmaps(prior_keypoints, self.config.input_size, self.config.heatmap_sigma)
            x = torch.cat([x, (maps * prior_confidence[..., None, None]).to(x.dtype)], dim=1)
        mid, deep = self.backbone(x)
        heatmaps = self.upsample(mid)
        skeleton_logits = None
        if self.config.prior_input:
            # The mid-level feature where the prior put each joint, bilinear (grid in [-1, 1]).
            grid = (prior_keypoints.float() / CROP_SIZE * 2 - 1)[:, :, None, :].to(mid.dtype)
            local = F.grid_sample(mid, grid, align_corners=False)[..., 0].transpose(1, 2)  # (B, 17, C)
            pooled = deep.mean(dim=(2, 3))[:, None, :].expand(-1, NUM_COCO_KEYPOINTS, -1)
            identity = self.joint_embedding[None].expand(len(x), -1, -1).to(local.dtype)
            features = torch.cat(
                [local, pooled, identity, prior_confidence[..., None].to(local.dtype)], dim=-1
            )
            state_logits = self.state(features)
            if self.config.skeleton_context:
                # The skeleton's evidence adds to the absent logit of BPAC's keypoints.
                skeleton_logits = self.skeleton(skeleton_geometry(prior_keypoints, prior_confidence))
                evidence = torch.zeros_like(state_logits, dtype=torch.float32)
                evidence[:, list(BPAC_COCO_KEYPOINTS), JointState.ABSENT] = skeleton_logits.float()
                state_logits = state_logits.float() + evidence
        else:
            state_logits = self.state(deep.mean(dim=(2, 3))).view(-1, NUM_COCO_KEYPOINTS, len(JointState))
        keypoints = heatmap_argmax(heatmaps.float()) * (CROP_SIZE / heatmaps.shape[-1])
        located = keypoints
        if self.config.prior_input:
            found = (prior_confidence > 0)[..., None]
            keypoints = torch.where(found, prior_keypoints.float(), keypoints)
            # A lifter reads only the prior's positions: lifted from our heatmap peaks (a few CPU
            # minutes of training), the bodies the prior missed came out worse than the mean.
            located = torch.where(found, prior_keypoints.float(), torch.zeros_like(keypoints))
        confidence = 1.0 - state_logits.float().softmax(-1)[..., JointState.ABSENT]
        keypoints = keypoints * (confidence >= self.config.confidence_threshold)[..., None]
        return Detections(heatmaps, state_logits, keypoints, confidence, located, skeleton_logits)


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
    parts = {"heatmap": heatmap.detach(), "state": states.detach()}
    if detections.skeleton_logits is not None:
        absent = (keypoint_state[:, list(BPAC_COCO_KEYPOINTS)] == KeypointState.ABSENT).float()
        skeleton = F.binary_cross_entropy_with_logits(
            detections.skeleton_logits.float(), absent, pos_weight=absent.new_tensor(absent_weight)
        )
        loss = loss + state_weight * skeleton
        parts["skeleton"] = skeleton.detach()
    return loss, parts


def detect_batch(detector: nn.Module, batch: dict[str, torch.Tensor]) -> Detections:
    """The detector (or its Fabric wrapper) on a collated batch: the crops, and the prior when the
    detector reads one."""
    if not detector.config.prior_input:
        return detector(batch["image"])
    if "prior_keypoints2d" not in batch:
        raise ValueError(
            "the keypoint detector reads a keypoint prior, and the batch has none "
            "(give the keypoint_prior stage's output: --keypoint-prior data/keypoint_prior)"
        )
    return detector(batch["image"], batch["prior_keypoints2d"], batch["prior_confidence"])
