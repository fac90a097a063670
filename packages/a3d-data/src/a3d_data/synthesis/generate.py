"""One batch of A3D samples: pose -> amputation -> mesh -> camera -> appearance -> render -> labels.

Everything here is deterministic given the numpy generator it receives, so a shard is reproduced
exactly from its seed. The heavy objects (body model, renderer, pose source, backgrounds) live in a
:class:`SynthesisContext`, built once per worker process.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from a3d_data import appearance
from a3d_data.amputation import (
    NON_AMPUTEE,
    absent_coco_keypoints,
    amputate_rotmats,
    head_labels_from_classes,
    zeroed_joint_mask,
)
from a3d_data.body_model import BodyModel, load_body_model
from a3d_data.poses import create_pose_source
from a3d_data.poses.base import PoseSource
from a3d_data.render import create_renderer
from a3d_data.render.base import Renderer
from a3d_data.synthesis.camera import BODY_TO_CAMERA, place_in_crop, project, yaw_of
from a3d_data.synthesis.keypoints import face_segments, keypoint_states, state_bitmask
from a3d_data.synthesis.occlusion import draw_occluders
from a3d_data.synthesis.params import SynthesizeParams
from a3d_data.synthesis.schema import BETA_COLUMNS, HEAD_COLUMNS, KeypointState
from a3d_data.synthesis.shards import Sample


@dataclass
class SynthesisContext:
    """What a worker builds once: the body model, renderer, pose source and face segments."""

    params: SynthesizeParams
    model: BodyModel
    renderer: Renderer
    pose_source: PoseSource
    face_segment: torch.Tensor
    faces: torch.Tensor
    backgrounds: appearance.BackgroundCatalogue

    @classmethod
    def build(cls, params: SynthesizeParams, root: Path, body_model_path: Path | None) -> SynthesisContext:
        # A3D stores 10 betas (schema), whatever the body model could take.
        model = load_body_model(body_model_path, num_betas=len(BETA_COLUMNS)).to(params.device)
        faces = torch.as_tensor(model.faces.astype(np.int64), device=params.device)
        return cls(
            params=params,
            model=model,
            renderer=create_renderer(params.render_backend, params.device),
            pose_source=create_pose_source(params.poses, root),
            face_segment=face_segments(model.lbs_weights, faces).cpu(),
            faces=faces,
            backgrounds=appearance.BackgroundCatalogue(params.appearance.backgrounds),
        )


def _encode_labels(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def balanced_classes(part: str, count: int, rng: np.random.Generator) -> np.ndarray:
    """AJAHR indices (count,) for a part: amputees cycle through the 12 classes in a random
    order, so every class has its share to within one sample; other parts are intact (12)."""
    if part != "amputee":
        return np.full(count, NON_AMPUTEE)
    # The remainder of count / 12 goes to randomly chosen classes, not always to the first ones.
    return rng.permutation(np.resize(rng.permutation(NON_AMPUTEE), count))


def _sample_poses(context: SynthesisContext, count: int, rng: np.random.Generator, split: str):
    """Poses for ``split``: file sources keep each file (sequence) in one split only."""
    from a3d_data.synthesis.splits import pose_group_split

    if context.pose_source.name == "procedural":  # procedural ids are unique per draw
        return context.pose_source.sample(count, rng)
    batches, kept = [], 0
    for _ in range(1000):
        batch = context.pose_source.sample(max(count, 64), rng)
        keep = np.array([pose_group_split(pid) == split for pid in batch.pose_ids])
        if keep.any():
            batches.append((batch, keep))
            kept += int(keep.sum())
        if kept >= count:
            break
    else:
        raise RuntimeError(
            f"the pose source {context.pose_source.name!r} yields no poses for split {split!r}"
        )
    from a3d_data.poses.base import PoseBatch

    rotmats = np.concatenate([b.rotmats[k] for b, k in batches])[:count]
    betas = None if batches[0][0].betas is None else np.concatenate([b.betas[k] for b, k in batches])[:count]
    ids = np.concatenate([b.pose_ids[k] for b, k in batches])[:count]
    activities = np.concatenate([b.activities[k] for b, k in batches])[:count]
    return PoseBatch(rotmats=rotmats, betas=betas, pose_ids=ids, activities=activities)


def synthesize_batch(
    context: SynthesisContext,
    split: str,
    part: str,
    keys: list[str],
    rng: np.random.Generator,
    classes: np.ndarray | None = None,
) -> list[Sample]:
    """Generate and encode the samples named ``keys`` of one split and part.

    ``classes`` (len(keys),) gives the AJAHR index of each sample; by default amputees are drawn
    uniformly over the 12 classes and the other parts are intact (class 12).
    """
    params = context.params
    device = params.device
    count = len(keys)
    poses = _sample_poses(context, count, rng, split)

    if classes is None:
        classes = balanced_classes(part, count, rng)
    head_labels = head_labels_from_classes(torch.as_tensor(classes))
    zeroed = zeroed_joint_mask(head_labels)
    absent = absent_coco_keypoints(zeroed)

    if poses.betas is not None:
        betas = torch.as_tensor(poses.betas, dtype=torch.float32)
    else:
        betas = torch.as_tensor(
            rng.normal(0.0, params.beta_std, (count, len(BETA_COLUMNS))), dtype=torch.float32
        )
    betas = betas.clamp(-params.beta_clip, params.beta_clip)
    body_rotmats = torch.as_tensor(poses.rotmats, dtype=torch.float32)
    yaw = yaw_of(body_rotmats[:, 0])
    rotmats = body_rotmats.clone()
    rotmats[:, 0] = BODY_TO_CAMERA @ rotmats[:, 0]
    rotmats = amputate_rotmats(rotmats, zeroed)

    with torch.no_grad():
        out = context.model.forward_rotmats(rotmats.to(device), betas.to(device))
        vertices = out.vertices.cpu()
        joints_smpl = out.joints[:, :24].cpu()
        joints_coco = context.model.coco_keypoints(out.vertices).cpu()
    camera = place_in_crop(
        vertices,
        rng,
        fill_range=params.camera.fill_range,
        centre_jitter=params.camera.centre_jitter,
        truncation_probability=params.camera.truncation_probability,
        truncation_shift=params.camera.truncation_shift,
    )
    shift = camera.cam_t[:, None, :]
    vertices, joints_smpl, joints_coco = vertices + shift, joints_smpl + shift, joints_coco + shift

    colours, appearance_meta = appearance.sample_vertex_colors(context.model, count, rng, params.appearance)
    lights = appearance.sample_lights(count, rng, params.appearance.lighting)
    backgrounds, background_ids = context.backgrounds.sample_backgrounds(count, rng, split, camera.crop_size)
    rendered = context.renderer.render(
        vertices.to(device),
        context.faces,
        torch.as_tensor(colours, device=device),
        torch.full((count,), camera.focal, device=device),
        camera.principal.to(device),
        camera.crop_size,
        lights,
        torch.as_tensor(backgrounds, device=device),
    )
    images = rendered.rgb.cpu().numpy()
    keypoints2d = project(joints_coco, camera.focal, camera.principal)

    occluder_mask = None
    if part == "occlusion":

        def texture() -> np.ndarray:  # another background of the same split
            return context.backgrounds.sample_backgrounds(1, rng, split, camera.crop_size)[0][0]

        images, occluders = draw_occluders(images, keypoints2d.numpy(), rng, texture)
        occluder_mask = torch.as_tensor(np.stack([o.mask for o in occluders]))
    images = appearance.colour_jitter(images, rng, params.appearance.colour_jitter)

    states = keypoint_states(
        keypoints2d, joints_coco[..., 2], absent, rendered.face_id.cpu(), rendered.depth.cpu(),
        context.face_segment, occluder_mask,
    )  # fmt: skip
    states_np = states.numpy()
    keypoints_stored = torch.where(absent[..., None], torch.zeros_like(keypoints2d), keypoints2d)

    samples = []
    for i, key in enumerate(keys):
        labels = {
            "rotmats": rotmats[i].numpy(),
            "betas": betas[i].numpy(),
            "cam_t": camera.cam_t[i].numpy().astype(np.float32),
            "focal": np.float32(camera.focal),
            "bbox_center": camera.bbox_center[i].numpy().astype(np.float32),
            "bbox_scale": np.float32(camera.bbox_scale[i]),
            "joints3d_smpl": joints_smpl[i].numpy(),
            "joints3d_coco": joints_coco[i].numpy(),
            "keypoints2d": keypoints_stored[i].numpy().astype(np.float32),
            "keypoint_state": states_np[i],
            "smpl_joint_absent": zeroed[i].numpy(),
            "head_labels": head_labels[i].numpy().astype(np.int64),
            "class_index": np.int64(classes[i]),
        }
        jpeg = _encode_jpeg(images[i], params.jpeg_quality)
        row = {
            "key": key,
            "split": split,
            "part": part,
            "class_index": int(classes[i]),
            **{name: int(head_labels[i, h]) for h, name in enumerate(HEAD_COLUMNS)},
            "pose_id": str(poses.pose_ids[i]),
            "pose_source": context.pose_source.name,
            "activity": str(poses.activities[i]),
            "background_id": str(background_ids[i]),
            **{name: float(betas[i, b]) for b, name in enumerate(BETA_COLUMNS)},
            "cam_tx": float(camera.cam_t[i, 0]),
            "cam_ty": float(camera.cam_t[i, 1]),
            "cam_tz": float(camera.cam_t[i, 2]),
            "focal": float(camera.focal),
            "bbox_center_x": float(camera.bbox_center[i, 0]),
            "bbox_center_y": float(camera.bbox_center[i, 1]),
            "bbox_scale": float(camera.bbox_scale[i]),
            "yaw_deg": float(yaw[i]),
            "skin_tone": int(appearance_meta[i]["skin_tone"]),
            "num_visible": int((states_np[i] == KeypointState.VISIBLE).sum()),
            "num_occluded": int((states_np[i] == KeypointState.OCCLUDED).sum()),
            "num_absent": int((states_np[i] == KeypointState.ABSENT).sum()),
            "num_outside": int((states_np[i] == KeypointState.OUTSIDE).sum()),
            "coco_absent_mask": int(state_bitmask(states_np[i : i + 1], KeypointState.ABSENT)[0]),
            "coco_occluded_mask": int(state_bitmask(states_np[i : i + 1], KeypointState.OCCLUDED)[0]),
            "truncated": bool((states_np[i] == KeypointState.OUTSIDE).any()),
            "image_bytes": len(jpeg),
        }
        samples.append(Sample(key=key, jpeg=jpeg, labels=_encode_labels(labels), row=row))
    return samples
