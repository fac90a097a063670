"""The AJAHR mesh regressor (brief §4.3), with BPAC-Net and the two frozen pose tokenizers.

image crop --ViT (timm)--> image tokens --decoder (one query; per layer: self-attn, cross-attn to
the image tokens, FF, self-attn, cross-attn to BPAC-Net's h_token, FF)--> query token -->
  * global orientation (6D), betas, camera, hand joints 22/23 (6D): residuals over mean values;
  * body pose: an MLP-Mixer token classifier gives logits over a codebook for each of T tokens ->
    softmax -> soft codebook lookup -> the frozen tokenizer decoder -> 21 joints in 6D.
The amputee tokenizer decodes a body that BPAC-Net (or, in training, the label) calls amputee,
the non-amputee tokenizer the others. The rotation matrices of the amputated joints are then set
to zero before the body model, which collapses the limb onto its joint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import timm
import torch
import torch.nn.functional as F
from timm.models.mlp_mixer import MixerBlock
from torch import nn

from a3d_data.amputation.labels import zeroed_joint_mask
from a3d_data.amputation.table import NUM_HEADS
from a3d_data.body_model.model import BodyModel
from a3d_data.synthesis.schema import CROP_SIZE, FOCAL_LENGTH
from ajahr_model.networks.bpac import NONE_CLASS, BPACNet, BPACOutput, normalise_image
from ajahr_model.tokenizer.rotation6d import matrix_to_rotation_6d, rotation_6d_to_matrix
from ajahr_model.tokenizer.vqvae import PoseVQVAE

TOKENIZER_ROLES = ("non_amputee", "amputee")
Switching = Literal["predicted", "ground_truth"]


@dataclass(frozen=True)
class RegressorConfig:
    """Shapes of the regressor (the paper's: ViT-H/16 at 256x192, 6 layers of 1024, 8 x 64 heads)."""

    backbone: str = "vit_huge_patch14_224"
    patch_size: int = 16
    image_height: int = 256
    image_width: int = 192
    drop_path: float = 0.0
    decoder_depth: int = 6
    decoder_dim: int = 1024
    decoder_heads: int = 8
    decoder_head_dim: int = 64
    decoder_mlp_dim: int = 1024
    second_cross_attention: bool = True
    # "tokens": the token classifier over the frozen tokenizers (AJAHR, TokenHMR-style);
    # "direct": 21 x 6D body rotations regressed as residuals over the mean pose (HMR2-style).
    pose_head: Literal["tokens", "direct"] = "tokens"
    # False: no BPAC-Net (the baselines): no h_token, no classifier, every body called non-amputee.
    use_bpac: bool = True
    # Ours, not the paper's: a second context token for the second cross-attention, an MLP over
    # the coordinates and presence of the 17 keypoints BPAC-Net is given. BPAC-Net reads the same
    # keypoints from heatmaps, which a ResNet trained from scratch learns to localise only after
    # many steps. Off in every profile: with true keypoints it lets a few hundred steps learn the
    # orientation, but at test time the detector's keypoints carry too little of it (README).
    keypoint_token: bool = False
    # Ours, not the paper's: the decoder's query starts from an MLP embedding of the 2D keypoints
    # (coordinates and presence) instead of a learned constant, a lifting path from the first
    # layer on, with or without BPAC-Net. On in the cpu profile, where it reads the detector's
    # located keypoints (BlazePose's, stage keypoint_prior); from our detector's own heatmaps
    # it lifted nothing (README).
    keypoint_query: bool = False
    mixer_dim: int = 256
    mixer_depth: int = 2
    # Ours, not the paper's: the token logits start as this logit on the tokens of the rest pose
    # (a learned (T, K) bias per tokenizer), so the decoded body starts from the rest pose, as
    # the direct head's does, not from the decoding of the average code (a huddled pose whose
    # joints barely move with the global orientation, which then learns slowly). 0: off.
    rest_pose_token_logit: float = 0.0
    # Ours, not the paper's: a head regresses the 24 pelvis-relative joints from the query (an
    # auxiliary output with its own L1 loss, ``joints_direct``), and the global orientation is
    # the rotation that carries the rest pose's root frame (left hip - right hip, spine1 -
    # pelvis: joints attached to the root, which no body pose moves) onto the regressed one,
    # times the residual head's rotation. A network learns joint positions from keypoints in a
    # few hundred steps; a rotation regressed directly it learns far more slowly (README).
    root_from_joints: bool = False
    # Ours, not the paper's: at inference (eval mode) the camera translation is the least-squares
    # fit of the predicted body's COCO keypoints onto the located 2D keypoints (those the detector
    # does not call absent), as SPIN-style pipelines fit a camera; the head's camera where fewer
    # than ``CAMERA_FIT_MIN_KEYPOINTS`` are located, the fit is degenerate, or it lands further
    # from the keypoints than the head's camera does. Training keeps the head's camera: with
    # the fit in the 2D loss, MPJPE got 10-17 mm worse in the cpu profile.
    # The camera moves no 3D figure; it places the mesh in the image. In the cpu profile's few
    # hundred steps the head placed the body no better than the mean position (README).
    camera_fit: bool = False
    bpac_input_size: int = 256
    bpac_heatmap_sigma: float = 2.0


class Attention(nn.Module):
    """Multi-head attention of queries (B, N, dim) to a context (B, M, context_dim)."""

    def __init__(self, dim: int, context_dim: int, heads: int, head_dim: int):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(context_dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        inner = self.to_q.out_features
        q = self.to_q(x).view(b, -1, self.heads, inner // self.heads).transpose(1, 2)
        k, v = (
            t.reshape(b, -1, self.heads, inner // self.heads).transpose(1, 2)
            for t in self.to_kv(context).chunk(2, dim=-1)
        )
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, -1, inner))


class _Block(nn.Module):
    """Pre-norm self-attention, cross-attention to ``context`` and feed-forward, each residual."""

    def __init__(
        self,
        dim: int,
        context_dim: int,
        heads: int,
        head_dim: int,
        mlp_dim: int,
        identity_at_init: bool = False,
    ):
        super().__init__()
        self.norm_self = nn.LayerNorm(dim)
        self.norm_cross = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(context_dim)
        self.norm_ff = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, dim, heads, head_dim)
        self.cross_attn = Attention(dim, context_dim, heads, head_dim)
        self.ff = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))
        # The cross-attention branch starts at zero (a zero-initialised residual branch): what an
        # untrained backbone's tokens say is noise, which would otherwise swamp the query (and
        # the keypoints embedded in it) from the first step. ``identity_at_init``: every branch
        # does, and the whole block starts as the identity.
        branches = [self.cross_attn.to_out]
        if identity_at_init:
            branches += [self.self_attn.to_out, self.ff[-1]]
        for branch in branches:
            nn.init.zeros_(branch.weight)
            nn.init.zeros_(branch.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        h = self.norm_self(x)
        x = x + self.self_attn(h, h)
        x = x + self.cross_attn(self.norm_cross(x), self.norm_context(context))
        return x + self.ff(self.norm_ff(x))


class DecoderLayer(nn.Module):
    """One AJAHR decoder layer: a block attending to the image tokens, then (optionally) one
    attending to BPAC-Net's ``h_token`` (the paper's second cross-attention)."""

    def __init__(self, dim: int, context_dim: int, heads: int, head_dim: int, mlp_dim: int, second: bool):
        super().__init__()
        self.image = _Block(dim, context_dim, heads, head_dim, mlp_dim)
        # The second block starts as the identity, so AJAHR starts as the single-attention
        # decoder and learns what h_token adds. With random self-attention and feed-forward
        # branches here, the cpu profile's 240 steps gave test MPJPE 243 or 274 mm depending on
        # the seed (README).
        self.bpac = (
            _Block(dim, context_dim, heads, head_dim, mlp_dim, identity_at_init=True) if second else None
        )

    def forward(self, x: torch.Tensor, image_tokens: torch.Tensor, h_token: torch.Tensor) -> torch.Tensor:
        x = self.image(x, image_tokens)
        return self.bpac(x, h_token) if self.bpac is not None else x


class TokenClassifier(nn.Module):
    """The "bridge MLP": the query token -> T tokens of ``mixer_dim`` -> MLP-Mixer blocks (timm) ->
    one logit head (T, K) per tokenizer (their codebooks differ)."""

    def __init__(
        self, dim: int, tokens: int, codebook_size: int, mixer_dim: int, depth: int, roles: tuple[str, ...]
    ):
        super().__init__()
        self.tokens, self.mixer_dim = tokens, mixer_dim
        self.expand = nn.Linear(dim, tokens * mixer_dim)
        self.mixer = nn.Sequential(*(MixerBlock(mixer_dim, tokens) for _ in range(depth)))
        self.norm = nn.LayerNorm(mixer_dim)
        self.logits = nn.ModuleDict({role: nn.Linear(mixer_dim, codebook_size) for role in roles})
        # A learned logit bias per token position and code (zero: none; see rest_pose_token_logit).
        self.token_bias = nn.ParameterDict(
            {role: nn.Parameter(torch.zeros(tokens, codebook_size)) for role in roles}
        )

    def forward(self, query: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.norm(self.mixer(self.expand(query).view(-1, self.tokens, self.mixer_dim)))
        return {role: head(x) + self.token_bias[role] for role, head in self.logits.items()}


@dataclass
class AJAHROutput:
    """What the model predicts for a batch (metres, camera frame without translation).

    rotmats (B, 24, 3, 3) after zeroing, rotmats_full before it (to re-zero with another label);
    betas (B, 10); camera (B, 3) = (s, tx, ty);
    cam_t (B, 3) metres; vertices (B, V, 3); joints (B, 24, 3) SMPL joints; keypoints2d
    (B, 17, 2) COCO keypoints in crop coordinates normalised to [-0.5, 0.5]; zeroed (B, 24)
    joints set to zero; amputee_tokenizer (B,) which samples used the amputee tokenizer;
    token_logits per tokenizer (B, T, K) (empty for the direct head); bpac (None without BPAC-Net).
    """

    rotmats: torch.Tensor
    rotmats_full: torch.Tensor
    betas: torch.Tensor
    camera: torch.Tensor
    cam_t: torch.Tensor
    vertices: torch.Tensor
    joints: torch.Tensor
    keypoints2d: torch.Tensor
    zeroed: torch.Tensor
    amputee_tokenizer: torch.Tensor
    token_logits: dict[str, torch.Tensor]
    bpac: BPACOutput | None
    joints_direct: torch.Tensor | None = None  # (B, 24, 3) pelvis-relative, with root_from_joints

    def predicted_head_labels(self) -> torch.Tensor:
        """BPAC-Net's level per head (B, 4); "none" everywhere for a model without BPAC-Net."""
        if self.bpac is not None:
            return self.bpac.head_labels()
        return torch.full(
            (self.rotmats.shape[0], NUM_HEADS), NONE_CLASS, dtype=torch.long, device=self.rotmats.device
        )


def keypoint_features(keypoints: torch.Tensor) -> torch.Tensor:
    """(B, 51): COCO-17 keypoints (crop pixels) centred and scaled to [-0.5, 0.5], and a presence
    flag per joint (a keypoint at (0, 0) is absent or zeroed for low confidence)."""
    present = (keypoints.abs().sum(-1, keepdim=True) > 0).to(keypoints.dtype)
    return torch.cat([(keypoints / CROP_SIZE - 0.5) * present, present], dim=-1).flatten(1).float()


# SMPL joints attached to the root: pelvis, left hip, right hip, spine1.
PELVIS, LEFT_HIP, RIGHT_HIP, SPINE1 = 0, 1, 2, 3


def root_frame(joints: torch.Tensor) -> torch.Tensor:
    """An orthonormal frame (..., 3, 3) (columns) from root-attached joints (..., 24, 3): the first
    axis along right hip -> left hip, the second along pelvis -> spine1 made orthogonal to it."""
    across = F.normalize(joints[..., LEFT_HIP, :] - joints[..., RIGHT_HIP, :], dim=-1, eps=1e-6)
    up = joints[..., SPINE1, :] - joints[..., PELVIS, :]
    up = F.normalize(up - (up * across).sum(-1, keepdim=True) * across, dim=-1, eps=1e-6)
    return torch.stack([across, up, torch.cross(across, up, dim=-1)], dim=-1)


def camera_translation(camera: torch.Tensor) -> torch.Tensor:
    """HMR2 weak-perspective camera (s, tx, ty) -> translation (B, 3) for focal 5000 at 256 px."""
    s, tx, ty = camera.unbind(-1)
    return torch.stack([tx, ty, 2 * FOCAL_LENGTH / (CROP_SIZE * s + 1e-9)], dim=-1)


CAMERA_FIT_MIN_KEYPOINTS = 4
# Keypoints bunched closer than this (RMS distance from their centroid, crop pixels) cannot tell
# the depth: the equations are then singular up to rounding.
CAMERA_FIT_MIN_SPREAD_PX = 4.0
# Depths (metres, at the focal length of 5000 px) outside which a fit is taken as degenerate: a
# body of 1.7 m would span 2.6x the 256-px crop at 5 m and 0.07 px at 500 m.
CAMERA_FIT_DEPTH_RANGE = (5.0, 500.0)
# The robust passes: replayed on the committed cpu-profile predictions, they took the median 2D
# keypoint error from 20.3 to 18.6 px and the pelvis from 8.2 to 6.5 px (plain least squares).
CAMERA_FIT_REWEIGHTS = 3
CAMERA_FIT_DELTA_PX = 5.0


def fit_camera_translation(
    points: torch.Tensor,
    keypoints: torch.Tensor,
    usable: torch.Tensor,
    baseline: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The translation (B, 3) that projects camera-frame ``points`` (B, N, 3) closest to
    ``keypoints`` (B, N, 2, crop coordinates normalised to [-0.5, 0.5], as :func:`project`
    answers) over the ``usable`` (B, N) ones; and (B,) whether the fit holds: at least
    ``CAMERA_FIT_MIN_KEYPOINTS`` usable points, spread over at least ``CAMERA_FIT_MIN_SPREAD_PX``,
    and a depth inside ``CAMERA_FIT_DEPTH_RANGE``; given a ``baseline`` translation (B, 3), also
    a median reprojection error over the usable points no larger than the baseline's.

    Least squares of the linear equations f (X + tx) = c u (Z + tz), f (Y + ty) = c v (Z + tz)
    (f the focal length, c the crop size), solved in float64 (3 x 3 normal equations per body),
    then ``CAMERA_FIT_REWEIGHTS`` times again with each point weighted by 1 / max(its error,
    ``CAMERA_FIT_DELTA_PX``), an L1-like fit: a joint the detector drew where the body has none
    (a hallucinated limb it did not call absent) then pulls far less than squares would let it.
    """
    p, kp = points.double(), keypoints.double()
    w = usable.double()
    ratio = CROP_SIZE / FOCAL_LENGTH
    zeros, ones = torch.zeros_like(kp[..., 0]), torch.ones_like(kp[..., 0])
    # Rows divided by f: [1, 0, -c u / f] t = c u Z / f - X, and the same for y.
    rows = torch.cat(
        [
            torch.stack([ones, zeros, -ratio * kp[..., 0]], dim=-1),
            torch.stack([zeros, ones, -ratio * kp[..., 1]], dim=-1),
        ],
        dim=1,
    )  # (B, 2N, 3)
    targets = torch.cat(
        [ratio * kp[..., 0] * p[..., 2] - p[..., 0], ratio * kp[..., 1] * p[..., 2] - p[..., 1]], dim=1
    )  # (B, 2N)
    count = w.sum(1).clamp_min(1)
    centroid = (kp * w[..., None]).sum(1) / count[:, None]
    spread = (((kp - centroid[:, None]) ** 2).sum(-1) * w).sum(1).div(count).sqrt() * CROP_SIZE
    enough = (usable.sum(1) >= CAMERA_FIT_MIN_KEYPOINTS) & (spread >= CAMERA_FIT_MIN_SPREAD_PX)
    # Bodies without enough points solve the identity instead (their answer is not used).
    eye = torch.eye(3, dtype=rows.dtype, device=rows.device)

    def solve(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        both = torch.cat([weights, weights], dim=1)
        normal = rows.transpose(1, 2) @ (rows * both[..., None])
        rhs = (rows.transpose(1, 2) @ (targets * both)[..., None])[..., 0]
        return torch.linalg.solve_ex(torch.where(enough[:, None, None], normal, eye), rhs)

    def error_px(translation: torch.Tensor) -> torch.Tensor:
        return (project(p, translation) - kp).norm(dim=-1) * CROP_SIZE

    solution, info = solve(w)
    for _ in range(CAMERA_FIT_REWEIGHTS):
        solution, info = solve(w / error_px(solution).clamp_min(CAMERA_FIT_DELTA_PX))
    low, high = CAMERA_FIT_DEPTH_RANGE
    valid = (
        enough
        & (info == 0)
        & torch.isfinite(solution).all(-1)
        & (solution[:, 2] > low)
        & (solution[:, 2] < high)
    )
    if baseline is not None:
        # The equations weigh each error by its depth, not as it shows in the image: a body
        # turned the wrong way can fit them with a depth that puts it far off the keypoints.
        def median_error(translation: torch.Tensor) -> torch.Tensor:
            errors = error_px(translation).masked_fill(~usable, float("nan"))
            return errors.nanmedian(dim=1).values

        valid &= median_error(solution) <= median_error(baseline.double())
    return solution.to(points.dtype), valid


def project(points: torch.Tensor, cam_t: torch.Tensor) -> torch.Tensor:
    """Camera-frame points (B, N, 3) + translation -> crop coordinates normalised to [-0.5, 0.5]."""
    p = points + cam_t[:, None, :]
    depth = p[..., 2:].clamp(min=1e-3)
    return FOCAL_LENGTH * p[..., :2] / depth / CROP_SIZE


class AJAHR(nn.Module):
    """BPAC-Net + the mesh regressor + frozen tokenizers + the body model.

    The baselines and ablations of the evaluation are this class with parts left out: HMR2-style
    (``pose_head="direct"``, no tokenizer, ``use_bpac=False``), TokenHMR-style (the non-amputee
    tokenizer alone, no BPAC-Net), a single amputee tokenizer, no second cross-attention.

    Parameters
    ----------
    config : shapes and which parts exist.
    tokenizers : the frozen tokenizers by role (``non_amputee``, ``amputee``); with one, it decodes
        every sample (the single-tokenizer models). Empty for the direct pose head.
    body_model : the body model (its buffers are not trained).
    mean_root6d : (6,) mean global orientation in the camera frame (the residual's origin).
    """

    def __init__(
        self,
        config: RegressorConfig,
        tokenizers: dict[str, PoseVQVAE],
        body_model: BodyModel,
        mean_root6d: torch.Tensor | None = None,
    ):
        super().__init__()
        tokenizers = dict(tokenizers)
        if config.pose_head == "direct":
            if tokenizers:
                raise ValueError("tokenizers: the direct pose head uses none")
        elif not tokenizers or set(tokenizers) - set(TOKENIZER_ROLES):
            raise ValueError(f"tokenizers: expected roles among {TOKENIZER_ROLES}, got {sorted(tokenizers)}")
        shapes = {(t.config.tokens, t.config.codebook_size, t.config.code_dim) for t in tokenizers.values()}
        if len(shapes) > 1:
            raise ValueError(
                f"tokenizers: both must have the same tokens/codebook/code dim, got {sorted(shapes)}"
            )
        self.config = config
        self.backbone = timm.create_model(
            config.backbone,
            pretrained=False,
            num_classes=0,
            global_pool="",
            img_size=(config.image_height, config.image_width),
            patch_size=config.patch_size,
            drop_path_rate=config.drop_path,
            dynamic_img_size=False,
        )
        width = self.backbone.num_features
        self.bpac = (
            BPACNet(width, config.bpac_input_size, config.bpac_heatmap_sigma) if config.use_bpac else None
        )
        self.keypoint_encoder = (
            nn.Sequential(nn.Linear(17 * 3, 256), nn.GELU(), nn.Linear(256, width))
            if config.keypoint_token and config.use_bpac and config.second_cross_attention
            else None
        )
        self.query = nn.Parameter(torch.zeros(1, 1, config.decoder_dim))
        self.keypoint_query = (
            nn.Sequential(
                nn.Linear(17 * 3, 256),
                nn.GELU(),
                nn.Linear(256, 256),
                nn.GELU(),
                nn.Linear(256, config.decoder_dim),
            )
            if config.keypoint_query
            else None
        )
        self.layers = nn.ModuleList(
            DecoderLayer(
                config.decoder_dim,
                width,
                config.decoder_heads,
                config.decoder_head_dim,
                config.decoder_mlp_dim,
                config.second_cross_attention and config.use_bpac,
            )
            for _ in range(config.decoder_depth)
        )
        self.norm = nn.LayerNorm(config.decoder_dim)
        self.tokenizer_roles = tuple(r for r in TOKENIZER_ROLES if r in tokenizers)
        self.classifier: TokenClassifier | None = None
        self.pose_readout: nn.Linear | None = None
        if config.pose_head == "tokens":
            tokens, codebook_size, _ = shapes.pop()
            self.classifier = TokenClassifier(
                config.decoder_dim,
                tokens,
                codebook_size,
                config.mixer_dim,
                config.mixer_depth,
                self.tokenizer_roles,
            )
        else:
            self.pose_readout = nn.Linear(config.decoder_dim, 21 * 6)
            nn.init.zeros_(self.pose_readout.weight)
            nn.init.zeros_(self.pose_readout.bias)
        # 6 global orientation + 10 betas + 3 camera + 2 x 6 hands, as residuals.
        self.readout = nn.Linear(config.decoder_dim, 6 + body_model.num_betas + 3 + 12)
        nn.init.zeros_(self.readout.weight)
        nn.init.zeros_(self.readout.bias)
        identity6d = matrix_to_rotation_6d(torch.eye(3))
        self.register_buffer(
            "mean_root6d", identity6d.clone() if mean_root6d is None else mean_root6d.float()
        )
        self.register_buffer("mean_hands6d", identity6d.repeat(2))
        # The direct head's origin: the rest pose (6D of the identity) for all 21 body joints.
        self.register_buffer("mean_body6d", identity6d.repeat(21, 1))
        self.register_buffer("mean_camera", torch.tensor([0.9, 0.0, 0.0]))
        self.joints_head: nn.Linear | None = None
        if config.root_from_joints:
            with torch.no_grad():
                rest = body_model.forward_rotmats(torch.eye(3).expand(1, 24, 3, 3)).joints[0, :24]
            rest = rest - rest[PELVIS]
            # The regressed joints start as the rest skeleton under the mean orientation, so the
            # orientation starts at the mean one (the residual heads' origin).
            mean_root = rotation_6d_to_matrix(self.mean_root6d[None, None])[0, 0]
            self.register_buffer("rest_root_frame", root_frame(rest))
            self.register_buffer("mean_joints_direct", rest @ mean_root.T)
            self.joints_head = nn.Linear(config.decoder_dim, 24 * 3)
            nn.init.zeros_(self.joints_head.weight)
            nn.init.zeros_(self.joints_head.bias)
        # Frozen parts: not parameters of the optimiser, not in the state dict's trained weights.
        self.tokenizers = nn.ModuleDict(tokenizers)
        for tokenizer in self.tokenizers.values():
            tokenizer.requires_grad_(False).eval()
        if self.classifier is not None and config.rest_pose_token_logit:
            with torch.no_grad():
                for role, tokenizer in self.tokenizers.items():
                    rest = tokenizer.encode(identity6d.repeat(1, 21, 1))[0]  # (T,)
                    bias = F.one_hot(rest, tokenizer.config.codebook_size).float()
                    self.classifier.token_bias[role].copy_(config.rest_pose_token_logit * bias)
        self.body_model = body_model
        self.body_model.requires_grad_(False)

    def train(self, mode: bool = True) -> AJAHR:
        super().train(mode)
        self.tokenizers.eval()  # frozen: EMA codebooks never update
        return self

    def image_tokens(self, image: torch.Tensor) -> torch.Tensor:
        """ViT tokens (B, N, C) of the crop's centre (256 x 192 of the 256 x 256 crop), resized."""
        crop_width = round(CROP_SIZE * self.config.image_width / self.config.image_height)
        left = (CROP_SIZE - crop_width) // 2
        x = normalise_image(image[..., left : left + crop_width])
        if x.shape[-2:] != (self.config.image_height, self.config.image_width):
            x = F.interpolate(
                x, size=(self.config.image_height, self.config.image_width), mode="bilinear", antialias=True
            )
        # Without a classifier or pooling, the ViT's forward is its forward_features; calling the
        # module (not the method) is what a compiled backbone (train.compile) compiles.
        tokens = self.backbone(x)
        return tokens[:, getattr(self.backbone, "num_prefix_tokens", 0) :]

    def decode_pose(self, logits: dict[str, torch.Tensor], amputee: torch.Tensor) -> torch.Tensor:
        """Body joints (B, 21, 6): the soft lookup into each tokenizer's codebook, decoded by the
        tokenizer of each sample's role."""
        poses = {}
        for role, tokenizer in self.tokenizers.items():
            latent = logits[role].float().softmax(-1) @ tokenizer.codebook
            poses[role] = tokenizer.decode_latent(latent)
        if len(poses) == 1:
            return next(iter(poses.values()))
        return torch.where(amputee[:, None, None], poses["amputee"], poses["non_amputee"])

    def forward(
        self,
        image: torch.Tensor,
        keypoints: torch.Tensor,
        head_labels: torch.Tensor | None = None,
        switching: Switching = "predicted",
        zeroing: Switching | None = None,
        query_keypoints: torch.Tensor | None = None,
    ) -> AJAHROutput:
        """Predict meshes for crops (B, 3, 256, 256) uint8 and COCO keypoints (B, 17, 2) crop px.

        ``switching='ground_truth'`` chooses the tokenizer from ``head_labels`` (B, 4) instead of
        BPAC-Net's verdict (training). ``zeroing`` chooses the label whose amputated joints are
        zeroed (default: the same as ``switching``; the paper's amputee protocol evaluates a
        predicted switch with ground-truth zeroing). ``query_keypoints`` (B, 17, 2): what the
        keypoint query reads, if not ``keypoints`` (training may give BPAC-Net the true keypoints
        and the query the detector's).
        """
        bpac = self.bpac(image, keypoints) if self.bpac is not None else None
        image_tokens = self.image_tokens(image)
        h_token = bpac.h_token[:, None, :].to(image_tokens.dtype) if bpac is not None else image_tokens[:, :0]
        if self.keypoint_encoder is not None:
            h_token = torch.cat(
                [h_token, self.keypoint_encoder(keypoint_features(keypoints))[:, None]], dim=1
            )
        x = self.query.expand(image.shape[0], -1, -1)
        if self.keypoint_query is not None:
            read = keypoints if query_keypoints is None else query_keypoints
            x = x + self.keypoint_query(keypoint_features(read))[:, None]
        x = x.to(image_tokens.dtype)
        for layer in self.layers:
            x = layer(x, image_tokens, h_token)
        query = self.norm(x[:, 0])
        logits = self.classifier(query) if self.classifier is not None else {}
        if "ground_truth" in (switching, zeroing) and head_labels is None:
            raise ValueError("ground-truth switching or zeroing needs head_labels")
        predicted = (
            bpac.head_labels()
            if bpac is not None
            else torch.full((image.shape[0], NUM_HEADS), NONE_CLASS, dtype=torch.long, device=image.device)
        )
        switch_labels = head_labels if switching == "ground_truth" else predicted
        zero_labels = head_labels if (zeroing or switching) == "ground_truth" else predicted
        amputee = zeroed_joint_mask(switch_labels).any(-1)
        zeroed = zeroed_joint_mask(zero_labels)
        if self.pose_readout is not None:
            body6d = self.mean_body6d + self.pose_readout(query).float().view(-1, 21, 6)
        else:
            body6d = self.decode_pose(logits, amputee)
        residual = self.readout(query).float()
        nb = self.body_model.num_betas
        joints_direct = None
        if self.joints_head is not None:
            joints_direct = self.mean_joints_direct + self.joints_head(query).float().view(-1, 24, 3)
            # Rotation of the rest frame onto the regressed one, then the residual (identity at 0).
            frame_root = root_frame(joints_direct) @ self.rest_root_frame.T
            identity6d = self.mean_body6d[0]  # the rest pose's joint rotation: identity
            root_residual = rotation_6d_to_matrix((identity6d + residual[:, :6])[:, None], zero_below=0.0)[
                :, 0
            ]
            root6d = matrix_to_rotation_6d(frame_root @ root_residual)
        else:
            root6d = self.mean_root6d + residual[:, :6]
        betas = residual[:, 6 : 6 + nb]
        camera = self.mean_camera + residual[:, 6 + nb : 9 + nb]
        hands6d = (self.mean_hands6d + residual[:, 9 + nb :]).view(-1, 2, 6)
        # Every joint is a proper rotation here; amputation is the zeroing by labels below, not
        # the length of the tokenizer's 6D output. A soft lookup into the amputee codebook
        # decodes some present joints short: read as amputated, they collapsed 12-18% of the
        # present joints (their limbs, with no gradient to bring them back) whenever the amputee
        # tokenizer was used, and AJAHR trailed the baselines at every seed (README).
        rotmats = torch.cat(
            [
                rotation_6d_to_matrix(root6d[:, None], zero_below=0.0),
                rotation_6d_to_matrix(body6d.float(), zero_below=0.0),
                rotation_6d_to_matrix(hands6d, zero_below=0.0),
            ],
            dim=1,
        )
        # Zero-matrix amputation before the body model: the limb collapses onto its joint.
        rotmats_full = rotmats
        rotmats = rotmats * (~zeroed)[..., None, None].to(rotmats.dtype)
        body = self.body_model.forward_rotmats(rotmats, betas=betas)
        coco3d = self.body_model.coco_keypoints(body.vertices)
        cam_t = camera_translation(camera)
        if self.config.camera_fit and not self.training:
            anchors = keypoints if query_keypoints is None else query_keypoints
            # Located and not called absent: (0, 0) marks neither in one or the other.
            usable = (anchors.abs().sum(-1) > 0) & (keypoints.abs().sum(-1) > 0)
            fitted, valid = fit_camera_translation(
                coco3d.detach().float(), anchors.float() / CROP_SIZE - 0.5, usable, baseline=cam_t.detach()
            )
            cam_t = torch.where(valid[:, None], fitted, cam_t)
        keypoints2d = project(coco3d, cam_t)
        return AJAHROutput(
            rotmats=rotmats,
            rotmats_full=rotmats_full,
            betas=betas,
            camera=camera,
            cam_t=cam_t,
            vertices=body.vertices,
            joints=body.joints[:, :24],
            keypoints2d=keypoints2d,
            zeroed=zeroed,
            amputee_tokenizer=amputee,
            token_logits=logits,
            bpac=bpac,
            joints_direct=joints_direct,
        )

    def trainable_named_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Parameters the optimiser updates: everything but the tokenizers and the body model."""
        return [
            (name, p)
            for name, p in self.named_parameters()
            if p.requires_grad and not name.startswith(("tokenizers.", "body_model."))
        ]

    def freeze_for_partial_finetuning(self, vit_blocks: int = 4, decoder_layers: int = 2) -> None:
        """The paper's best variant: train only the last ``vit_blocks`` ViT blocks, the patch and
        position embeddings, the last ``decoder_layers`` decoder layers and the heads."""
        self.backbone.requires_grad_(False)
        for block in list(self.backbone.blocks)[-vit_blocks:]:
            block.requires_grad_(True)
        self.backbone.patch_embed.requires_grad_(True)
        if getattr(self.backbone, "pos_embed", None) is not None:
            self.backbone.pos_embed.requires_grad_(True)
        if hasattr(self.backbone, "norm"):
            self.backbone.norm.requires_grad_(True)
        for layer in list(self.layers)[:-decoder_layers]:
            layer.requires_grad_(False)
        self.query.requires_grad_(False)
