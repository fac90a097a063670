"""Section ``tokenizer`` of ``params.yaml``: the pose tokenizers' stage, validated by pydantic.

The section holds the settings both tokenizers share under ``shared`` (the paper's values),
``profile: cpu | gpu`` with per-profile overrides (merged key by key over ``shared``), and
per-tokenizer settings under ``non_amputee`` and ``amputee``::

    tokenizer:
      profile: cpu
      shared: {model: {tokens: 320, ...}, optim: {...}, ...}
      profiles:
        cpu: {model: {tokens: 80, ...}, train: {steps: 3000, ...}}
        gpu: {}
      non_amputee: {amputee_fraction: 0.0, seed: 1}
      amputee: {amputee_fraction: 0.5, seed: 2}

Every profile is merged and validated when the section loads, so a typo in the profile not in
use is found too; an error names ``tokenizer.profiles.<profile>.<key>`` or
``tokenizer.shared.<key>``.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from a3d_data.poses import PoseParams
from ajahr_model.tokenizer.losses import LossWeights
from ajahr_model.tokenizer.vqvae import TokenizerConfig, TokenizerConfigError

TOKENIZER_NAMES: tuple[str, ...] = ("non_amputee", "amputee")
ProfileName = Literal["cpu", "gpu"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSettings(_Section):
    """Network shapes (brief §4.1; paper: 320 tokens, 2048 x 256 codebook, width 512)."""

    tokens: int = Field(320, ge=1)
    codebook_size: int = Field(2048, ge=2)
    code_dim: int = Field(256, ge=1)
    width: int = Field(512, ge=1)
    down_t: int = Field(1, ge=0, le=6)
    depth: int = Field(2, ge=1, le=8)
    dilation_growth: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _buildable(self) -> ModelSettings:
        try:
            self.config()
        except TokenizerConfigError as err:
            raise ValueError(str(err).removeprefix("tokenizer config: ")) from None
        return self

    def config(self) -> TokenizerConfig:
        return TokenizerConfig(**self.model_dump())


class QuantizerSettings(_Section):
    """EMA codebook: decay of the running averages, and the running count under which a code is dead."""

    decay: float = Field(0.99, ge=0.0, lt=1.0)
    dead_code_threshold: float = Field(1.0, gt=0.0)


class LossSettings(_Section):
    """Loss weights (paper: 20 rotmat, 100 vertices, 100 joints, 1 commit; ``sixd`` is ours, see losses).

    ``vertex_subset``: vertices skinned per training step for the vertex term, drawn once at
    random (area weights renormalised over them); null for all. Metrics always use all vertices.
    """

    rotmat: float = Field(20.0, ge=0.0)
    vertices: float = Field(100.0, ge=0.0)
    joints: float = Field(100.0, ge=0.0)
    commit: float = Field(1.0, ge=0.0)
    sixd: float = Field(20.0, ge=0.0)
    vertex_subset: int | None = Field(None, ge=1)

    def weights(self) -> LossWeights:
        return LossWeights(self.rotmat, self.vertices, self.joints, self.commit, self.sixd)


class NoiseSettings(_Section):
    """Input noise on one random body part in ``fraction`` of each batch; its amplitude (std, 6D
    units) ramps linearly from ``start`` to ``end`` over the first ``ramp_fraction`` of the steps
    (paper: 0.01 -> 0.5 over ~30k of 200k steps)."""

    fraction: float = Field(0.5, ge=0.0, le=1.0)
    start: float = Field(0.01, ge=0.0)
    end: float = Field(0.5, ge=0.0)
    ramp_fraction: float = Field(0.15, ge=0.0, le=1.0)


class OptimSettings(_Section):
    """AdamW and its learning-rate schedule.

    ``schedule: multistep`` (the paper's): the rate is multiplied by ``gamma`` at each of the
    ``milestones`` (step numbers). ``cosine``: it falls from ``lr`` to ``lr * gamma`` along a half
    cosine over the whole run (milestones unused).
    """

    schedule: Literal["multistep", "cosine"] = "multistep"

    lr: float = Field(2e-4, gt=0.0)
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = Field(1e-5, ge=0.0)
    milestones: list[int] = [150_000, 190_000]
    gamma: float = Field(0.05, gt=0.0, le=1.0)

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, milestones: list[int]) -> list[int]:
        if any(b <= a for a, b in zip(milestones, milestones[1:], strict=False)) or any(
            m < 1 for m in milestones
        ):
            raise ValueError(f"milestones must be positive and increasing, got {milestones}")
        return milestones


class TrainSettings(_Section):
    """Length and bookkeeping of a run (counts are optimisation steps)."""

    batch_size: int = Field(256, ge=2)
    steps: int = Field(200_000, ge=1)
    chunk_batches: int = Field(16, ge=1)  # batches drawn per call of the pose sampler
    # Draw the next chunk of poses in a background thread (same batches; only the speed differs).
    prefetch: bool = True
    log_every: int = Field(100, ge=1)
    eval_every: int = Field(5000, ge=1)
    checkpoint_every: int = Field(5000, ge=1)
    # bf16-mixed: the encoder and decoder under bf16 autocast (the codebook stays fp32; held-out
    # metrics are computed in fp32). On a CPU with AVX512-BF16 / AMX it makes a step 1.3-1.7x faster.
    precision: Literal["32-true", "bf16-mixed"] = "32-true"


class ValidationSettings(_Section):
    """The held-out poses: a fixed set drawn with its own seed, the same for both tokenizers."""

    seed: int = 1_000_003
    normal: int = Field(2000, ge=1)
    amputee: int = Field(2000, ge=1)
    batch_size: int = Field(500, ge=1)


class TokenizerSettings(_Section):
    """The resolved settings of one profile (shared settings with the profile's overrides)."""

    model: ModelSettings = ModelSettings()
    quantizer: QuantizerSettings = QuantizerSettings()
    loss: LossSettings = LossSettings()
    noise: NoiseSettings = NoiseSettings()
    optim: OptimSettings = OptimSettings()
    train: TrainSettings = TrainSettings()
    validation: ValidationSettings = ValidationSettings()
    poses: PoseParams = PoseParams()
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _consistent(self) -> TokenizerSettings:
        if self.poses.source != "procedural":
            raise ValueError(
                f"poses.source: the tokenizers draw procedural poses (got {self.poses.source!r})"
            )
        late = [m for m in self.optim.milestones if m >= self.train.steps]
        if late:
            raise ValueError(f"optim.milestones {late} are not before train.steps ({self.train.steps})")
        return self


class TokenizerRole(_Section):
    """What one tokenizer is trained on: the amputee share of each batch, and its seed."""

    amputee_fraction: float = Field(ge=0.0, le=1.0)
    seed: int


# The cpu profile: a small tokenizer that trains in minutes on two cores. Its noise ends at 0.1,
# not the paper's 0.5: in a run this short the full noise costs ~10 mm of held-out MPJPE. The
# learning rate drops late: most of the gain of a drop comes in its first hundred steps.
CPU_PROFILE: dict[str, Any] = {
    "model": {"tokens": 80, "codebook_size": 1024, "code_dim": 8, "width": 96},
    "loss": {"vertex_subset": 1024},
    "noise": {"end": 0.1},
    "optim": {"lr": 2e-3, "milestones": [1260, 1410]},
    # No prefetch thread: on two cores no core is idle to draw poses on (it ran 30% slower).
    "train": {
        "batch_size": 64,
        # 1500, not 4000 (held-out 9.4 / 9.6 mm), 2500 (12 mm) or 2000 (11.7 / 13.0 mm): the
        # keypoint_prior stage and the lifting path of the detector and AJAHR took the minutes of
        # make run, which took 31.6 min at 2500 and 30.6 min at 2000 on a slower 2-core machine.
        "steps": 1500,
        "prefetch": False,
        "log_every": 25,
        "eval_every": 1000,
        "checkpoint_every": 500,
        # bf16 autocast: 1.4x faster here, held-out 9.29 / 9.33 mm (fp32: 9.99 / 9.19 mm).
        "precision": "bf16-mixed",
    },
    "validation": {"normal": 500, "amputee": 500, "batch_size": 250},
    "device": "cpu",
}
# The gpu profile: the shared settings are the paper's scale (320 tokens, 2048 x 256 codebook,
# batch 256, 200k steps, every vertex in the loss).
GPU_PROFILE: dict[str, Any] = {"device": "cuda"}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in, mapping by mapping (lists and values replace)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _profile_errors(profile: str | None, override: dict[str, Any], err: ValidationError) -> str:
    """One line per problem, naming the key where the person wrote it: under
    ``profiles.<profile>`` when the profile sets it, else under ``shared``. A problem of the
    merged settings as a whole (no key) names the profile."""
    problems = []
    for item in err.errors():
        loc = [str(part) for part in item["loc"]]
        node: Any = override
        for part in loc:
            node = node.get(part) if isinstance(node, dict) else None
        if not loc:
            where = f"profiles.{profile}: " if profile is not None else "shared: "
        elif profile is not None and node is not None:
            where = f"profiles.{profile}.{'.'.join(loc)}: "
        else:
            where = f"shared.{'.'.join(loc)}: "
        shown = "" if item["type"] == "missing" else f" (got {item.get('input')!r})"
        problems.append(f"{where}{item['msg']}{shown}")
    return "; ".join(problems)


class TokenizerSection(_Section):
    """Section ``tokenizer``: shared settings, profiles, and the two tokenizers.

    Attributes
    ----------
    profile : which profile's overrides apply (``cpu`` by default).
    shared : settings of every profile (the keys of :class:`TokenizerSettings`).
    profiles : per-profile overrides, merged over ``shared``.
    non_amputee, amputee : the two tokenizers.
    """

    profile: ProfileName = "cpu"
    shared: dict[str, Any] = {}
    profiles: dict[ProfileName, dict[str, Any]] = Field(
        default_factory=lambda: {"cpu": copy.deepcopy(CPU_PROFILE), "gpu": copy.deepcopy(GPU_PROFILE)}
    )
    non_amputee: TokenizerRole = TokenizerRole(amputee_fraction=0.0, seed=1)
    amputee: TokenizerRole = TokenizerRole(amputee_fraction=0.5, seed=2)

    @model_validator(mode="after")
    def _profiles_valid(self) -> TokenizerSection:
        try:
            TokenizerSettings.model_validate(self.shared)
        except ValidationError as err:
            raise ValueError(_profile_errors(None, {}, err)) from None
        if self.profile not in self.profiles:
            raise ValueError(
                f"profile {self.profile!r} has no entry under profiles (have {sorted(self.profiles)})"
            )
        for name in self.profiles:
            self._resolve(name)
        return self

    def _resolve(self, profile: str) -> TokenizerSettings:
        override = self.profiles[profile] or {}
        try:
            return TokenizerSettings.model_validate(merge(self.shared, override))
        except ValidationError as err:
            raise ValueError(_profile_errors(profile, override, err)) from None

    def settings(self, profile: str | None = None) -> TokenizerSettings:
        """The settings of ``profile`` (the section's ``profile`` by default)."""
        return self._resolve(profile or self.profile)

    def role(self, name: str) -> TokenizerRole:
        """The settings of tokenizer ``name`` (``non_amputee`` or ``amputee``)."""
        if name not in TOKENIZER_NAMES:
            raise ValueError(f"unknown tokenizer {name!r}; expected one of {list(TOKENIZER_NAMES)}")
        return getattr(self, name)
