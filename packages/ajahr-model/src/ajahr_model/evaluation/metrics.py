"""Mesh-recovery and classifier metrics (brief §5), in millimetres where they are distances.

* MPJPE: mean L2 of the joints after subtracting each skeleton's pelvis.
* PA-MPJPE: the same after a similarity Procrustes alignment (rotation, translation, scale) of
  each predicted skeleton onto its ground truth.
* MVE (PVE): mean L2 over the vertices after subtracting the same pelvis offsets as MPJPE.
* 2D keypoint error: mean L2 in crop pixels of the projected COCO keypoints over the visible true
  ones: where the body lands in the image (MPJPE and PA-MPJPE are blind to the camera).

Joint sets: the 24 SMPL joints with the pelvis taken as the mean of the hips (EMDB style), or the
14 LSP/H36M joints regressed from the vertices with a licensed SMPL's H36M regressor (3DPW/H36M
style, pelvis = the mean of the hips, joints 2 and 3 of the 14).

The amputee protocols are a matter of what is compared: the caller zeroes the predicted pose's
amputated joints with the ground-truth label (the paper's headline) or with BPAC-Net's label
before the body model; the ground truth is zeroed already.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

from a3d_data.synthesis.schema import CROP_SIZE

SMPL_HIPS = (1, 2)  # L_hip, R_hip of the 24 SMPL joints
# The 14 LSP joints of the H36M regressor's 17 (the order HMR2/SPIN evaluate in):
# R ankle, R knee, R hip, L hip, L knee, L ankle, R wrist, R elbow, R shoulder, L shoulder,
# L elbow, L wrist, neck, head top.
H36M_TO_14 = (3, 2, 1, 4, 5, 6, 16, 15, 14, 11, 12, 13, 8, 10)
LSP14_HIPS = (2, 3)


def pelvis(joints: torch.Tensor, hips: Sequence[int] = SMPL_HIPS) -> torch.Tensor:
    """(B, 1, 3): the mean of the hip joints of (B, J, 3)."""
    return joints[:, list(hips)].mean(1, keepdim=True)


def mpjpe_mm(pred: torch.Tensor, gt: torch.Tensor, hips: Sequence[int] = SMPL_HIPS) -> torch.Tensor:
    """Per-sample MPJPE (B,) in mm of joints (B, J, 3) in metres, each aligned at its pelvis."""
    return ((pred - pelvis(pred, hips)) - (gt - pelvis(gt, hips))).norm(dim=-1).mean(-1) * 1000.0


def keypoint_error_px(pred: torch.Tensor, gt: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Per-sample mean 2D error (B,) in crop pixels of predicted keypoints (B, K, 2; crop
    coordinates normalised to [-0.5, 0.5], as the regressor projects them) against true ones
    (B, K, 2; pixels), over the ``visible`` (B, K) ones; NaN for a sample with none."""
    error = ((pred + 0.5) * CROP_SIZE - gt).norm(dim=-1)
    count = visible.sum(-1)
    total = (error * visible).sum(-1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


def mve_mm(
    pred_vertices: torch.Tensor,
    gt_vertices: torch.Tensor,
    pred_joints: torch.Tensor,
    gt_joints: torch.Tensor,
    hips: Sequence[int] = SMPL_HIPS,
) -> torch.Tensor:
    """Per-sample MVE (B,) in mm: vertices (B, V, 3) offset by their own skeleton's pelvis."""
    pred = pred_vertices - pelvis(pred_joints, hips)
    gt = gt_vertices - pelvis(gt_joints, hips)
    return (pred - gt).norm(dim=-1).mean(-1) * 1000.0


def similarity_procrustes(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``source`` (B, N, 3) moved by the similarity transform (s, R, t) that best fits ``target``
    in least squares (Umeyama), per sample; reflections are excluded."""
    source, target = source.double(), target.double()
    mu_s, mu_t = source.mean(1, keepdim=True), target.mean(1, keepdim=True)
    xs, xt = source - mu_s, target - mu_t
    covariance = xt.transpose(1, 2) @ xs  # (B, 3, 3)
    u, sigma, vh = torch.linalg.svd(covariance)
    sign = torch.sign(torch.linalg.det(u @ vh))
    correction = torch.ones_like(sigma)
    correction[:, -1] = sign
    rotation = u @ torch.diag_embed(correction) @ vh
    variance = (xs**2).sum((1, 2)).clamp_min(1e-12)
    scale = (sigma * correction).sum(-1) / variance
    aligned = scale[:, None, None] * xs @ rotation.transpose(1, 2) + mu_t
    return aligned.to(torch.float32)


def pa_mpjpe_mm(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Per-sample PA-MPJPE (B,) in mm: MPJPE after similarity Procrustes alignment."""
    return (similarity_procrustes(pred, gt) - gt).norm(dim=-1).mean(-1) * 1000.0


def lsp14_joints(vertices: torch.Tensor, h36m_regressor: torch.Tensor) -> torch.Tensor:
    """The 14 LSP joints (B, 14, 3) from vertices (B, V, 3) and an H36M regressor (17, V)."""
    if h36m_regressor.ndim != 2 or h36m_regressor.shape[1] != vertices.shape[1]:
        raise ValueError(
            f"H36M regressor of shape {tuple(h36m_regressor.shape)} does not fit meshes of "
            f"{vertices.shape[1]} vertices (expected (17, {vertices.shape[1]}))"
        )
    joints = torch.einsum("jv,bvc->bjc", h36m_regressor.to(vertices), vertices)
    return joints[:, list(H36M_TO_14)]


@dataclass(frozen=True)
class MeshErrors:
    """Per-sample errors (B,) in mm."""

    mpjpe: torch.Tensor
    pa_mpjpe: torch.Tensor
    mve: torch.Tensor


def mesh_errors(
    pred_joints: torch.Tensor,
    gt_joints: torch.Tensor,
    pred_vertices: torch.Tensor,
    gt_vertices: torch.Tensor,
    h36m_regressor: torch.Tensor | None = None,
) -> MeshErrors:
    """MPJPE, PA-MPJPE and MVE per sample: on the 24 SMPL joints, or on the 14 LSP joints
    regressed from the vertices when an H36M regressor is given."""
    if h36m_regressor is not None:
        pred_j = lsp14_joints(pred_vertices, h36m_regressor)
        gt_j = lsp14_joints(gt_vertices, h36m_regressor)
        hips: Sequence[int] = LSP14_HIPS
    else:
        pred_j, gt_j, hips = pred_joints, gt_joints, SMPL_HIPS
    return MeshErrors(
        mpjpe=mpjpe_mm(pred_j, gt_j, hips),
        pa_mpjpe=pa_mpjpe_mm(pred_j, gt_j),
        mve=mve_mm(pred_vertices, gt_vertices, pred_j, gt_j, hips),
    )


def classification_metrics(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Accuracy, and precision, recall and F1 weighted by the classes' support (the paper's
    evaluator), of integer labels (N,)."""
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    if pred.numel() == 0:
        raise ValueError("no samples to score")
    kwargs = {"num_classes": num_classes, "average": "weighted"}
    return {
        "accuracy": float(multiclass_accuracy(pred, target, num_classes=num_classes, average="micro")),
        "precision": float(multiclass_precision(pred, target, **kwargs)),
        "recall": float(multiclass_recall(pred, target, **kwargs)),
        "f1": float(multiclass_f1_score(pred, target, **kwargs)),
    }


def balanced_accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    """The mean over the classes in ``target`` of each one's recall. A predictor that ignores
    its input (always one of those k classes) scores 1 / k, so false calls of one class count
    against it as much as misses of another; any other predicted id is a wrong answer."""
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    if target.numel() == 0:
        raise ValueError("no samples to score")
    classes = torch.unique(target)
    recalls = [(pred[target == c] == c).float().mean() for c in classes]
    return float(torch.stack(recalls).mean())


def binary_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of the positive class (amputee) for bool labels (N,)."""
    pred, target = pred.reshape(-1).bool(), target.reshape(-1).bool()
    tp = int((pred & target).sum())
    fp = int((pred & ~target).sum())
    fn = int((~pred & target).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": float((pred == target).float().mean()),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "predicted_positive": float(pred.float().mean()),
    }


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> list[list[int]]:
    """Counts (num_classes, num_classes): row = true class, column = predicted."""
    matrix = multiclass_confusion_matrix(pred.reshape(-1).long(), target.reshape(-1).long(), num_classes)
    return matrix.tolist()
