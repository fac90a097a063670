"""The pose tokenizer's networks (brief §4.1): encoder, EMA quantizer, decoder, and the VQ-VAE wiring them.

Pure ``nn.Module`` s; losses, optimiser and checkpoints live in :mod:`losses` and :mod:`train`.

A pose is 21 body joints (SMPL 1..21) in 6D rotations, (B, 21, 6); an amputated joint is six zeros.
The encoder turns the joint axis into a longer "token" axis: a kernel-2 convolution maps the 21
joints onto the 20 gaps between neighbours, ``mul`` nearest-neighbour upsamplings double it, and
``down_t`` strided convolutions (each followed by a dilated ResNet1D) halve it again, so
``T = 20 * 2**mul / 2**down_t`` tokens of ``code_dim`` channels. Each token is replaced by its
nearest codebook entry; the decoder runs the same steps backwards to (B, 21, 6).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import torch
import torch.nn.functional as F
from torch import nn

from a3d_data.skeleton import BODY_JOINTS
from ajahr_model.tokenizer.rotation6d import SIX_D, ZERO_NORM

CONFIG_FORMAT: Final[str] = "ajahr-pose-tokenizer/1"
_KERNEL: Final[int] = 3  # width of every length-preserving convolution
# The joint axis (J joints) becomes J - 1 positions: one per pair of neighbouring joints.
_PAIR_KERNEL: Final[int] = 2


class TokenizerConfigError(ValueError):
    """A tokenizer configuration that cannot be built, or one that does not match a checkpoint."""


@dataclass(frozen=True)
class TokenizerConfig:
    """Everything that fixes the tokenizer's shapes and the meaning of its inputs and outputs.

    Stored inside every checkpoint, so a consumer can check what it loads (:func:`check_compatible`).

    Attributes
    ----------
    tokens : T, the number of tokens a pose becomes; ``T * 2**down_t / (num_joints - 1)`` must be
        a power of two (``2**mul``).
    codebook_size : K codes.
    code_dim : D channels per code.
    width : channels of the hidden convolutions.
    down_t : strided downsamplings (each with a ResNet1D) on the token axis.
    depth, dilation_growth : blocks per ResNet1D, and the factor between their dilations.
    smpl_joints : the SMPL joints of the pose, in order (SMPL 1..21 by default).
    zero_norm : a decoded 6D vector shorter than this is a zeroed (amputated) joint.
    """

    tokens: int = 320
    codebook_size: int = 2048
    code_dim: int = 256
    width: int = 512
    down_t: int = 1
    depth: int = 2
    dilation_growth: int = 3
    smpl_joints: tuple[int, ...] = field(default=BODY_JOINTS)
    zero_norm: float = ZERO_NORM
    format: str = CONFIG_FORMAT

    def __post_init__(self) -> None:
        object.__setattr__(self, "smpl_joints", tuple(int(j) for j in self.smpl_joints))
        for name in ("tokens", "codebook_size", "code_dim", "width", "depth", "dilation_growth"):
            if getattr(self, name) < 1:
                raise TokenizerConfigError(
                    f"tokenizer config: {name} must be >= 1, got {getattr(self, name)}"
                )
        if self.down_t < 0:
            raise TokenizerConfigError(f"tokenizer config: down_t must be >= 0, got {self.down_t}")
        if self.num_joints < _PAIR_KERNEL:
            raise TokenizerConfigError(f"tokenizer config: need at least 2 joints, got {self.num_joints}")
        _ = self.mul  # validates the token count

    @property
    def num_joints(self) -> int:
        return len(self.smpl_joints)

    @property
    def base_length(self) -> int:
        """Positions after the first convolution: one per pair of neighbouring joints (20)."""
        return self.num_joints - 1

    @property
    def mul(self) -> int:
        """Upsamplings by 2 of the joint axis, from ``T = base * 2**mul / 2**down_t``."""
        ratio = self.tokens * 2**self.down_t / self.base_length
        mul = round(math.log2(ratio)) if ratio > 0 else -1
        if mul < 0 or self.base_length * 2**mul != self.tokens * 2**self.down_t:
            choices = [
                self.base_length * 2**m // 2**self.down_t
                for m in range(self.down_t + 6)
                if (self.base_length * 2**m) % 2**self.down_t == 0
            ]
            raise TokenizerConfigError(
                f"tokenizer config: tokens={self.tokens} is not {self.base_length} * 2**mul / 2**down_t "
                f"for an integer mul >= 0; with down_t={self.down_t} choose one of {choices}, ..."
            )
        return mul

    def to_dict(self) -> dict[str, Any]:
        """The fields, plus the derived ``num_joints`` and ``mul`` for a reader of the checkpoint."""
        data = asdict(self)
        data["smpl_joints"] = list(self.smpl_joints)
        data.update(num_joints=self.num_joints, mul=self.mul)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenizerConfig:
        """The config :meth:`to_dict` wrote; derived fields must agree with the others."""
        fields = {key: value for key, value in data.items() if key not in _DERIVED_FIELDS}
        unknown = sorted(set(fields) - set(cls.__dataclass_fields__))
        if unknown:
            raise TokenizerConfigError(f"tokenizer config: unknown fields {unknown}")
        config = cls(**fields)
        for name in _DERIVED_FIELDS:
            if name in data and data[name] != getattr(config, name):
                raise TokenizerConfigError(
                    f"tokenizer config: {name}={data[name]} disagrees with the other fields "
                    f"({getattr(config, name)})"
                )
        return config


# Written by to_dict for readers, recomputed (and checked) by from_dict.
_DERIVED_FIELDS: Final[tuple[str, ...]] = ("num_joints", "mul")

# Fields whose difference between a checkpoint and a model makes the weights meaningless there.
SHAPE_FIELDS: Final[tuple[str, ...]] = (
    "format", "tokens", "codebook_size", "code_dim", "num_joints", "smpl_joints", "width", "down_t",
    "depth", "dilation_growth",
)  # fmt: skip


def config_mismatches(expected: TokenizerConfig, found: TokenizerConfig) -> list[str]:
    """Human-readable differences ``field: expected X, checkpoint has Y`` of the shape fields."""
    problems = []
    for name in SHAPE_FIELDS:
        want, have = getattr(expected, name), getattr(found, name)
        if want != have:
            problems.append(f"{name}: the model has {want}, the checkpoint has {have}")
    return problems


class ResidualBlock1D(nn.Module):
    """ReLU, a dilated length-preserving convolution, ReLU, a 1x1 convolution; plus the input."""

    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, _KERNEL, padding=dilation, dilation=dilation)
        self.mix = nn.Conv1d(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(F.relu(self.conv(F.relu(x))))


class ResNet1D(nn.Sequential):
    """``depth`` residual blocks with dilations 1, g, g**2, ... (g = ``dilation_growth``).

    Growing dilations widen the receptive field along the token axis quickly; the decoder uses
    them in reverse order (``reverse=True``), as a mirror image of the encoder.
    """

    def __init__(self, width: int, depth: int, dilation_growth: int, reverse: bool = False):
        dilations = [dilation_growth**i for i in range(depth)]
        if reverse:
            dilations = dilations[::-1]
        super().__init__(*(ResidualBlock1D(width, d) for d in dilations))


def _same_conv(channels_in: int, channels_out: int) -> nn.Conv1d:
    return nn.Conv1d(channels_in, channels_out, _KERNEL, padding=_KERNEL // 2)


def _halving_conv(width: int) -> nn.Conv1d:
    # Kernel 4, stride 2, padding 1 maps length L to exactly L / 2 for even L.
    return nn.Conv1d(width, width, 4, stride=2, padding=1)


class PoseEncoder(nn.Module):
    """(B, 6, J) joints -> (B, D, T) continuous tokens."""

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        width = config.width
        layers: list[nn.Module] = [nn.Conv1d(SIX_D, width, _PAIR_KERNEL), nn.ReLU()]
        for _ in range(config.mul):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), _same_conv(width, width), nn.ReLU()]
        for _ in range(config.down_t):
            layers += [_halving_conv(width), ResNet1D(width, config.depth, config.dilation_growth)]
        layers.append(_same_conv(width, config.code_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, joints: torch.Tensor) -> torch.Tensor:
        return self.layers(joints)


class PoseDecoder(nn.Module):
    """(B, D, T) tokens -> (B, 6, J) joints: the encoder's steps in reverse."""

    def __init__(self, config: TokenizerConfig):
        super().__init__()
        width = config.width
        layers: list[nn.Module] = [_same_conv(config.code_dim, width), nn.ReLU()]
        for _ in range(config.down_t):
            layers += [
                ResNet1D(width, config.depth, config.dilation_growth, reverse=True),
                nn.Upsample(scale_factor=2, mode="nearest"),
                _same_conv(width, width),
            ]
        for _ in range(config.mul):
            layers += [_halving_conv(width), nn.ReLU()]
        # Back from the J - 1 gaps to the J joints.
        layers += [nn.ConvTranspose1d(width, width, _PAIR_KERNEL), nn.ReLU(), _same_conv(width, SIX_D)]
        self.layers = nn.Sequential(*layers)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.layers(tokens)


@dataclass
class QuantizerOutput:
    """What the quantizer returns for (B, D, T) encoder outputs.

    Attributes
    ----------
    quantized : (B, D, T) the nearest codes, with the straight-through gradient to the input.
    indices : (B, T) long, the chosen codes.
    commit_loss : scalar, mean squared distance of the inputs to their (fixed) codes.
    counts : (K,) how often each code was chosen in this batch.
    perplexity : scalar, exp of the entropy of the batch's code histogram (K when uniform).
    """

    quantized: torch.Tensor
    indices: torch.Tensor
    commit_loss: torch.Tensor
    counts: torch.Tensor
    perplexity: torch.Tensor


def perplexity_of(counts: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of a code histogram (K,): the effective number of codes in use."""
    p = counts.float() / counts.sum().clamp_min(1)
    return torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())


class EMAQuantizer(nn.Module):
    """Nearest-code quantizer whose codebook follows its assigned inputs by exponential moving averages.

    In training mode each call (1) initialises the codebook from random inputs on the first
    batch, (2) assigns every input vector to its nearest code, (3) moves each code's running count
    and running sum of assigned vectors by ``decay``, sets the code to sum / count, and (4) resets
    every *dead* code (running count below ``dead_threshold``) to a random input vector of the
    batch, with running count ``dead_threshold``. The codebook has no gradient; the encoder is
    pulled towards it by the commitment loss and receives the decoder's gradient through the
    straight-through estimator. In eval mode nothing changes.

    Parameters
    ----------
    codebook_size, code_dim : K codes of D channels.
    decay : EMA decay of counts and sums (0.99 in the paper).
    dead_threshold : running count below which a code is reset.
    """

    def __init__(self, codebook_size: int, code_dim: int, decay: float = 0.99, dead_threshold: float = 1.0):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        if dead_threshold <= 0.0:
            raise ValueError(f"dead_threshold must be positive, got {dead_threshold}")
        self.codebook_size = codebook_size
        self.code_dim = code_dim
        self.decay = decay
        self.dead_threshold = dead_threshold
        self.register_buffer("codebook", torch.zeros(codebook_size, code_dim))
        self.register_buffer("ema_count", torch.zeros(codebook_size))
        self.register_buffer("ema_sum", torch.zeros(codebook_size, code_dim))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        # Codes reset by the last training call (for logging).
        self.last_reset_count = 0

    def dead_codes(self) -> torch.Tensor:
        """(K,) bool: codes whose running count is below the reset threshold."""
        return self.ema_count < self.dead_threshold

    def nearest(self, vectors: torch.Tensor) -> torch.Tensor:
        """Indices (N,) of the nearest codes to ``vectors`` (N, D), squared Euclidean distance."""
        distances = (
            vectors.pow(2).sum(1, keepdim=True)
            - 2.0 * vectors @ self.codebook.T
            + self.codebook.pow(2).sum(1)[None, :]
        )
        return distances.argmin(dim=1)

    def forward(self, latent: torch.Tensor, generator: torch.Generator | None = None) -> QuantizerOutput:
        """Quantize encoder outputs (B, D, T); ``generator`` drives the random picks of training."""
        batch, dim, length = latent.shape
        if dim != self.code_dim:
            raise ValueError(f"latent: expected {self.code_dim} channels, got {dim}")
        flat = latent.permute(0, 2, 1).reshape(-1, dim)
        if self.training and not bool(self.initialised):
            self._initialise(flat.detach(), generator)
        indices = self.nearest(flat.detach())
        codes = self.codebook[indices]
        counts = torch.bincount(indices, minlength=self.codebook_size)
        if self.training:
            self._update(flat.detach(), indices, counts, generator)
        commit_loss = F.mse_loss(flat, codes.detach())
        straight_through = flat + (codes - flat).detach()
        quantized = straight_through.view(batch, length, dim).permute(0, 2, 1)
        return QuantizerOutput(
            quantized=quantized,
            indices=indices.view(batch, length),
            commit_loss=commit_loss,
            counts=counts,
            perplexity=perplexity_of(counts),
        )

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes (B, D, T) of indices (B, T)."""
        return self.codebook[indices].permute(0, 2, 1)

    def _random_rows(self, flat: torch.Tensor, count: int, generator: torch.Generator | None) -> torch.Tensor:
        picks = torch.randint(0, flat.shape[0], (count,), generator=generator, device="cpu")
        return flat[picks.to(flat.device)]

    @torch.no_grad()
    def _initialise(self, flat: torch.Tensor, generator: torch.Generator | None) -> None:
        rows = self._random_rows(flat, self.codebook_size, generator)
        self.codebook.copy_(rows)
        self.ema_sum.copy_(rows * self.dead_threshold)
        self.ema_count.fill_(self.dead_threshold)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _update(
        self,
        flat: torch.Tensor,
        indices: torch.Tensor,
        counts: torch.Tensor,
        generator: torch.Generator | None,
    ) -> None:
        sums = torch.zeros_like(self.ema_sum).index_add_(0, indices, flat)
        self.ema_count.mul_(self.decay).add_(counts.to(self.ema_count.dtype), alpha=1.0 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        dead = self.dead_codes()
        alive = ~dead
        self.codebook[alive] = self.ema_sum[alive] / self.ema_count[alive, None]
        self.last_reset_count = int(dead.sum())
        if self.last_reset_count:
            rows = self._random_rows(flat, self.last_reset_count, generator)
            self.codebook[dead] = rows
            self.ema_sum[dead] = rows * self.dead_threshold
            self.ema_count[dead] = self.dead_threshold


@dataclass
class VQVAEOutput:
    """Reconstruction of a pose batch and the quantizer's report.

    Attributes
    ----------
    pose6d : (B, J, 6) the decoded 6D rotations.
    indices : (B, T) long token ids.
    commit_loss, perplexity : scalars; counts (K,): see :class:`QuantizerOutput`.
    """

    pose6d: torch.Tensor
    indices: torch.Tensor
    commit_loss: torch.Tensor
    perplexity: torch.Tensor
    counts: torch.Tensor


class PoseVQVAE(nn.Module):
    """The pose tokenizer: (B, J, 6) 6D joint rotations <-> (B, T) tokens of a K x D codebook."""

    def __init__(self, config: TokenizerConfig, decay: float = 0.99, dead_threshold: float = 1.0):
        super().__init__()
        self.config = config
        self.encoder = PoseEncoder(config)
        self.quantizer = EMAQuantizer(config.codebook_size, config.code_dim, decay, dead_threshold)
        self.decoder = PoseDecoder(config)

    def _check_pose(self, pose6d: torch.Tensor) -> None:
        expected = (self.config.num_joints, SIX_D)
        if pose6d.ndim != 3 or tuple(pose6d.shape[1:]) != expected:
            raise ValueError(
                f"pose6d: expected shape (B, {expected[0]}, {expected[1]}), got {tuple(pose6d.shape)}"
            )

    def forward(self, pose6d: torch.Tensor, generator: torch.Generator | None = None) -> VQVAEOutput:
        """Encode, quantize and decode a pose batch (B, J, 6)."""
        self._check_pose(pose6d)
        latent = self.encoder(pose6d.transpose(1, 2))
        # Under autocast the encoder and decoder may run in bf16; the nearest-code search and the
        # EMA codebook update stay fp32 (bf16 would round codes together and break the EMA sums).
        with torch.autocast(latent.device.type, enabled=False):
            quantized = self.quantizer(latent.float(), generator)
        decoded = self.decoder(quantized.quantized).transpose(1, 2).float()
        return VQVAEOutput(
            pose6d=decoded,
            indices=quantized.indices,
            commit_loss=quantized.commit_loss,
            perplexity=quantized.perplexity,
            counts=quantized.counts,
        )

    @torch.no_grad()
    def encode(self, pose6d: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) of poses (B, J, 6)."""
        self._check_pose(pose6d)
        latent = self.encoder(pose6d.transpose(1, 2))
        flat = latent.permute(0, 2, 1).reshape(-1, self.config.code_dim)
        return self.quantizer.nearest(flat).view(pose6d.shape[0], -1)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Poses (B, J, 6) from token ids (B, T)."""
        if indices.ndim != 2 or indices.shape[1] != self.config.tokens:
            raise ValueError(f"indices: expected shape (B, {self.config.tokens}), got {tuple(indices.shape)}")
        return self.decoder(self.quantizer.lookup(indices)).transpose(1, 2)

    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """Poses (B, J, 6) from token vectors (B, T, D), e.g. a soft lookup ``softmax(logits) @ codebook``."""
        expected = (self.config.tokens, self.config.code_dim)
        if latent.ndim != 3 or tuple(latent.shape[1:]) != expected:
            raise ValueError(
                f"latent: expected shape (B, {expected[0]}, {expected[1]}), got {tuple(latent.shape)}"
            )
        return self.decoder(latent.transpose(1, 2)).transpose(1, 2)

    @property
    def codebook(self) -> torch.Tensor:
        """(K, D) the codes."""
        return self.quantizer.codebook
