"""The tokenizer's training loss (brief §4.1) and the body-model skinning it runs through.

    L = w_rot * L2(rotation matrices) + w_vert * L2(vertices, area-weighted) + w_joint * L2(joints)
        + w_commit * commitment + w_6d * L2(6D values)

Rotation matrices come from the decoded 6D by Gram-Schmidt, with short 6D vectors decoding to the
zero matrix (:mod:`rotation6d`), and go through the body model with an identity root, identity
hands and zero betas: the tokenizer only describes the 21 body joints. The last term is ours: a
Gram-Schmidt rotation is scale-free, so without it nothing would pull a decoded 6D vector towards
zero where the target joint is amputated, nor out of the zero region (where the rotation term has
no gradient) towards length sqrt(2) where it is not; a fresh decoder starts there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from smplx.lbs import batch_rigid_transform
from torch import nn

from a3d_data.body_model import BodyModel
from a3d_data.skeleton import BODY_JOINTS, NUM_SMPL_JOINTS
from ajahr_model.tokenizer.rotation6d import rotation_6d_to_matrix


def vertex_area_weights(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Per-vertex share (V,) of the surface area: a third of each adjacent triangle's area, sum 1.

    Area weighting keeps densely meshed regions (face, hands) from dominating a vertex loss.
    """
    corners = vertices[faces.long()]  # (F, 3 corners, 3)
    areas = 0.5 * torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]).norm(dim=1)
    weights = torch.zeros(vertices.shape[0], dtype=vertices.dtype, device=vertices.device)
    weights.index_add_(0, faces.long().reshape(-1), (areas / 3.0).repeat_interleave(3))
    return weights / weights.sum()


def full_rotmats(body_rotmats: torch.Tensor) -> torch.Tensor:
    """SMPL rotations (B, 24, 3, 3) from the 21 body joints' (B, 21, 3, 3): identity root and hands.

    The hands need no zeroing for an amputated wrist: a zero wrist rotation collapses everything
    below it whatever the hand's own rotation is.
    """
    batch = body_rotmats.shape[0]
    eye = torch.eye(3, dtype=body_rotmats.dtype, device=body_rotmats.device)
    rotmats = eye.expand(batch, NUM_SMPL_JOINTS, 3, 3).clone()
    rotmats[:, list(BODY_JOINTS)] = body_rotmats
    return rotmats


class PoseSkinning(nn.Module):
    """Posed joints and (a subset of) vertices of the body model at zero betas, differentiable.

    The same linear blend skinning as :meth:`BodyModel.forward_rotmats` (pose correctives
    included when the model has them), restricted to ``vertex_ids`` so a training step on CPU does
    not skin all 13.7k vertices. The area weights are renormalised over the subset, so the vertex
    loss estimates the full mesh's area-weighted mean.

    Parameters
    ----------
    model : the body model.
    vertex_ids : (S,) long vertex indices, or None for every vertex.
    """

    def __init__(self, model: BodyModel, vertex_ids: torch.Tensor | None = None):
        super().__init__()
        num_vertices = model.v_template.shape[0]
        ids = torch.arange(num_vertices) if vertex_ids is None else vertex_ids.long().cpu()
        weights = vertex_area_weights(
            model.v_template.detach().cpu(), torch.as_tensor(model.faces.astype("int64"))
        )
        rest = model.v_template.detach().cpu()
        self.register_buffer("rest_vertices", rest[ids].clone())
        self.register_buffer("rest_joints", (model.J_regressor.detach().cpu() @ rest)[None])
        self.register_buffer("lbs_weights", model.lbs_weights.detach().cpu()[ids].clone())
        self.register_buffer("area_weights", weights[ids] / weights[ids].sum())
        posedirs = model.posedirs.detach().cpu()
        if posedirs.shape[1] > 3:  # a licensed SMPL: (207, V * 3) corrective blend shapes
            posedirs = posedirs.view(posedirs.shape[0], num_vertices, 3)[:, ids].reshape(
                posedirs.shape[0], -1
            )
            self.register_buffer("posedirs", posedirs.clone())
        else:
            self.posedirs = None
        self.parents = model.parents.detach().cpu().clone()
        self.vertex_ids = ids

    def forward(self, rotmats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Joints (B, 24, 3) and vertices (B, S, 3), metres, of rotations (B, 24, 3, 3)."""
        batch = rotmats.shape[0]
        rest = self.rest_vertices.expand(batch, -1, -1)
        if self.posedirs is not None:
            eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
            features = (rotmats[:, 1:] - eye).reshape(batch, -1)
            rest = rest + (features @ self.posedirs).view(batch, -1, 3)
        joints, transforms = batch_rigid_transform(
            rotmats,
            self.rest_joints.expand(batch, -1, -1),
            self.parents.to(rotmats.device),
            dtype=rotmats.dtype,
        )
        blended = (self.lbs_weights @ transforms[:, :, :3, :].reshape(batch, NUM_SMPL_JOINTS, 12)).view(
            batch, -1, 3, 4
        )
        vertices = (blended[..., :3] * rest[:, :, None, :]).sum(-1) + blended[..., 3]
        return joints, vertices


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (paper: 20 rotmat, 100 vertices, 100 joints, 1 commit)."""

    rotmat: float = 20.0
    vertices: float = 100.0
    joints: float = 100.0
    commit: float = 1.0
    sixd: float = 20.0


def tokenizer_loss(
    pred6d: torch.Tensor,
    target6d: torch.Tensor,
    commit_loss: torch.Tensor,
    skinning: PoseSkinning,
    weights: LossWeights,
    zero_norm: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted training loss and its unweighted terms.

    Parameters
    ----------
    pred6d, target6d : (B, 21, 6) decoded and true 6D rotations; amputated target joints are zeros.
    commit_loss : scalar from the quantizer.
    skinning : the body model (subset) to measure joints and vertices with.
    weights : the loss weights.
    zero_norm : 6D vectors shorter than this decode to zero matrices.

    Returns
    -------
    total : scalar to minimise.
    terms : unweighted terms as floats: ``rotmat`` (squared Frobenius norm per joint),
        ``vertices`` and ``joints`` (squared distance, m^2), ``commit``, ``sixd`` (squared 6D
        distance per joint).
    """
    pred_rot = rotation_6d_to_matrix(pred6d, zero_norm)
    target_rot = rotation_6d_to_matrix(target6d, zero_norm)
    rotmat = (pred_rot - target_rot).pow(2).sum((-2, -1)).mean()
    sixd = (pred6d - target6d).pow(2).sum(-1).mean()
    pred_joints, pred_vertices = skinning(full_rotmats(pred_rot))
    with torch.no_grad():
        target_joints, target_vertices = skinning(full_rotmats(target_rot))
    joints = (pred_joints - target_joints).pow(2).sum(-1).mean()
    vertices = ((pred_vertices - target_vertices).pow(2).sum(-1) * skinning.area_weights).sum(-1).mean()
    total = (
        weights.rotmat * rotmat
        + weights.vertices * vertices
        + weights.joints * joints
        + weights.commit * commit_loss
        + weights.sixd * sixd
    )
    values = {"rotmat": rotmat, "vertices": vertices, "joints": joints, "commit": commit_loss, "sixd": sixd}
    terms = {name: float(value.detach()) for name, value in values.items()}
    return total, terms
