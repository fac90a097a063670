"""The body model every stage calls: ``smplx.SMPL`` fed from an A3D npz or a licensed SMPL file."""

from __future__ import annotations

import contextlib
import hashlib
import io
from importlib import resources
from pathlib import Path

import numpy as np
import smplx
import torch
from smplx.lbs import batch_rigid_transform
from smplx.utils import SMPLOutput, Struct

from a3d_data.body_model.io import BodyModelArrays, BodyModelFileError, read_body_model
from a3d_data.skeleton import NUM_SMPL_JOINTS, SMPL_PARENTS

BUNDLED_MODEL_NAME = "a3d_neutral.npz"


def bundled_model_path() -> Path:
    """Path of the licence-free A3D body model shipped inside the package."""
    return Path(str(resources.files("a3d_data.body_model") / "assets" / BUNDLED_MODEL_NAME))


class BodyModel(smplx.SMPL):
    """``smplx.SMPL`` with the COCO-17 regressor and skinning facts the project needs.

    Its ``forward`` is smplx's: joints (B, 24 + 21, 3) in smplx's order (the 24 SMPL joints, then
    the vertex keypoints of :data:`a3d_data.skeleton.VERTEX_KEYPOINT_NAMES`), vertices (B, V, 3),
    metres. :meth:`forward_rotmats` takes rotation matrices, which amputation needs (a zero
    matrix has no axis-angle form).
    """

    def __init__(self, arrays: BodyModelArrays, num_betas: int = 10, dtype: torch.dtype = torch.float32):
        available = arrays.shapedirs.shape[-1]
        if num_betas > available:
            raise BodyModelFileError(
                f"{arrays.source}: field 'shapedirs' has {available} shape directions, "
                f"{num_betas} betas were asked for"
            )
        # A model without pose correctives (the A3D model) gets one zero offset that broadcasts
        # over all vertices: smplx would otherwise multiply every pose by a (207, V*3) zero matrix.
        posedirs = arrays.posedirs if arrays.posedirs.any() else np.zeros((1, 3, arrays.posedirs.shape[-1]))
        struct = Struct(
            v_template=arrays.v_template,
            shapedirs=arrays.shapedirs,
            posedirs=posedirs,
            J_regressor=arrays.j_regressor,
            weights=arrays.weights,
            kintree_table=np.stack([np.array(SMPL_PARENTS), np.arange(NUM_SMPL_JOINTS)]),
            f=arrays.faces,
        )
        # smplx prints a warning for every model with fewer than 300 shape directions (all of
        # ours); it is not a problem here and would bury the logs.
        with contextlib.redirect_stdout(io.StringIO()):
            super().__init__(
                model_path=str(arrays.source),
                data_struct=struct,
                num_betas=num_betas,
                vertex_ids=arrays.vertex_ids,
                dtype=dtype,
            )
        self.register_buffer("coco_regressor", torch.as_tensor(arrays.coco_regressor, dtype=dtype))
        self.source = arrays.source
        self.metadata = arrays.metadata
        self.uv = arrays.uv
        self.face_uv = arrays.face_uv

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    def forward_rotmats(
        self,
        rotmats: torch.Tensor,
        betas: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
    ) -> SMPLOutput:
        """Pose the model with rotation matrices; the same result as smplx's ``forward``.

        Parameters
        ----------
        rotmats : (B, 24, 3, 3) local joint rotations, root first; zero matrices amputate.
        betas : (B, num_betas) shape coefficients, zeros when omitted.
        transl : (B, 3) metres, zeros when omitted.

        Returns an ``SMPLOutput`` with vertices (B, V, 3) and joints (B, 45, 3) in metres.
        Skinning blends the joints' 3x4 transforms per vertex and applies them with
        element-wise products: smplx's per-vertex 4x4 batched matmul is several times slower
        on CPU, and this runs for every synthesized sample and every training step.
        """
        if rotmats.ndim != 4 or rotmats.shape[1:] != (NUM_SMPL_JOINTS, 3, 3):
            raise ValueError(f"rotmats: expected shape (B, 24, 3, 3), got {tuple(rotmats.shape)}")
        batch = rotmats.shape[0]
        if betas is None:
            betas = rotmats.new_zeros(batch, self.num_betas)
        elif betas.shape != (batch, self.num_betas):
            raise ValueError(f"betas: expected shape ({batch}, {self.num_betas}), got {tuple(betas.shape)}")
        rest = self.v_template + torch.einsum("bl,vkl->bvk", betas, self.shapedirs)
        rest_joints = torch.einsum("jv,bvk->bjk", self.J_regressor, rest)
        if self.posedirs.shape[1] > 3:  # pose correctives (a licensed SMPL)
            eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
            features = (rotmats[:, 1:] - eye).reshape(batch, -1)
            rest = rest + (features @ self.posedirs).view(batch, -1, 3)
        posed_joints, transforms = batch_rigid_transform(
            rotmats, rest_joints, self.parents, dtype=rotmats.dtype
        )
        blended = (self.lbs_weights @ transforms[:, :, :3, :].reshape(batch, NUM_SMPL_JOINTS, 12)).view(
            batch, -1, 3, 4
        )
        vertices = (blended[..., :3] * rest[:, :, None, :]).sum(-1) + blended[..., 3]
        joints = self.vertex_joint_selector(vertices, posed_joints)
        if transl is not None:
            joints = joints + transl[:, None, :]
            vertices = vertices + transl[:, None, :]
        return SMPLOutput(
            vertices=vertices,
            joints=joints,
            betas=betas,
            global_orient=rotmats[:, :1],
            body_pose=rotmats[:, 1:],
            full_pose=rotmats,
        )

    def fingerprint(self) -> str:
        """sha256 (16 hex digits) of every array of the model (template, blend shapes, joint and
        keypoint regressors, skinning weights, faces). Training runs key their resumption on it:
        with another body model, a finished checkpoint is not the model that would be trained."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.state_dict().items()):
            digest.update(name.encode() + b"\0" + tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def coco_keypoints(self, vertices: torch.Tensor) -> torch.Tensor:
        """COCO-17 keypoints (B, 17, 3) regressed from posed vertices (B, V, 3)."""
        return torch.einsum("kv,bvd->bkd", self.coco_regressor, vertices)


def load_body_model(
    path: Path | str | None = None,
    num_betas: int = 10,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> BodyModel:
    """Load a body model: the bundled A3D model (``path=None``), an A3D npz or a licensed SMPL pkl.

    Raises :class:`BodyModelFileError` naming the file and field when the file is missing or
    malformed.
    """
    arrays = read_body_model(Path(path) if path is not None else bundled_model_path())
    return BodyModel(arrays, num_betas=num_betas, dtype=dtype).to(device)
