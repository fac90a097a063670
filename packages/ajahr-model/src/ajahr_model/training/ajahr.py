"""Training and test-split evaluation of AJAHR (BPAC-Net + the mesh regressor) and its variants.

Stage ``train_model@<variant>`` calls :func:`train_ajahr`, which writes ``checkpoint.pt`` (the
whole training state; resumable) and ``loss_curve.png`` in its output folder, ``metrics.json``
and ``predictions.npz`` in its evaluation folder. The detector's stage: ``training.detector``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from a3d_data.atomic import atomic_path
from a3d_data.body_model.model import BodyModel
from a3d_data.synthesis.shards import file_sha256
from ajahr_model.data.a3d import (
    SAMPLE_ERRORS,
    A3DDataset,
    index_samples,
    training_data_fingerprint,
)
from ajahr_model.evaluation.evaluate import TEST_PARTS, evaluate_model
from ajahr_model.networks.bpac import WeightsFileError, load_imagenet_weights
from ajahr_model.networks.keypoints import detect_batch
from ajahr_model.networks.regressor import AJAHR
from ajahr_model.tokenizer.checkpoint import load_tokenizer
from ajahr_model.tokenizer.rotation6d import matrix_to_rotation_6d
from ajahr_model.training.common import (
    DATA_CODE,
    SHARED_CODE,
    TRAIN_PARTS,
    load_prior,
    read_training_fp,
    weights_fingerprint,
    write_json,
)
from ajahr_model.training.detector import load_detector
from ajahr_model.training.figure import plot_history
from ajahr_model.training.loop import FitResult, fit, make_fabric, read_training_checkpoint
from ajahr_model.training.losses import ajahr_loss
from ajahr_model.training.params import AJAHRSettings

log = logging.getLogger(__name__)

AJAHR_CODE = (
    *SHARED_CODE,
    "training/ajahr.py",
    "networks/regressor.py",
    "training/losses.py",
    *DATA_CODE,
    "a3d_data/amputation",
)


def _file_digest(path: Path | None) -> str | None:
    return None if path is None else file_sha256(path)[:16]


def load_init_weights(model: AJAHR, path: Path) -> list[str]:
    """Start ``model`` from the weights in ``path`` (``ajahr.init_weights``): a finished
    checkpoint of this stage, or a backbone state dict (timm ViT names, bare or under
    ``backbone.``; a ``state_dict`` or ``model`` entry is unwrapped). Tensors load where name and
    shape match; the frozen tokenizers and the body model keep their own (their stages made
    them). Returns the trained parameters left at their initialisation.

    Raises WeightsFileError (naming the file and the fields) when the file is unreadable, when
    nothing in it fits, or when a tensor of a matching name has another shape."""
    import pickle

    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # Our own checkpoints keep random states and settings beside the weights; a file that
        # needs classes this environment lacks (an HMR2.0 Lightning file's hyper-parameters)
        # fails below with its name.
        try:
            raw = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # noqa: BLE001 - any failure to unpickle is the file's
            raise WeightsFileError(
                f"{path}: cannot read initial weights ({type(err).__name__}: {err})"
            ) from err
    except Exception as err:  # noqa: BLE001
        raise WeightsFileError(f"{path}: cannot read initial weights ({type(err).__name__}: {err})") from err
    state = raw
    if isinstance(state, dict) and "kind" in state:
        if state["kind"] != "ajahr" or not state.get("complete"):
            raise WeightsFileError(
                f"{path}: field 'kind' is {state['kind']!r}, complete {state.get('complete')}: "
                "expected a finished train_ajahr checkpoint or a state dict"
            )
        state = state.get("model")
    elif isinstance(state, dict):
        for entry in ("state_dict", "model"):
            if isinstance(state.get(entry), dict):
                state = state[entry]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsFileError(f"{path}: expected a state dict of tensors or a train_ajahr checkpoint")
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(("tokenizers.", "body_model."))}
    # Names under "backbone." are the whole model's (ours, ViTPose's, HMR2.0's); a file without
    # any is a bare backbone (timm), whose "norm" is the ViT's, not the decoder's.
    whole_model = any(name.startswith("backbone.") for name in state)
    mapped = {}
    for name, tensor in state.items():
        target = name if whole_model else f"backbone.{name}"
        if target in own:
            mapped[target] = tensor
    wrong = sorted(k for k, v in mapped.items() if v.shape != own[k].shape)
    if wrong:
        details = ", ".join(f"{k} {tuple(mapped[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:3])
        raise WeightsFileError(
            f"{path}: fields {wrong[:5]} do not fit this model's shapes ({details}): another backbone, "
            "image size or patch size than model.backbone / image_height / image_width / patch_size"
        )
    if not mapped:
        raise WeightsFileError(f"{path}: no tensor fits this model (first names: {list(state)[:5]})")
    model.load_state_dict(mapped, strict=False)
    trained = {name for name, _ in model.trainable_named_parameters()}
    left = sorted(trained - set(mapped))
    log.info("started from %d tensors of %s; %d trained parameters left at initialisation",
             len(mapped), path, len(left))  # fmt: skip
    return left


def _detector_readers(settings: Any) -> tuple[bool, bool]:
    """Whether BPAC-Net and the keypoint query read the detector's keypoints in training (the
    others read the noisy ground truth); each only when the model has that part."""
    bpac = settings.bpac_keypoints == "detector" and settings.model.use_bpac
    query = settings.query_keypoints == "detector" and settings.model.keypoint_query
    return bool(bpac), bool(query)


def ajahr_training_data_fingerprint(dataset_dir: Path) -> str:
    """The training data part of AJAHR's fingerprint, as :func:`train_ajahr` computes it."""
    return training_data_fingerprint(
        dataset_dir, index_samples(dataset_dir, "train", TRAIN_PARTS, allow_missing=True)
    )


def ajahr_weights_fingerprint(
    settings: AJAHRSettings,
    tokenizer_dir: Path,
    detector_path: Path | None,
    bpac_weights: Path | None,
    data_fp: str,
    body_model: BodyModel,
    init_weights: Path | None = None,
) -> str:
    """What an AJAHR (or baseline) checkpoint was trained from: its settings, the code that
    shapes its weights, the training data, the body model, the tokenizers, BPAC-Net's start
    weights and, when training reads it, the detector (whose own fingerprint covers the keypoint
    prior it reads).
    A checkpoint with another fingerprint is set aside and the run starts over."""
    tokenizers = [read_training_fp(tokenizer_dir / r / "checkpoint.pt") for r in settings.tokenizers]
    reads_detector = any(_detector_readers(settings)) and detector_path is not None
    return weights_fingerprint(
        settings,
        AJAHR_CODE,
        data=data_fp,
        body_model=body_model.fingerprint(),
        init_weights=_file_digest(init_weights),
        tokenizers=tokenizers,
        bpac_weights=str(bpac_weights),
        # A retrained detector changes what BPAC-Net or the query trains on: the run starts over.
        detector=read_training_fp(detector_path) if reads_detector else None,
    )


def noisy_keypoints(
    keypoints: torch.Tensor,
    state: torch.Tensor,
    std_fraction: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Ground-truth keypoints with Gaussian noise (std a fraction of the 256 crop); absent stay (0, 0)."""
    from a3d_data.synthesis.schema import CROP_SIZE, KeypointState

    if std_fraction <= 0:
        return keypoints
    noise = (
        torch.randn(keypoints.shape, generator=generator, device="cpu").to(keypoints.device)
        * std_fraction
        * CROP_SIZE
    )
    return torch.where((state == KeypointState.ABSENT)[..., None], keypoints, keypoints + noise)


# --- AJAHR ------------------------------------------------------------------------------------


def mean_root_and_joints(dataset: A3DDataset, count: int = 512, seed: int = 0) -> dict[str, torch.Tensor]:
    """From ``count`` training labels: the mean root rotation (projected onto SO(3)) as 6D, the mean
    body rotations (24, 3, 3; the mean-pose predictor's) and the mean pelvis-relative joints."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(dataset), size=min(count, len(dataset)), replace=False)
    rotmats, joints = [], []
    for i in chosen:
        try:
            _, labels = dataset.load(int(i))
        except SAMPLE_ERRORS:  # counted when training draws it; here one mean term fewer
            continue
        rotmats.append(labels["rotmats"])
        joints.append(labels["joints3d_smpl"] - labels["joints3d_smpl"][:1])
    rotmats_t = torch.from_numpy(np.stack(rotmats))
    u, _, vh = torch.linalg.svd(rotmats_t.mean(0))
    det = torch.sign(torch.linalg.det(u @ vh))
    fix = torch.ones(rotmats_t.shape[1], 3)
    fix[:, 2] = det
    projected = u @ torch.diag_embed(fix) @ vh
    return {
        "root6d": matrix_to_rotation_6d(projected[0]),
        "pose_rotmats": projected,
        "joints": torch.from_numpy(np.stack(joints)).mean(0),
    }


def build_ajahr(
    settings: AJAHRSettings,
    tokenizer_dir: Path,
    body_model: BodyModel,
    mean_root6d: torch.Tensor | None = None,
) -> AJAHR:
    """The model of ``settings`` (AJAHR or a variant) over the tokenizers it names, untrained."""
    tokenizers = {
        role: load_tokenizer(tokenizer_dir / role / "checkpoint.pt") for role in settings.tokenizers
    }
    model = AJAHR(settings.model.config(), tokenizers, body_model, mean_root6d)
    if settings.finetune.mode == "partial":
        model.freeze_for_partial_finetuning(settings.finetune.vit_blocks, settings.finetune.decoder_layers)
    return model


def parameter_groups(model: AJAHR, settings: AJAHRSettings) -> list[dict[str, Any]]:
    """AdamW groups: BPAC-Net's parameters at ``optim.bpac_lr`` when set, the rest at ``optim.lr``."""
    named = model.trainable_named_parameters()
    if settings.optim.bpac_lr is None or model.bpac is None:
        return [{"params": [p for _, p in named]}]
    return [
        {"params": [p for n, p in named if not n.startswith("bpac.")]},
        {"params": [p for n, p in named if n.startswith("bpac.")], "lr": settings.optim.bpac_lr},
    ]


def train_ajahr(
    settings: AJAHRSettings,
    dataset_dir: Path,
    tokenizer_dir: Path,
    detector_path: Path | None,
    body_model: BodyModel,
    output_dir: Path,
    bpac_weights: Path | None = None,
    init_weights: Path | None = None,
    max_minutes: float | None = None,
    max_steps_this_run: int | None = None,
    progress: bool = True,
    variant: str = "ajahr",
    evaluation_dir: Path | None = None,
    prior_path: Path | None = None,
) -> FitResult:
    """Train ``variant`` (AJAHR, a baseline or an ablation: ``settings`` are already its own) into
    ``output_dir`` (checkpoint, loss curve), then evaluate it on the test split into
    ``evaluation_dir`` (default: ``output_dir``): ``metrics.json`` and ``predictions.npz``.
    ``prior_path``: the keypoint_prior stage's output, read when the detector reads a prior."""
    evaluation_dir = evaluation_dir if evaluation_dir is not None else output_dir
    if settings.finetune.mode == "partial" and init_weights is None:
        raise ValueError(
            "ajahr finetune.mode is 'partial': it freezes most of the ViT and the first decoder "
            "layers, which from scratch would stay random; set ajahr init_weights to the weights to "
            "fine-tune (a finished train_ajahr checkpoint, or a ViT state dict such as ViTPose's)"
        )
    torch.manual_seed(settings.train.seed)
    fabric = make_fabric(settings.train)
    fabric.launch()
    # The frozen detector (eval mode), loaded once: in training for BPAC-Net or the query, at test.
    detector = load_detector(detector_path, fabric.device) if detector_path is not None else None
    detector_reads_prior = detector is not None and detector.config.prior_input
    prior = load_prior(prior_path, f"the detector {detector_path}") if detector_reads_prior else None
    train_set = A3DDataset(
        index_samples(dataset_dir, "train", TRAIN_PARTS, allow_missing=True),
        settings.augmentation.augmentation(),
        settings.train.seed,
        prior=prior,
    )
    means = mean_root_and_joints(train_set, seed=settings.train.seed)
    model = build_ajahr(settings, tokenizer_dir, body_model, means["root6d"])
    # ImageNet first: weights from a finished checkpoint then replace them (BPAC-Net included).
    if bpac_weights is not None and model.bpac is not None:
        load_imagenet_weights(model.bpac, bpac_weights)
    if init_weights is not None:
        load_init_weights(model, init_weights)
    model = model.to(fabric.device)
    if settings.train.compile:
        # In place: the checkpoint keeps the backbone's own parameter names (a torch.compile
        # wrapper would prefix them with _orig_mod, which no uncompiled model loads).
        model.backbone.compile()
    weights = settings.loss.weights()
    noise = settings.augmentation.keypoint_noise if settings.augmentation.enabled else 0.0
    # Who reads the detector's keypoints in training: BPAC-Net (bpac_keypoints) and/or the
    # keypoint query (query_keypoints); the others read the noisy ground truth.
    bpac_reads_detector, query_reads_detector = _detector_readers(settings)
    train_detector = None
    if bpac_reads_detector or query_reads_detector:
        if detector_path is None:
            option = "bpac_keypoints" if bpac_reads_detector else "query_keypoints"
            raise ValueError(f"{option} is 'detector': give the trained detector (--detector)")
        train_detector = detector

    def loss_fn(
        wrapped: nn.Module, batch: dict[str, Any], step: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        generator = torch.Generator().manual_seed(settings.train.seed * 1_000_003 + step)
        true_keypoints = noisy_keypoints(batch["keypoints2d"], batch["keypoint_state"], noise, generator)
        detected = located = None
        if train_detector is not None:
            # The frozen detector on the augmented crop: what the network sees at test.
            with torch.no_grad(), fabric.autocast():
                detections = detect_batch(train_detector, batch)
                detected, located = detections.keypoints.float(), detections.located.float()
        output = wrapped(
            batch["image"],
            detected if bpac_reads_detector else true_keypoints,
            batch["head_labels"],
            switching=settings.train_switching,
            query_keypoints=located if query_reads_detector else true_keypoints,
        )
        return ajahr_loss(output, batch, weights)

    checkpoint = output_dir / "checkpoint.pt"
    result = fit(
        fabric=fabric,
        model=model,
        parameters=parameter_groups(model, settings),
        loss_fn=loss_fn,
        dataset=train_set,
        parts=[r.part for r in train_set.refs],
        run=settings.train,
        optim=settings.optim,
        checkpoint=checkpoint,
        settings_fp=ajahr_weights_fingerprint(
            settings,
            tokenizer_dir,
            detector_path,
            bpac_weights,
            training_data_fingerprint(dataset_dir, train_set.refs),
            body_model,
            init_weights,
        ),
        extra_state={"kind": "ajahr", "variant": variant, "settings": settings.model_dump(mode="json")},
        max_minutes=max_minutes,
        max_steps_this_run=max_steps_this_run,
        progress=progress,
        desc=variant,
    )
    if not result.complete or not fabric.is_global_zero:
        return result
    history = read_training_checkpoint(checkpoint)["history"]
    test_set = A3DDataset(index_samples(dataset_dir, "test", TEST_PARTS), prior=prior)
    metrics, table = evaluate_model(
        model,
        detector,
        test_set,
        means["pose_rotmats"],
        means["joints"],
        settings.train.eval_batch_size,
        settings.train.eval_limit,
        fabric.device,
        progress=progress,
    )
    metrics = {
        "model": variant,
        "keypoints": "detector" if detector is not None else "ground truth",
        **metrics,
    }
    metrics["checks"]["learned"] = learned(metrics, settings)
    if not metrics["checks"]["learned"]:
        log.warning("%s did not clearly learn: %s", variant, metrics["checks"])
    metrics["train"] = {
        "steps": result.step,
        "corrupt_samples": result.corrupt,
        "seconds_this_run": round(result.seconds, 1),
        "seconds": round(result.total_seconds, 1),
    }
    if history:
        metrics["train"]["images_per_s"] = float(np.median([row["images_per_s"] for row in history]))
    evaluation_dir.mkdir(parents=True, exist_ok=True)
    write_json(evaluation_dir / "metrics.json", metrics)
    with atomic_path(evaluation_dir / "predictions.npz") as temporary, temporary.open("wb") as handle:
        np.savez_compressed(handle, **table)
    terms = ["keypoints3d", "keypoints2d", "body_pose", "global_orient", "betas"]
    if model.joints_head is not None:
        terms.append("joints_direct")
    plot_history(
        history,
        output_dir / "loss_curve.png",
        f"{variant} (cpu/gpu profile: see params.yaml)"
        if variant != "ajahr"
        else "AJAHR (BPAC-Net + regressor)",
        [*terms, "bpac"] if model.bpac is not None else terms,
    )
    return result


def load_trained_model(
    path: Path, tokenizer_dir: Path, body_model: BodyModel, device: torch.device | str = "cpu"
) -> AJAHR:
    """A finished AJAHR / baseline checkpoint of a ``train_model`` stage, in eval mode. The body
    model is the caller's (e.g. a licensed SMPL for real data), not the one trained with."""
    from ajahr_model.training.loop import TrainingCheckpointError

    state = read_training_checkpoint(path)
    if state.get("kind") != "ajahr" or not state.get("complete"):
        raise TrainingCheckpointError(f"{path}: not a finished AJAHR checkpoint (fields 'kind', 'complete')")
    settings = AJAHRSettings.model_validate(state["settings"])
    model = build_ajahr(settings, tokenizer_dir, body_model)
    weights = {k: v for k, v in state["model"].items() if not k.startswith("body_model.")}
    missing, unexpected = model.load_state_dict(weights, strict=False)
    left = [k for k in missing if not k.startswith("body_model.")]
    if left or unexpected:
        raise TrainingCheckpointError(
            f"{path}: weights do not fit the model (missing {left[:3]}, unexpected {unexpected[:3]})"
        )
    return model.to(device).eval().requires_grad_(False)


def learned(metrics: dict[str, Any], settings: AJAHRSettings) -> bool:
    """The stage's "it learned" check: MPJPE under ``max_mpjpe_ratio_to_mean_pose`` of the
    mean-pose predictor's on amputees and non-amputees, and (with BPAC-Net) its balanced 13-way
    class accuracy on amputees and non-amputees (mean recall; 1/13 by chance, so calling
    non-amputees amputees counts against it) over ``min_bpac_accuracy_over_chance`` times
    chance with the detector's keypoints."""
    checks = metrics["checks"]
    ok = (
        checks["mpjpe_ratio_to_mean_pose"] < settings.max_mpjpe_ratio_to_mean_pose
        and checks["non_amputee_mpjpe_ratio_to_mean_pose"] < settings.max_mpjpe_ratio_to_mean_pose
    )
    key = "bpac_balanced_class_accuracy_over_chance (detected_keypoints)"
    if key in checks:
        ok = ok and checks[key] > settings.min_bpac_accuracy_over_chance
    return bool(ok)
