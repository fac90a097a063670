"""Test-split evaluation of one trained model (AJAHR, a baseline or an ablation).

Per test part (amputee, non-amputee, occlusion) the model runs once on each crop, with BPAC-Net
fed the keypoint detector's keypoints (as at inference) and, as a diagnostic, the true keypoints.
Its pose is then zeroed twice: with the ground-truth amputation label (the paper's amputee
protocol) and with BPAC-Net's label. MPJPE, PA-MPJPE and MVE are measured on the 24 SMPL joints
(:mod:`ajahr_model.evaluation.metrics`), beside a mean-pose predictor under the same protocol.

Writes, through :func:`evaluate_model`'s caller, ``metrics.json`` (figures) and
``predictions.npz`` (one row per test sample: errors, labels and the predicted body, for the
report's confusion matrices, per-class bars and overlays).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from a3d_data.amputation.labels import MULTI_LIMB, class_index_from_head_labels, zeroed_joint_mask
from a3d_data.amputation.table import AMPUTATION_CLASSES, NON_AMPUTEE, NUM_CLASSES, NUM_HEAD_CLASSES
from a3d_data.body_model.model import BodyModel
from a3d_data.synthesis.schema import KeypointState
from ajahr_model.data.a3d import A3DDataset, collate
from ajahr_model.evaluation.metrics import (
    balanced_accuracy,
    binary_metrics,
    classification_metrics,
    keypoint_error_px,
    mesh_errors,
    mpjpe_mm,
)
from ajahr_model.networks.keypoints import KeypointDetector, detect_batch
from ajahr_model.networks.regressor import AJAHR, camera_translation, project

TEST_PARTS = ("amputee", "non_amputee", "occlusion")
HEAD_NAMES = ("right_arm", "left_arm", "left_leg", "right_leg")
PROTOCOLS = ("gt_labels", "predicted_labels")
# A predicted label with several amputated limbs (A3D has none) gets its own class id.
SEVERAL_LIMBS = NUM_CLASSES
CHANCE_AMPUTEE_CLASS = 1.0 / (NUM_CLASSES - 1)


def batches(dataset: A3DDataset, indices: list[int], batch_size: int) -> Iterator[dict[str, Any]]:
    """Collated batches of ``indices`` in order (no augmentation)."""
    for start in range(0, len(indices), batch_size):
        yield collate([dataset[i] for i in indices[start : start + batch_size]])


def to_device(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """The batch with its tensors on ``device`` (keys and lists stay)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def part_indices(dataset: A3DDataset, part: str, limit: int | None) -> list[int]:
    indices = [i for i, ref in enumerate(dataset.refs) if ref.part == part]
    return indices[:limit] if limit else indices


def rotation_angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Geodesic angle (degrees) between rotation matrices (B, 3, 3)."""
    cos = ((a.transpose(-1, -2) @ b).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))


def class_ids(head_labels: torch.Tensor) -> torch.Tensor:
    """AJAHR class per body (B,) from head labels, several limbs as :data:`SEVERAL_LIMBS`."""
    classes = class_index_from_head_labels(head_labels)
    return torch.where(classes == MULTI_LIMB, SEVERAL_LIMBS, classes)


def _zeroed(rotmats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return rotmats * (~zeroed_joint_mask(labels))[..., None, None].to(rotmats.dtype)


@torch.no_grad()
def evaluate_model(
    model: AJAHR,
    detector: KeypointDetector | None,
    dataset: A3DDataset,
    mean_pose_rotmats: torch.Tensor,
    mean_joints: torch.Tensor,
    batch_size: int,
    limit: int | None,
    device: torch.device,
    progress: bool = True,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Figures (metrics JSON) and per-sample rows (arrays of equal length) on the test parts.

    ``mean_pose_rotmats`` (24, 3, 3): the mean training pose (root included) that the mean-pose
    predictor answers for every crop, with zero betas. ``mean_joints`` (24, 3): the mean
    pelvis-relative training skeleton, a stronger answer for MPJPE (an average of skeletons
    hedges between orientations); the "it learned" check compares with the better of the two.
    """
    model.eval()
    body: BodyModel = model.body_model
    has_bpac = model.bpac is not None
    rows: dict[str, list[np.ndarray]] = {}
    total = sum(len(part_indices(dataset, p, limit)) for p in TEST_PARTS)
    bar = tqdm(total=total, desc="evaluation", unit="img", disable=not progress, leave=False)
    for part in TEST_PARTS:
        for batch in batches(dataset, part_indices(dataset, part, limit), batch_size):
            batch = to_device(batch, device)
            n = len(batch["keys"])
            true_labels = batch["head_labels"]
            if detector is not None:
                detections = detect_batch(detector, batch)
                keypoints, located = detections.keypoints, detections.located
            else:
                keypoints = located = batch["keypoints2d"]
            # BPAC-Net reads the keypoints with the absent ones at (0, 0), the keypoint query (if
            # any) all located ones, as in training.
            out = model(
                batch["image"],
                keypoints,
                true_labels,
                switching="predicted",
                zeroing="ground_truth",
                query_keypoints=located,
            )
            predicted = out.predicted_head_labels()
            gt_body = body.forward_rotmats(batch["rotmats"], betas=batch["betas"])
            gt_joints, gt_vertices = gt_body.joints[:, :24], gt_body.vertices
            row: dict[str, Any] = {
                "key": np.array(batch["keys"]),
                "part": np.array([part] * n),
                "class_index": batch["class_index"].view(-1).cpu().numpy(),
                "head_labels": true_labels.cpu().numpy(),
                "predicted_head_labels": predicted.cpu().numpy(),
                "predicted_class": class_ids(predicted).cpu().numpy(),
                "global_orient_error_deg": rotation_angle_deg(out.rotmats[:, 0], batch["rotmats"][:, 0])
                .cpu()
                .numpy(),
                "rotmats": out.rotmats.half().cpu().numpy(),
                "betas": out.betas.cpu().numpy(),
                "cam_t": out.cam_t.cpu().numpy(),
            }
            # Where the body lands in the crop: with the model's camera (the fit to the located
            # keypoints where model.camera_fit, else the head's) and with the head's alone.
            visible = batch["keypoint_state"] == KeypointState.VISIBLE
            true_2d = batch["keypoints2d"].float()
            head_2d = project(body.coco_keypoints(out.vertices), camera_translation(out.camera))
            row["keypoints2d_px"] = keypoint_error_px(out.keypoints2d.float(), true_2d, visible).cpu().numpy()
            row["keypoints2d_px_camera_head"] = (
                keypoint_error_px(head_2d.float(), true_2d, visible).cpu().numpy()
            )
            for protocol, labels in (("gt_labels", true_labels), ("predicted_labels", predicted)):
                if protocol == "gt_labels":
                    vertices, joints = out.vertices, out.joints
                else:
                    posed = body.forward_rotmats(_zeroed(out.rotmats_full, labels), betas=out.betas)
                    vertices, joints = posed.vertices, posed.joints[:, :24]
                errors = mesh_errors(joints, gt_joints, vertices, gt_vertices)
                for name in ("mpjpe", "pa_mpjpe", "mve"):
                    row[f"{protocol}_{name}"] = getattr(errors, name).cpu().numpy()
            mean_rotmats = _zeroed(mean_pose_rotmats.to(device).expand(n, -1, -1, -1), true_labels)
            mean_body = body.forward_rotmats(mean_rotmats)
            errors = mesh_errors(mean_body.joints[:, :24], gt_joints, mean_body.vertices, gt_vertices)
            for name in ("mpjpe", "pa_mpjpe", "mve"):
                row[f"mean_pose_{name}"] = getattr(errors, name).cpu().numpy()
            skeleton = mean_joints.to(device).expand(n, -1, -1)
            row["mean_joints_mpjpe"] = mpjpe_mm(skeleton, gt_joints).cpu().numpy()
            if has_bpac:
                true_kp = model.bpac(batch["image"], batch["keypoints2d"]).head_labels()
                row["predicted_head_labels_true_keypoints"] = true_kp.cpu().numpy()
                row["predicted_class_true_keypoints"] = class_ids(true_kp).cpu().numpy()
            for name, value in row.items():
                rows.setdefault(name, []).append(np.asarray(value))
            bar.update(n)
    bar.close()
    table = {name: np.concatenate(parts) for name, parts in rows.items()}
    return summarise(table, has_bpac), table


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _mean_and_median(values: np.ndarray) -> dict[str, float]:
    """Of the finite values (a crop without visible keypoints has no 2D error)."""
    finite = values[np.isfinite(values)]
    return {"mean": _mean(finite), "median": float(np.median(finite)) if len(finite) else float("nan")}


def summarise(table: dict[str, np.ndarray], has_bpac: bool) -> dict[str, Any]:
    """The metrics JSON from the per-sample rows."""
    metrics: dict[str, Any] = {"test": {}, "per_class": {}}
    for part in TEST_PARTS:
        mask = table["part"] == part
        entry: dict[str, Any] = {"samples": int(mask.sum())}
        for protocol in (*PROTOCOLS, "mean_pose"):
            entry[protocol] = {
                name: _mean(table[f"{protocol}_{name}"][mask]) for name in ("mve", "mpjpe", "pa_mpjpe")
            }
        entry["mean_joints"] = {"mpjpe": _mean(table["mean_joints_mpjpe"][mask])}
        entry["global_orient_error_deg"] = _mean(table["global_orient_error_deg"][mask])
        if "keypoints2d_px" in table:  # predictions written before the 2D figure lack it
            entry["keypoints2d_px"] = {
                camera: _mean_and_median(table[column][mask])
                for camera, column in (
                    ("model", "keypoints2d_px"),
                    ("camera_head", "keypoints2d_px_camera_head"),
                )
            }
        metrics["test"][part] = entry
    # Per class: the amputee part's 12 classes and the non-amputee part (class 12).
    for amputation in AMPUTATION_CLASSES:
        part = "non_amputee" if amputation.index == NON_AMPUTEE else "amputee"
        mask = (table["part"] == part) & (table["class_index"] == amputation.index)
        metrics["per_class"][amputation.name] = {
            "index": amputation.index,
            "samples": int(mask.sum()),
            **{name: _mean(table[f"gt_labels_{name}"][mask]) for name in ("mve", "mpjpe", "pa_mpjpe")},
        }
    if has_bpac:
        metrics["bpac"] = {
            part: {
                source: bpac_metrics(table, part, suffix)
                for source, suffix in (("detected_keypoints", ""), ("true_keypoints", "_true_keypoints"))
            }
            for part in TEST_PARTS
        }
    amputee = metrics["test"]["amputee"]
    normal = metrics["test"]["non_amputee"]

    def best_mean(entry: dict[str, Any]) -> float:
        return min(entry["mean_pose"]["mpjpe"], entry["mean_joints"]["mpjpe"])

    checks: dict[str, Any] = {
        "mpjpe_ratio_to_mean_pose": amputee["gt_labels"]["mpjpe"] / best_mean(amputee),
        "non_amputee_mpjpe_ratio_to_mean_pose": normal["gt_labels"]["mpjpe"] / best_mean(normal),
    }
    if has_bpac:
        # Amputees and non-amputees together: 12 amputation classes + intact, so chance (the
        # score of a verdict that ignores the image) is 1/13 on the test split.
        both = np.isin(table["part"], ("amputee", "non_amputee"))
        target = torch.from_numpy(table["class_index"][both])
        classes = len(torch.unique(target))
        for source, suffix in (("detected_keypoints", ""), ("true_keypoints", "_true_keypoints")):
            accuracy = metrics["bpac"]["amputee"][source]["class"]["accuracy"]
            checks[f"bpac_amputee_class_accuracy_over_chance ({source})"] = accuracy / CHANCE_AMPUTEE_CLASS
            pred = torch.from_numpy(table[f"predicted_class{suffix}"][both])
            balanced = balanced_accuracy(pred, target)
            checks[f"bpac_balanced_class_accuracy_over_chance ({source})"] = balanced * classes
            # The paper's A3D figures (accuracy 0.881, precision 0.756, recall 0.922, F1 0.820):
            # the amputee-or-not verdict over amputees and non-amputees.
            checks[f"bpac_amputee_or_not ({source})"] = binary_metrics(
                pred != NON_AMPUTEE, target != NON_AMPUTEE
            )
    metrics["checks"] = checks
    return metrics


def bpac_metrics(table: dict[str, np.ndarray], part: str, suffix: str = "") -> dict[str, Any]:
    """BPAC-Net's figures on one test part: per head (4 levels; weighted P/R/F1), the 13-way
    class, and the binary amputee-or-not verdict (the tokenizer switch)."""
    mask = table["part"] == part
    true_heads = torch.from_numpy(table["head_labels"][mask])
    pred_heads = torch.from_numpy(table[f"predicted_head_labels{suffix}"][mask])
    true_class = torch.from_numpy(table["class_index"][mask])
    pred_class = torch.from_numpy(table[f"predicted_class{suffix}"][mask])
    return {
        "heads": {
            name: classification_metrics(pred_heads[:, h], true_heads[:, h], NUM_HEAD_CLASSES)
            for h, name in enumerate(HEAD_NAMES)
        },
        "class": classification_metrics(pred_class, true_class, NUM_CLASSES + 1),
        "binary": binary_metrics(pred_class != NON_AMPUTEE, true_class != NON_AMPUTEE),
    }
