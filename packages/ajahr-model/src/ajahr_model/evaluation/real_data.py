"""Evaluation on real images with SMPL ground truth: EMDB- and 3DPW-style sequence files.

Neither dataset (nor the licensed SMPL their ground truth is fitted with) is on these machines;
a user who has them points :func:`read_sequence` at a sequence file and its image folder. The
readers take the layouts the datasets publish:

* ``3dpw``: ``sequenceFiles/<split>/<name>.pkl`` (a Python 2 pickle), with ``sequence``,
  ``img_frame_ids`` (N,), per person ``poses`` (N, 72; world frame), ``betas`` (10,),
  ``campose_valid`` (N,) and ``poses2d`` (N, 3, 18; x, y, confidence), and ``cam_poses``
  (N, 4, 4; world to camera). Images: ``<images>/<sequence>/image_<frame:05d>.jpg``.
* ``emdb``: ``<subject>/<sequence>/<subject>_<sequence>_data.pkl``, with ``smpl``
  {``poses_root`` (N, 3), ``poses_body`` (N, 69), ``betas`` (10,)}, ``camera`` {``extrinsics``
  (N, 4, 4)}, ``bboxes`` {``bboxes`` (N, 4) x0, y0, x1, y1} and ``good_frames_mask`` (N,).
  Images: ``<images>/<index:05d>.jpg``.

Each frame becomes a 256-pixel crop around the person's box (side x 1.2), the model runs on it
with BPAC-Net fed the keypoint detector's keypoints, nothing zeroed but what BPAC-Net calls
amputated (real people here are not amputees), and MVE / MPJPE / PA-MPJPE are measured against
the ground-truth mesh of the same body model: on the 24 SMPL joints (EMDB) or, with the licensed
SMPL's H36M regressor, the 14 LSP joints (3DPW).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from a3d_data.synthesis.schema import CROP_SIZE
from ajahr_model.evaluation.metrics import mesh_errors
from ajahr_model.networks.keypoints import KeypointDetector, detect_batch
from ajahr_model.networks.regressor import AJAHR

SequenceFormat = Literal["emdb", "3dpw"]
BOX_PADDING = 1.2


class SequenceFileError(ValueError):
    """A sequence file that cannot be read as the format says (names the file and the field)."""


@dataclass(frozen=True)
class SMPLSequence:
    """Frames of one person: images, square boxes and SMPL ground truth in the camera frame.

    image_paths (N); boxes (N, 3) centre x, centre y, side in pixels; global_orient (N, 3) and
    body_pose (N, 69) axis-angle, camera frame; betas (N, 10).
    """

    name: str
    image_paths: list[Path]
    boxes: np.ndarray
    global_orient: np.ndarray
    body_pose: np.ndarray
    betas: np.ndarray

    def __len__(self) -> int:
        return len(self.image_paths)


def _load_pickle(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = pickle.load(handle, encoding="latin1")  # 3DPW's files are Python 2 pickles
    except (OSError, pickle.UnpicklingError, EOFError, UnicodeDecodeError) as err:
        raise SequenceFileError(f"{path}: cannot read the sequence pickle ({err})") from err
    if not isinstance(data, dict):
        raise SequenceFileError(f"{path}: expected a dict, got {type(data).__name__}")
    return data


def _field(data: dict[str, Any], path: Path, *keys: str, shape: tuple[int | None, ...] | None = None) -> Any:
    node: Any = data
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            raise SequenceFileError(f"{path}: field {'.'.join(keys)!r} is missing")
        node = node[key]
    if shape is not None:
        array = np.asarray(node, dtype=np.float64)
        ok = array.ndim == len(shape) and all(
            s is None or s == a for s, a in zip(shape, array.shape, strict=True)
        )
        if not ok:
            expected = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
            raise SequenceFileError(
                f"{path}: field {'.'.join(keys)!r} has shape {array.shape}, expected {expected}"
            )
        return array
    return node


def _to_camera(world_orient: np.ndarray, extrinsics: np.ndarray) -> np.ndarray:
    """Axis-angle root orientations (N, 3) turned from the world into the camera frame."""
    rotations = Rotation.from_matrix(extrinsics[:, :3, :3]) * Rotation.from_rotvec(world_orient)
    return rotations.as_rotvec()


def read_3dpw(path: Path, image_root: Path, person: int = 0) -> SMPLSequence:
    data = _load_pickle(path)
    poses = _field(data, path, "poses")
    if not isinstance(poses, list | tuple) or not 0 <= person < len(poses):
        raise SequenceFileError(f"{path}: field 'poses' has no person {person}")
    pose = np.asarray(poses[person], dtype=np.float64)
    if pose.ndim != 2 or pose.shape[1] != 72:
        raise SequenceFileError(f"{path}: field 'poses[{person}]' has shape {pose.shape}, expected (N, 72)")
    n = len(pose)
    cam = _field(data, path, "cam_poses", shape=(n, 4, 4))
    frames = np.asarray(_field(data, path, "img_frame_ids")).astype(int)
    valid = np.asarray(_field(data, path, "campose_valid")[person]).astype(bool)
    keypoints = np.asarray(_field(data, path, "poses2d")[person], dtype=np.float64)  # (N, 3, 18)
    betas = np.asarray(_field(data, path, "betas")[person], dtype=np.float64)[:10]
    sequence = str(_field(data, path, "sequence"))
    boxes, keep = [], []
    for i in range(n):
        seen = keypoints[i, 2] > 0
        if not valid[i] or seen.sum() < 3:
            continue
        xy = keypoints[i][:2, seen].T  # (visible, 2)
        low, high = xy.min(0), xy.max(0)
        boxes.append([*(low + high) / 2, (high - low).max() * BOX_PADDING])
        keep.append(i)
    keep_a = np.asarray(keep, dtype=int)
    return SMPLSequence(
        name=sequence,
        image_paths=[image_root / sequence / f"image_{frames[i]:05d}.jpg" for i in keep_a],
        boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 3),
        global_orient=_to_camera(pose[keep_a, :3], cam[keep_a]) if len(keep_a) else np.zeros((0, 3)),
        body_pose=pose[keep_a, 3:],
        betas=np.broadcast_to(betas, (len(keep_a), 10)).copy(),
    )


def read_emdb(path: Path, image_root: Path) -> SMPLSequence:
    data = _load_pickle(path)
    root = _field(data, path, "smpl", "poses_root", shape=(None, 3))
    n = len(root)
    body = _field(data, path, "smpl", "poses_body", shape=(n, 69))
    betas = _field(data, path, "smpl", "betas")
    betas = np.asarray(betas, dtype=np.float64).reshape(-1, np.shape(betas)[-1])[:, :10]
    extrinsics = _field(data, path, "camera", "extrinsics", shape=(n, 4, 4))
    boxes_xyxy = _field(data, path, "bboxes", "bboxes", shape=(n, 4))
    good = np.asarray(data.get("good_frames_mask", np.ones(n, bool))).astype(bool)
    keep = np.flatnonzero(good)
    low, high = boxes_xyxy[keep, :2], boxes_xyxy[keep, 2:]
    boxes = np.concatenate([(low + high) / 2, (high - low).max(1, keepdims=True) * BOX_PADDING], axis=1)
    return SMPLSequence(
        name=str(data.get("name", path.stem)),
        image_paths=[image_root / f"{i:05d}.jpg" for i in keep],
        boxes=boxes,
        global_orient=_to_camera(root[keep], extrinsics[keep]),
        body_pose=body[keep],
        betas=np.broadcast_to(betas[0] if len(betas) == 1 else betas[keep], (len(keep), 10)).copy(),
    )


def read_sequence(format: SequenceFormat, path: Path, image_root: Path) -> SMPLSequence:
    """A sequence of ``format`` ("emdb" or "3dpw") from ``path``, images under ``image_root``."""
    if format == "emdb":
        return read_emdb(path, image_root)
    if format == "3dpw":
        return read_3dpw(path, image_root)
    raise ValueError(f"unknown sequence format {format!r}; expected emdb or 3dpw")


def crop_person(image: Image.Image, box: np.ndarray) -> np.ndarray:
    """The square ``box`` (centre x, centre y, side) of ``image`` as a 256-pixel crop (uint8 HWC);
    outside the image is black."""
    cx, cy, side = (float(v) for v in box)
    half = side / 2
    crop = image.convert("RGB").crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))
    return np.asarray(crop.resize((CROP_SIZE, CROP_SIZE), Image.Resampling.BILINEAR), dtype=np.uint8)


def _frames(sequence: SMPLSequence, batch_size: int) -> Iterator[tuple[slice, torch.Tensor]]:
    for start in range(0, len(sequence), batch_size):
        part = slice(start, min(start + batch_size, len(sequence)))
        crops = []
        for path, box in zip(sequence.image_paths[part], sequence.boxes[part], strict=True):
            try:
                with Image.open(path) as image:
                    crops.append(crop_person(image, box))
            except OSError as err:
                raise SequenceFileError(f"{path}: cannot read the frame ({err})") from err
        yield part, torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def _rotmats(axis_angle: np.ndarray) -> torch.Tensor:
    n = axis_angle.shape[0]
    flat = Rotation.from_rotvec(axis_angle.reshape(-1, 3)).as_matrix()
    return torch.from_numpy(flat.reshape(n, -1, 3, 3)).float()


@torch.no_grad()
def evaluate_sequence(
    model: AJAHR,
    detector: KeypointDetector,
    sequence: SMPLSequence,
    h36m_regressor: torch.Tensor | None = None,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    prior: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """MVE / MPJPE / PA-MPJPE (mm, means over the frames) of ``model`` on ``sequence``; the
    ground-truth meshes come from the model's body model (the licensed SMPL for real data).
    ``prior``: crops (N, 256, 256, 3) uint8 -> the keypoint prior's (keypoints, confidence), for a
    detector that reads one (``prior.run.blazepose_on_crops``)."""
    if detector.config.prior_input and prior is None:
        raise ValueError("the detector reads a keypoint prior: give evaluate_sequence a prior function")
    if len(sequence) == 0:
        raise SequenceFileError(f"{sequence.name}: no usable frames (all invalid or without a box)")
    model.eval()
    body = model.body_model
    sums: dict[str, list[np.ndarray]] = {"mve": [], "mpjpe": [], "pa_mpjpe": []}
    amputee_calls = 0
    for part, crops in _frames(sequence, batch_size):
        batch = {"image": crops.to(device)}
        if detector.config.prior_input:
            keypoints, confidence = prior(crops.permute(0, 2, 3, 1).numpy())
            batch["prior_keypoints2d"] = torch.from_numpy(keypoints).to(device)
            batch["prior_confidence"] = torch.from_numpy(confidence).to(device)
        detections = detect_batch(detector, batch)
        out = model(
            batch["image"], detections.keypoints, switching="predicted", query_keypoints=detections.located
        )
        amputee_calls += int(out.amputee_tokenizer.sum())
        rotmats = torch.cat(
            [_rotmats(sequence.global_orient[part]), _rotmats(sequence.body_pose[part])], dim=1
        ).to(device)
        gt = body.forward_rotmats(rotmats, betas=torch.from_numpy(sequence.betas[part]).float().to(device))
        errors = mesh_errors(out.joints, gt.joints[:, :24], out.vertices, gt.vertices, h36m_regressor)
        for name in sums:
            sums[name].append(getattr(errors, name).cpu().numpy())
    return {
        "sequence": sequence.name,
        "frames": len(sequence),
        "joints": "lsp14" if h36m_regressor is not None else "smpl24",
        **{name: float(np.concatenate(values).mean()) for name, values in sums.items()},
        "bpac_called_amputee": amputee_calls / len(sequence),
    }
