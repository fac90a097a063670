"""The AJAHR training loss (brief §4.3).

L = w_orient * L_orient + w_pose * L_pose + w_betas * L_betas + w_3d * L_3D + w_2d * L_2D + w_cls * L_cls

* L_orient, L_pose: MSE of the rotation matrices (root; joints 1..23). Amputated joints are zero
  matrices in both prediction (zeroed by the label) and ground truth.
* L_betas: MSE of the shape coefficients.
* L_3D: L1 of the 24 SMPL joints, pelvis-relative, metres.
* L_2D: L1 of the COCO-17 keypoints in normalised crop coordinates, on joints whose position is
  known (visible or occluded); absent and outside joints are masked.
* L_joints_direct (ours; only with ``root_from_joints``): L1 of the regressed pelvis-relative
  joints, which give the global orientation.
* L_cls: BPAC-Net cross-entropy, averaged over the four heads (0 for a model without BPAC-Net).
* TALS (threshold-adaptive loss scaling, optional): a joint whose error is under its threshold
  counts ``tals_factor`` times, so the loss spends itself on the joints that are still wrong.
  A threshold is one value for every joint or one per joint (24 SMPL joints in 3D, 17 COCO
  keypoints in 2D), as the brief's per-joint thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from a3d_data.amputation.table import NUM_HEAD_CLASSES
from a3d_data.synthesis.schema import CROP_SIZE, KeypointState
from ajahr_model.networks.regressor import AJAHROutput


@dataclass(frozen=True)
class LossWeights:
    global_orient: float = 0.001
    body_pose: float = 0.001
    betas: float = 0.0005
    keypoints3d: float = 0.05
    keypoints2d: float = 0.01
    bpac: float = 0.1
    joints_direct: float = 0.0
    tals: bool = False
    tals_threshold_3d: float | tuple[float, ...] = 0.05  # metres; or one per SMPL joint (24)
    tals_threshold_2d: float | tuple[float, ...] = 0.02  # crop units (5 px at 256); or one per keypoint (17)
    tals_factor: float = 0.05


LOSS_TERMS = ("global_orient", "body_pose", "betas", "keypoints3d", "keypoints2d", "bpac", "joints_direct")


def _tals(error: torch.Tensor, threshold: float | tuple[float, ...], weights: LossWeights) -> torch.Tensor:
    """``error`` (B, J); ``threshold`` a number or J numbers."""
    if not weights.tals:
        return error
    limit = torch.as_tensor(threshold, dtype=error.dtype, device=error.device)
    return torch.where(error.detach() < limit, weights.tals_factor * error, error)


def ajahr_loss(
    output: AJAHROutput, batch: dict[str, torch.Tensor], weights: LossWeights
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The weighted total and each unweighted term (detached), for a batch of A3D samples."""
    gt_rotmats = batch["rotmats"].float()
    orient = F.mse_loss(output.rotmats[:, 0], gt_rotmats[:, 0])
    pose = F.mse_loss(output.rotmats[:, 1:], gt_rotmats[:, 1:])
    betas = F.mse_loss(output.betas, batch["betas"].float())
    gt_joints = batch["joints3d_smpl"].float()
    pred_rel = output.joints - output.joints[:, :1]
    gt_rel = gt_joints - gt_joints[:, :1]
    error3d = (pred_rel - gt_rel).abs().sum(-1)  # (B, 24) L1 per joint
    keypoints3d = _tals(error3d, weights.tals_threshold_3d, weights).mean()
    state = batch["keypoint_state"]
    known = ((state == KeypointState.VISIBLE) | (state == KeypointState.OCCLUDED)).float()
    gt_2d = batch["keypoints2d"].float() / CROP_SIZE - 0.5
    error2d = (output.keypoints2d - gt_2d).abs().sum(-1)  # (B, 17)
    keypoints2d = (_tals(error2d, weights.tals_threshold_2d, weights) * known).sum() / known.sum().clamp_min(
        1
    )
    bpac = (
        F.cross_entropy(
            output.bpac.logits.float().reshape(-1, NUM_HEAD_CLASSES), batch["head_labels"].reshape(-1)
        )
        if output.bpac is not None
        else keypoints3d.new_zeros(())  # a baseline without BPAC-Net
    )
    joints_direct = (
        (output.joints_direct - gt_rel).abs().sum(-1).mean()
        if output.joints_direct is not None
        else keypoints3d.new_zeros(())
    )
    terms = {
        "global_orient": orient,
        "body_pose": pose,
        "betas": betas,
        "keypoints3d": keypoints3d,
        "keypoints2d": keypoints2d,
        "bpac": bpac,
        "joints_direct": joints_direct,
    }
    total = sum(getattr(weights, name) * value for name, value in terms.items())
    return total, {name: value.detach() for name, value in terms.items()}
