"""Sections ``keypoints`` and ``ajahr`` of ``params.yaml``: the detector's and AJAHR's training stages.

Both have the tokenizer section's layout: ``profile``, ``shared`` settings and per-profile
overrides merged key by key over them (errors name ``<section>.profiles.<p>.<key>`` or
``<section>.shared.<key>``)::

    ajahr:
      profile: cpu            # cpu (2 cores, minutes) | gpu (one H100, minutes) | paper (2 GPUs)
      shared: {loss: {...}, augmentation: {...}, train: {...}}
      profiles: {cpu: {model: {...}, train: {...}}, gpu: {...}, paper: {...}}
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError, model_validator

from ajahr_model.data.a3d import Augmentation
from ajahr_model.networks.keypoints import DetectorConfig
from ajahr_model.networks.regressor import RegressorConfig
from ajahr_model.tokenizer.params import _profile_errors, merge
from ajahr_model.training.losses import LossWeights

ProfileName = Literal["cpu", "gpu", "paper"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageAugmentationSettings(_Section):
    """Brief §4.3: scale +-0.3, rotation +-30 deg (p 0.6), translation 0.02, colour 0.2; no flip.
    The keypoint detector's (its keypoint input is the prior's, never the ground truth)."""

    scale: float = Field(0.3, ge=0.0, lt=1.0)
    rotation_deg: float = Field(30.0, ge=0.0, le=180.0)
    rotation_p: float = Field(0.6, ge=0.0, le=1.0)
    translation: float = Field(0.02, ge=0.0, le=0.5)
    colour: float = Field(0.2, ge=0.0, lt=1.0)
    enabled: bool = True

    def augmentation(self) -> Augmentation | None:
        if not self.enabled:
            return None
        return Augmentation(self.scale, self.rotation_deg, self.rotation_p, self.translation, self.colour)


class AugmentationSettings(ImageAugmentationSettings):
    """AJAHR's: the image's, and ``keypoint_noise``, the std of the noise on BPAC-Net's
    ground-truth keypoints (brief §4.3: 0.01), a fraction of the crop."""

    keypoint_noise: float = Field(0.01, ge=0.0, le=0.5)


class OptimSettings(_Section):
    """AdamW; the rate warms up linearly over ``warmup_steps``, then follows a half cosine down to
    ``lr * final_fraction`` (``schedule: cosine``) or stays (``constant``, the paper's)."""

    lr: float = Field(5e-6, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    final_fraction: float = Field(0.05, ge=0.0, le=1.0)
    grad_clip: float | None = Field(1.0, gt=0.0)
    # BPAC-Net's own rate (null: lr), with the same schedule; used by train_ajahr only.
    bpac_lr: float | None = Field(None, gt=0.0)


class RunSettings(_Section):
    """How a run is executed and checkpointed.

    precision: Lightning Fabric precision ("32-true", "bf16-mixed", "16-mixed").
    devices: processes, one per GPU, DDP between them when > 1 (with ``accelerator: cpu``, that
    many CPU processes over gloo: how the DDP path is tested on machines without a GPU).
    max_corrupt_fraction: the run fails once more than this share of the split's samples turned
    out undecodable (each is skipped and counted).
    """

    batch_size: int = Field(64, ge=2)
    steps: int = Field(150_000, ge=1)
    amputee_fraction: float = Field(0.5, ge=0.0, le=1.0)
    seed: int = 0
    accelerator: Literal["auto", "cpu", "cuda"] = "auto"
    devices: int = Field(1, ge=1)
    precision: Literal["32-true", "bf16-mixed", "16-mixed"] = "32-true"
    compile: bool = False
    num_workers: int = Field(2, ge=0)
    checkpoint_every: int = Field(5000, ge=1)
    log_every: int = Field(100, ge=1)
    max_corrupt_fraction: float = Field(0.01, ge=0.0, le=1.0)
    eval_batch_size: int = Field(64, ge=1)
    # Test samples per part evaluated at the end of the stage (null: the whole split).
    eval_limit: int | None = Field(None, ge=1)


class DetectorModelSettings(_Section):
    backbone: str = "resnet18"
    input_size: int = Field(256, ge=32)
    heatmap_sigma: float = Field(2.0, gt=0.0)
    confidence_threshold: float = Field(0.55, ge=0.0, le=1.0)
    # Read the keypoint prior (stage keypoint_prior) besides the image: networks.keypoints.
    prior_input: bool = False
    # Joint states also read the prior's whole skeleton (bone lengths, layout); needs prior_input.
    skeleton_context: bool = False

    @model_validator(mode="after")
    def _valid_config(self) -> DetectorModelSettings:
        self.config()  # DetectorConfig checks its combinations (skeleton_context needs prior_input)
        return self

    def config(self) -> DetectorConfig:
        return DetectorConfig(**self.model_dump())


class DetectorSettings(_Section):
    model: DetectorModelSettings = DetectorModelSettings()
    augmentation: ImageAugmentationSettings = ImageAugmentationSettings()
    optim: OptimSettings = OptimSettings(lr=1e-3, weight_decay=1e-4, schedule="cosine", warmup_steps=100)
    train: RunSettings = RunSettings(batch_size=64, steps=30_000)
    state_weight: float = Field(1.0, ge=0.0)
    # Weight of the absent class in the state loss: absent joints are ~4% of a half-amputee batch,
    # and unweighted the detector learned never to say "absent" (absent recall 0 after 200 steps).
    absent_weight: float = Field(8.0, ge=0.0)


class ModelSettings(_Section):
    """Network shapes; see :class:`ajahr_model.networks.regressor.RegressorConfig`."""

    backbone: str = "vit_huge_patch14_224"
    patch_size: int = Field(16, ge=1)
    image_height: int = Field(256, ge=16)
    image_width: int = Field(192, ge=16)
    drop_path: float = Field(0.0, ge=0.0, lt=1.0)
    decoder_depth: int = Field(6, ge=1)
    decoder_dim: int = Field(1024, ge=8)
    decoder_heads: int = Field(8, ge=1)
    decoder_head_dim: int = Field(64, ge=1)
    decoder_mlp_dim: int = Field(1024, ge=8)
    second_cross_attention: bool = True
    # tokens: token classifier + frozen tokenizers; direct: 21 x 6D regressed (the HMR2-style baseline).
    pose_head: Literal["tokens", "direct"] = "tokens"
    # False: no BPAC-Net, so no h_token and no amputation verdict (the baselines).
    use_bpac: bool = True
    # Ours: a keypoint-coordinate token beside h_token (see RegressorConfig); off in every profile.
    keypoint_token: bool = False
    # Ours: the decoder's query starts from an embedding of the 2D keypoints (see RegressorConfig;
    # on in the cpu profile).
    keypoint_query: bool = False
    mixer_dim: int = Field(256, ge=4)
    mixer_depth: int = Field(2, ge=1)
    # Ours: the token logits start on the rest pose's tokens at this logit (see RegressorConfig).
    rest_pose_token_logit: float = Field(0.0, ge=0.0)
    # Ours: the global orientation from regressed root-attached joints (see RegressorConfig).
    root_from_joints: bool = False
    # Ours: the camera translation fitted to the located keypoints (see RegressorConfig).
    camera_fit: bool = False
    bpac_input_size: int = Field(256, ge=32)
    bpac_heatmap_sigma: float = Field(2.0, gt=0.0)

    def config(self) -> RegressorConfig:
        return RegressorConfig(**self.model_dump())


class LossSettings(_Section):
    """Brief §4.3 (TokenHMR's published weights); ``bpac`` (lambda_cls) is unpublished: ours."""

    global_orient: float = Field(0.001, ge=0.0)
    body_pose: float = Field(0.001, ge=0.0)
    betas: float = Field(0.0005, ge=0.0)
    keypoints3d: float = Field(0.05, ge=0.0)
    keypoints2d: float = Field(0.01, ge=0.0)
    bpac: float = Field(0.1, ge=0.0)
    # Ours: L1 of the regressed joints of model.root_from_joints (0 without it).
    joints_direct: float = Field(0.0, ge=0.0)
    tals: bool = False
    # One threshold for every joint, or one per joint: 24 SMPL joints (metres), 17 COCO keypoints.
    tals_threshold_3d: PositiveFloat | tuple[PositiveFloat, ...] = 0.05
    tals_threshold_2d: PositiveFloat | tuple[PositiveFloat, ...] = 0.02
    tals_factor: float = Field(0.05, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _per_joint_lengths(self) -> LossSettings:
        for name, joints in (("tals_threshold_3d", 24), ("tals_threshold_2d", 17)):
            value = getattr(self, name)
            if isinstance(value, tuple) and len(value) != joints:
                raise ValueError(f"{name}: {len(value)} thresholds, expected one number or {joints}")
        return self

    def weights(self) -> LossWeights:
        return LossWeights(**self.model_dump())


class FinetuneSettings(_Section):
    """``full`` trains everything; ``partial`` the paper's best variant (last ``vit_blocks`` ViT
    blocks, patch/position embeddings, last ``decoder_layers`` decoder layers, heads, BPAC-Net)."""

    mode: Literal["full", "partial"] = "full"
    vit_blocks: int = Field(4, ge=0)
    decoder_layers: int = Field(2, ge=0)


class AJAHRSettings(_Section):
    model: ModelSettings = ModelSettings()
    loss: LossSettings = LossSettings()
    augmentation: AugmentationSettings = AugmentationSettings()
    optim: OptimSettings = OptimSettings()
    train: RunSettings = RunSettings()
    finetune: FinetuneSettings = FinetuneSettings()
    # The frozen tokenizers the token head decodes with (none for the direct head). With both,
    # the amputee one decodes bodies called amputee; with one, it decodes every body.
    tokenizers: tuple[Literal["non_amputee", "amputee"], ...] = ("non_amputee", "amputee")
    # Which label picks the tokenizer and the zeroed joints in training: the ground truth (default;
    # BPAC-Net is still trained by its loss) or BPAC-Net's prediction.
    train_switching: Literal["ground_truth", "predicted"] = "ground_truth"
    # The 2D keypoints BPAC-Net sees in training: the ground truth with a little noise (the paper's
    # setting, for a detector as good as ViTPose), or those of our trained detector, the ones it
    # gets at test time. With the ground truth an absent keypoint is exactly an amputated joint,
    # a shortcut that does not survive a detector's misses and false absents.
    bpac_keypoints: Literal["ground_truth", "detector"] = "ground_truth"
    # The 2D keypoints the keypoint query (model.keypoint_query) reads in training: the trained
    # detector's on the augmented crop (default: what it reads at test, misses and left/right
    # swaps included), or the ground truth with the augmentation's keypoint noise.
    query_keypoints: Literal["ground_truth", "detector"] = "detector"
    # A user's ImageNet ResNet-34 weights for BPAC-Net (path relative to params.yaml); none here.
    bpac_imagenet_weights: str | None = None
    # Weights the model starts from (path relative to params.yaml): a finished checkpoint of
    # this stage (the whole model, e.g. a gpu-profile run to fine-tune further), or a ViT state
    # dict for the backbone (timm names, or prefixed "backbone." as in ViTPose and HMR2.0
    # checkpoints). finetune.mode: partial needs them: it freezes most of the network, which
    # from scratch would stay at its random initialisation. None can be downloaded here.
    init_weights: str | None = None
    # The stage's "it learned" check, reported under ``checks`` in metrics.json (a warning, not a
    # failure: the trained model is kept): pelvis-aligned MPJPE under this share of the mean-pose
    # predictor's on the test split, and BPAC-Net's balanced class accuracy (mean recall of the
    # 12 amputation classes and "intact", amputees and non-amputees) over this multiple of
    # chance (1/13), with the detector's keypoints.
    max_mpjpe_ratio_to_mean_pose: float = Field(0.9, gt=0.0)
    min_bpac_accuracy_over_chance: float = Field(1.5, gt=0.0)

    @model_validator(mode="after")
    def _consistent(self) -> AJAHRSettings:
        if self.model.pose_head == "direct" and self.tokenizers:
            raise ValueError(
                "tokenizers: the direct pose head (model.pose_head) uses none; set tokenizers: []"
            )
        if self.model.pose_head == "tokens" and not self.tokenizers:
            raise ValueError("tokenizers: the token pose head needs at least one tokenizer")
        if len(set(self.tokenizers)) != len(self.tokenizers):
            raise ValueError(f"tokenizers: {list(self.tokenizers)} names one twice")
        if not self.model.use_bpac and self.train_switching == "predicted":
            raise ValueError("train_switching: 'predicted' needs BPAC-Net (model.use_bpac)")
        return self


CPU_DETECTOR: dict[str, Any] = {
    # prior_input: BlazePose's keypoints beside the image (stage keypoint_prior). From scratch in
    # 200 steps the detector alone reached PCK@0.05 0.16 and swapped left and right in 39% of
    # the pairs; with the prior, 0.60 (the prior alone: 0.85). skeleton_context and the threshold:
    # see params.yaml and packages/ajahr-model/README.md.
    "model": {
        "input_size": 96,
        "heatmap_sigma": 1.0,
        "prior_input": True,
        "skeleton_context": True,
        "confidence_threshold": 0.4,
    },
    "optim": {"lr": 2e-3, "warmup_steps": 20},
    "train": {
        "batch_size": 32,
        "steps": 400,
        "accelerator": "cpu",
        "precision": "bf16-mixed",
        "num_workers": 1,
        "checkpoint_every": 100,
        "log_every": 20,
        "eval_limit": 200,
    },
}
GPU_DETECTOR: dict[str, Any] = {
    "train": {"accelerator": "cuda", "precision": "bf16-mixed", "steps": 20_000, "num_workers": 8},
}

CPU_AJAHR: dict[str, Any] = {
    "model": {
        "backbone": "vit_tiny_patch16_224",
        "image_height": 128,
        "image_width": 96,
        "decoder_depth": 2,
        "decoder_dim": 256,
        "decoder_heads": 4,
        "decoder_head_dim": 32,
        "decoder_mlp_dim": 512,
        "mixer_dim": 64,
        "bpac_input_size": 64,
        # sigma 2 input pixels, the paper's figure, at 64: BPAC-Net alone (true keypoints, 240
        # steps) learned the amputation class on 99% of test amputees, against 43% at sigma 1.
        "bpac_heatmap_sigma": 2.0,
        # The lifting path that lets 240 steps learn the orientation (README, "What the cpu
        # profile learns"): the query from the detector's located keypoints, the orientation
        # from regressed root joints, the token logits starting on the rest pose.
        "keypoint_query": True,
        "root_from_joints": True,
        "rest_pose_token_logit": 6.0,
        # The camera fitted to the located keypoints at inference: in 200 steps the camera head
        # placed the body no better than the mean position (README, "Placement and articulation").
        "camera_fit": True,
    },
    # With these and sigma 2, BPAC-Net's amputation class (true keypoints) reaches 11.5x chance
    # in 240 steps; see packages/ajahr-model/README.md.
    "loss": {"global_orient": 0.01, "bpac": 0.02, "joints_direct": 0.05},
    # lr 5e-4 (1e-3 left the orientation noisier: MPJPE ratio 0.91 vs 0.87); BPAC-Net keeps
    # 1e-3 (at sigma 1 its amputation class learned at 1e-3, 4.7x chance, and not at 5e-4, 0.4x).
    "optim": {"lr": 5e-4, "bpac_lr": 1e-3, "schedule": "cosine", "warmup_steps": 30},
    # No in-plane rotation and less scaling: in 240 steps the lifting learns more from keypoints
    # that keep their usual layout (MPJPE ratio 0.877 / 0.892 against 0.895 / 0.902).
    "augmentation": {"rotation_p": 0.0, "scale": 0.1},
    "train": {
        "batch_size": 16,
        # 200, not 320 or 240: at 320 a fresh make run took 29-31 min on 2 cores, at 240 31.6 min
        # on a slower 2-core machine (0.64x the step rate); the models sat at the mean-skeleton
        # floor either way.
        "steps": 200,
        "accelerator": "cpu",
        "precision": "bf16-mixed",
        "num_workers": 1,
        "checkpoint_every": 100,
        "log_every": 10,
        "eval_batch_size": 50,
        # The whole test split (1,300 crops, ~35 s a model): with 100 per part the MPJPE ratio
        # moved by about 0.03 between evaluations of one model.
        "eval_limit": None,
    },
}
GPU_AJAHR: dict[str, Any] = {
    "model": {
        "backbone": "vit_base_patch16_224",
        "decoder_dim": 512,
        "decoder_mlp_dim": 1024,
        "decoder_depth": 6,
    },
    "optim": {"lr": 1e-4, "schedule": "cosine", "warmup_steps": 500},
    "train": {
        "batch_size": 64,
        "steps": 20_000,
        "accelerator": "cuda",
        "precision": "bf16-mixed",
        "compile": True,
        "num_workers": 12,
        "checkpoint_every": 2000,
    },
}
PAPER_AJAHR: dict[str, Any] = {
    "optim": {"lr": 5e-6},
    "finetune": {"mode": "partial"},
    "train": {
        "batch_size": 64,
        "steps": 150_000,
        "accelerator": "cuda",
        "devices": 2,
        "precision": "bf16-mixed",
        "compile": True,
        "num_workers": 12,
    },
}


# The models of the evaluation (brief §5): variants of one training code, each a partial override
# merged over the profile's settings. Baselines have no BPAC-Net; ablations change one part.
VARIANTS: dict[str, dict[str, Any]] = {
    "ajahr": {},
    # HMR2-style: direct 6D regression of the body pose; no tokenizer, no classifier.
    "hmr2": {"model": {"pose_head": "direct", "use_bpac": False}, "tokenizers": []},
    # TokenHMR-style: one (non-amputee) tokenizer, no classifier.
    "tokenhmr": {"model": {"use_bpac": False}, "tokenizers": ["non_amputee"]},
    # Ablations of AJAHR: the amputee tokenizer alone; no second cross-attention to h_token.
    "single_amputee_tokenizer": {"tokenizers": ["amputee"]},
    "no_second_cross_attention": {"model": {"second_cross_attention": False}},
}
# The variants `dvc repro` trains (stage train_model's foreach); the ablations fit the GPU profiles.
TRAINED_VARIANTS: list[str] = ["ajahr", "hmr2", "tokenhmr"]


class _ProfiledSection(_Section):
    """``profile`` + ``shared`` + ``profiles``, every profile validated when the section loads."""

    profile: ProfileName = "cpu"
    shared: dict[str, Any] = {}
    profiles: dict[str, dict[str, Any]] = {}

    _settings_type: ClassVar[Any] = None

    @model_validator(mode="after")
    def _profiles_valid(self):  # noqa: ANN202 - pydantic validator
        try:
            self._settings_type.model_validate(self.shared)
        except ValidationError as err:
            raise ValueError(_profile_errors(None, {}, err)) from None
        if self.profile not in self.profiles:
            raise ValueError(
                f"profile {self.profile!r} has no entry under profiles (have {sorted(self.profiles)})"
            )
        for name in self.profiles:
            self._resolve(name)
        return self

    def settings(self, profile: str | None = None) -> Any:
        """The merged settings of ``profile`` (the section's ``profile`` by default)."""
        return self._resolve(profile or self.profile)

    def _resolve(self, profile: str):  # noqa: ANN202
        override = self.profiles[profile] or {}
        try:
            return self._settings_type.model_validate(merge(self.shared, override))
        except ValidationError as err:
            raise ValueError(_profile_errors(profile, override, err)) from None


class KeypointsSection(_ProfiledSection):
    """Section ``keypoints``: the 2D keypoint detector's training."""

    _settings_type: ClassVar[Any] = DetectorSettings
    # The defaults in full, so that a profile's partial override of a mapping (optim, train)
    # keeps the detector's own defaults for the keys it does not name.
    shared: dict[str, Any] = Field(default_factory=lambda: DetectorSettings().model_dump(mode="json"))
    profiles: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {
            "cpu": copy.deepcopy(CPU_DETECTOR),
            "gpu": copy.deepcopy(GPU_DETECTOR),
            "paper": copy.deepcopy(GPU_DETECTOR),
        }
    )


class AJAHRSection(_ProfiledSection):
    """Section ``ajahr``: BPAC-Net and the mesh regressor, trained jointly; and the baselines and
    ablations, as ``variants`` merged over the profile (``settings(variant=...)``)."""

    _settings_type: ClassVar[Any] = AJAHRSettings
    shared: dict[str, Any] = Field(default_factory=lambda: AJAHRSettings().model_dump(mode="json"))
    profiles: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {
            "cpu": copy.deepcopy(CPU_AJAHR),
            "gpu": copy.deepcopy(GPU_AJAHR),
            "paper": copy.deepcopy(PAPER_AJAHR),
        }
    )
    variants: dict[str, dict[str, Any]] = Field(default_factory=lambda: copy.deepcopy(VARIANTS))
    trained_variants: list[str] = Field(default_factory=lambda: list(TRAINED_VARIANTS))

    @model_validator(mode="after")
    def _variants_valid(self) -> AJAHRSection:
        if "ajahr" not in self.variants:
            raise ValueError("variants: the 'ajahr' entry is missing")
        unknown = [v for v in self.trained_variants if v not in self.variants]
        if unknown:
            raise ValueError(
                f"trained_variants: {unknown} are not under variants (have {sorted(self.variants)})"
            )
        for name in self.variants:
            for profile in self.profiles:
                self.settings(profile, name)
        return self

    def settings(self, profile: str | None = None, variant: str = "ajahr") -> AJAHRSettings:
        """The settings of ``variant`` under ``profile`` (the section's ``profile`` by default)."""
        profile = profile or self.profile
        if variant not in self.variants:
            raise ValueError(
                f"variant {variant!r} is not under ajahr.variants (have {sorted(self.variants)})"
            )
        override = merge(self.profiles[profile] or {}, self.variants[variant] or {})
        try:
            return AJAHRSettings.model_validate(merge(self.shared, override))
        except ValidationError as err:
            message = _profile_errors(profile, override, err)
            raise ValueError(f"variant {variant!r}: {message}") from None
