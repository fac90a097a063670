"""Reconstruction metrics of a tokenizer on held-out poses (brief §5 conventions).

Both poses, the true and the reconstructed one, go through the body model with zero betas, an
identity root and identity hands. MPJPE is the mean distance (mm) of the 24 SMPL joints and MVE
of all vertices, both after subtracting each body's pelvis. On amputee poses the reconstruction is
taken as decoded (a short 6D vector is a zeroed joint) and, as in the paper's amputee protocol,
also with the true amputated joints zeroed (``*_gt_zeroed``).
"""

from __future__ import annotations

from typing import Any

import torch

from a3d_data.body_model import BodyModel
from a3d_data.skeleton import NUM_SMPL_JOINTS
from ajahr_model.tokenizer.data import TokenizerPoses
from ajahr_model.tokenizer.losses import full_rotmats
from ajahr_model.tokenizer.rotation6d import rotation_6d_to_matrix
from ajahr_model.tokenizer.vqvae import PoseVQVAE, perplexity_of

_MM = 1000.0
_PELVIS = 0


def _pelvis_aligned(body_model: BodyModel, body_rotmats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    device = body_model.v_template.device
    out = body_model.forward_rotmats(full_rotmats(body_rotmats.to(device)))
    pelvis = out.joints[:, _PELVIS : _PELVIS + 1]
    return out.joints[:, :NUM_SMPL_JOINTS] - pelvis, out.vertices - pelvis


def _errors_mm(
    body_model: BodyModel, pred: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pose MPJPE and MVE (N,) in mm between rotation sets (N, 21, 3, 3)."""
    pred_joints, pred_vertices = _pelvis_aligned(body_model, pred)
    true_joints, true_vertices = _pelvis_aligned(body_model, target)
    mpjpe = (pred_joints - true_joints).norm(dim=-1).mean(-1) * _MM
    mve = (pred_vertices - true_vertices).norm(dim=-1).mean(-1) * _MM
    return mpjpe.cpu(), mve.cpu()


@torch.no_grad()
def reconstruct(
    model: PoseVQVAE, poses: TokenizerPoses, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoded 6D poses (N, 21, 6) and token ids (N, T) of ``poses``, in eval mode, on CPU."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    decoded, indices = [], []
    for start in range(0, len(poses), batch_size):
        out = model(poses.pose6d[start : start + batch_size].to(device))
        decoded.append(out.pose6d.cpu())
        indices.append(out.indices.cpu())
    model.train(was_training)
    return torch.cat(decoded), torch.cat(indices)


@torch.no_grad()
def pose_errors(
    body_model: BodyModel, pred6d: torch.Tensor, poses: TokenizerPoses, zero_norm: float, batch_size: int
) -> dict[str, float]:
    """Mean MPJPE / MVE (mm) of decoded poses against the true ones; on amputees also the
    amputee protocol and how the zeroed joints decode."""
    zeroed = poses.pose6d.abs().sum(-1) == 0  # (N, 21) the true amputated joints
    sums: dict[str, float] = {}
    for start in range(0, len(poses), batch_size):
        rows = slice(start, start + batch_size)
        pred = rotation_6d_to_matrix(pred6d[rows], zero_norm)
        target = rotation_6d_to_matrix(poses.pose6d[rows], zero_norm)
        parts = {"mpjpe_mm": _errors_mm(body_model, pred, target)}
        if zeroed.any():
            keep = (~zeroed[rows]).to(pred.dtype)[..., None, None]
            parts["mpjpe_mm_gt_zeroed"] = _errors_mm(body_model, pred * keep, target)
        for name, (mpjpe, mve) in parts.items():
            sums[name] = sums.get(name, 0.0) + float(mpjpe.sum())
            mve_name = name.replace("mpjpe", "mve")
            sums[mve_name] = sums.get(mve_name, 0.0) + float(mve.sum())
    result = {name: value / len(poses) for name, value in sums.items()}
    lengths = pred6d.norm(dim=-1)
    if zeroed.any():
        # How close to "no rotation" the tokenizer decodes an amputated joint (0 is exact; a
        # rotation has length sqrt 2), and how many it decodes as zeroed.
        result["zeroed_joint_6d_norm_mean"] = float(lengths[zeroed].mean())
        result["zeroed_joint_6d_norm_max"] = float(lengths[zeroed].max())
        result["zeroed_joints_decoded_zero"] = float((lengths[zeroed] < zero_norm).float().mean())
    result["present_joints_decoded_zero"] = float((lengths[~zeroed] < zero_norm).float().mean())
    return result


def codebook_metrics(indices: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """Codebook usage on token ids (N, T): fraction of codes used, perplexity, unused (dead) codes."""
    counts = torch.bincount(indices.reshape(-1), minlength=codebook_size)
    used = int((counts > 0).sum())
    return {
        "codebook_usage": used / codebook_size,
        "perplexity": float(perplexity_of(counts)),
        "dead_codes": codebook_size - used,
    }


def evaluate(
    model: PoseVQVAE, body_model: BodyModel, held_out: dict[str, TokenizerPoses], batch_size: int
) -> dict[str, Any]:
    """Metrics of ``model`` on each held-out set (``normal``, ``amputee``) and its codebook on all of them.

    Returns a JSON-ready mapping: ``{"normal": {...}, "amputee": {...}, "codebook": {...}}``.
    """
    zero_norm = model.config.zero_norm
    result: dict[str, Any] = {}
    all_indices = []
    for name, poses in held_out.items():
        decoded, indices = reconstruct(model, poses, batch_size)
        result[name] = {"poses": len(poses), **pose_errors(body_model, decoded, poses, zero_norm, batch_size)}
        all_indices.append(indices)
    result["codebook"] = codebook_metrics(torch.cat(all_indices), model.config.codebook_size)
    # Codes the EMA state counts as dead at the end of training (they were being re-drawn).
    result["codebook"]["ema_dead_codes"] = int(model.quantizer.dead_codes().sum())
    return result
