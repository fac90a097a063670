"""Pose sources: the procedural sampler and the readers of SMPL-parameter files, behind one interface.

Every source yields a PoseBatch of SMPL rotations in the body frame: y up, the body facing +z, its
left at +x; the root rotation is the body's orientation in a y-up world.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from scipy.spatial.transform import Rotation

from a3d_data.poses import (
    DEFAULT_FAMILY_WEIGHTS,
    FAMILY_NAMES,
    JOINT_LIMITS,
    AmassPoseSource,
    HmrFitPoseSource,
    PoseBatch,
    PoseFileError,
    PoseParams,
    ProceduralPoseSource,
    create_pose_source,
    find_pose_files,
    limit_excess,
)
from a3d_data.poses.figure import draw_pose_families
from a3d_data.poses.rotations import MIRRORED_JOINTS, axis_rotation, mirror_rotmats
from a3d_data.skeleton import SMPL_JOINT_NAMES

J = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}
LIMIT_TOLERANCE = 0.01  # degrees: float32 storage of the rotations


def _sample(count: int = 64, seed: int = 0, **params) -> PoseBatch:
    return ProceduralPoseSource(PoseParams(**params)).sample(count, np.random.default_rng(seed))


def _one_family(family: str, count: int, seed: int = 0, **params) -> PoseBatch:
    source = ProceduralPoseSource(PoseParams(**params))
    return source.sample_family(family, count, np.random.default_rng(seed))


def _body_up(batch: PoseBatch) -> np.ndarray:
    """(N, 3) the body's up axis (the pelvis's y) in the world."""
    return batch.rotmats[:, 0, :, 1].astype(np.float64)


# The procedural sampler.


def test_a_procedural_batch_holds_float32_rotations_names_and_ids_but_no_shapes():
    batch = _sample(10)
    assert len(batch) == 10
    assert batch.rotmats.shape == (10, 24, 3, 3) and batch.rotmats.dtype == np.float32
    assert batch.betas is None  # the synthesis samples shapes for procedural poses
    assert batch.pose_ids.shape == batch.activities.shape == (10,)
    assert set(batch.activities) <= set(FAMILY_NAMES)


@given(seed=st.integers(0, 2**32 - 1))
def test_every_rotation_is_proper_orthonormal(seed):
    rotmats = _sample(32, seed).rotmats.astype(np.float64)
    np.testing.assert_allclose(
        np.swapaxes(rotmats, -1, -2) @ rotmats, np.broadcast_to(np.eye(3), rotmats.shape), atol=1e-5
    )
    np.testing.assert_allclose(np.linalg.det(rotmats), 1.0, atol=1e-5)


@given(seed=st.integers(0, 2**32 - 1), jitter=st.floats(0.0, 20.0))
def test_every_joint_stays_within_its_anatomical_limits(seed, jitter):
    # Even the largest jitter is clipped back into the limits.
    batch = _sample(48, seed, jitter_degrees=jitter)
    assert limit_excess(batch.rotmats).max() < LIMIT_TOLERANCE


@pytest.mark.parametrize(
    "joint, axis, degrees",
    [
        ("L_knee", "x", -30.0),  # a knee bent forwards
        ("R_knee", "x", -30.0),
        ("L_elbow", "y", 40.0),  # the left elbow bent backwards (it flexes about -y)
        ("R_elbow", "y", -40.0),  # the right elbow mirrors it
        ("L_hip", "x", 60.0),  # the thigh swung far behind the body
        ("spine2", "x", -60.0),  # the chest bent far back
        ("neck", "y", 90.0),  # the head turned right round
        ("L_shoulder", "z", 180.0),  # the left arm pointing through the chest, to the right
    ],
)  # fmt: skip
def test_the_limits_reject_what_a_body_cannot_do(joint, axis, degrees):
    rotmats = np.tile(np.eye(3), (1, 24, 1, 1))
    assert limit_excess(rotmats).max() == 0.0  # the T-pose is inside every limit
    rotmats[0, J[joint]] = axis_rotation(axis, degrees)
    excess = limit_excess(rotmats)[0]
    assert excess[J[joint]] > 5.0
    assert np.delete(excess, J[joint]).max() == 0.0


@pytest.mark.parametrize(
    "joint, axis, degrees",
    [("L_knee", "x", 120.0), ("R_elbow", "y", 120.0), ("L_elbow", "y", -120.0),
     ("L_shoulder", "z", -80.0), ("R_shoulder", "z", 80.0), ("L_hip", "x", -90.0)],
)  # fmt: skip
def test_the_limits_allow_ordinary_motion(joint, axis, degrees):
    # Knees and elbows flex, the arms come down to the sides (about -z on the left, +z on the
    # right, from the T-pose's horizontal arms), the thigh comes up to sit.
    rotmats = np.tile(np.eye(3), (1, 24, 1, 1))
    rotmats[0, J[joint]] = axis_rotation(axis, degrees)
    assert limit_excess(rotmats).max() == 0.0


def test_the_right_side_limits_are_the_mirror_image_of_the_left():
    for joint, limit in enumerate(JOINT_LIMITS):
        if limit is not None:
            assert JOINT_LIMITS[MIRRORED_JOINTS[joint]].mirrored() == limit, SMPL_JOINT_NAMES[joint]


@given(seed=st.integers(0, 2**32 - 1))
def test_a_mirrored_pose_is_within_limits_and_mirroring_twice_is_the_identity(seed):
    rotmats = _sample(16, seed).rotmats.astype(np.float64)
    mirrored = mirror_rotmats(rotmats)
    assert limit_excess(mirrored).max() < LIMIT_TOLERANCE
    np.testing.assert_allclose(mirror_rotmats(mirrored), rotmats, atol=1e-12)


def test_the_same_seed_gives_the_same_poses_and_another_seed_other_poses():
    first, again, other = _sample(50, seed=7), _sample(50, seed=7), _sample(50, seed=8)
    np.testing.assert_array_equal(first.rotmats, again.rotmats)
    np.testing.assert_array_equal(first.pose_ids, again.pose_ids)
    np.testing.assert_array_equal(first.activities, again.activities)
    assert not np.array_equal(first.rotmats, other.rotmats)
    assert not set(first.pose_ids) & set(other.pose_ids)


def test_pose_ids_are_unique_and_name_the_family():
    batch = _sample(3000, seed=1)
    assert len(set(batch.pose_ids)) == len(batch)
    for pose_id, family in zip(batch.pose_ids, batch.activities, strict=True):
        assert re.fullmatch(rf"procedural/{family}/[0-9a-f]{{16}}", pose_id)


def test_every_family_appears_with_about_its_weight():
    count = 6000
    counts = Counter(_sample(count, seed=2).activities)
    total = sum(DEFAULT_FAMILY_WEIGHTS.values())
    assert set(counts) == set(FAMILY_NAMES)
    for family, weight in DEFAULT_FAMILY_WEIGHTS.items():
        p = weight / total
        # Four binomial standard deviations.
        assert abs(counts[family] / count - p) < 4 * np.sqrt(p * (1 - p) / count), family


def test_families_left_out_of_the_weights_never_appear():
    counts = Counter(_sample(500, family_weights={"walking": 3.0, "sitting": 1.0, "lying": 0.0}).activities)
    assert set(counts) == {"walking", "sitting"}
    assert counts["walking"] > 2 * counts["sitting"]


@pytest.mark.parametrize("yaw", [(30.0, 60.0), (-180.0, 180.0), (-10.0, -10.0)])
def test_the_body_is_turned_about_the_vertical_by_a_yaw_within_the_range(yaw):
    # The same seed with no yaw gives the same poses unturned: the difference is the yaw alone.
    turned = _sample(400, seed=3, yaw_degrees=yaw)
    unturned = _sample(400, seed=3, yaw_degrees=(0.0, 0.0))
    np.testing.assert_array_equal(turned.rotmats[:, 1:], unturned.rotmats[:, 1:])
    relative = turned.rotmats[:, 0].astype(np.float64) @ np.swapaxes(unturned.rotmats[:, 0], -1, -2)
    rotvec = Rotation.from_matrix(relative).as_rotvec(degrees=True)
    np.testing.assert_allclose(rotvec[:, [0, 2]], 0.0, atol=1e-3)  # about y only
    angle = rotvec[:, 1]
    if yaw == (-180.0, 180.0):
        assert angle.min() < -150.0 and angle.max() > 150.0  # the default is the full circle
    else:
        assert angle.min() >= yaw[0] - 1e-3 and angle.max() <= yaw[1] + 1e-3


def test_upright_families_stand_within_the_tilt_and_lying_bodies_are_horizontal():
    for family in ("standing", "walking", "waving", "reaching", "sitting"):
        up = _body_up(_one_family(family, 300, tilt_degrees=5.0))
        # The tilt (<= 5 degrees) and the family's own lean (a few degrees) from the vertical.
        assert np.degrees(np.arccos(up[:, 1])).max() < 25.0, family
    up = _body_up(_one_family("lying", 300, tilt_degrees=5.0))
    assert np.degrees(np.arcsin(np.abs(up[:, 1]))).max() < 25.0


def test_either_side_leads_equally_often():
    # The waving arm is raised; which arm that is must be a coin flip.
    batch = _one_family("waving", 1000, seed=4)
    rotmats = batch.rotmats.astype(np.float64)
    left_height = (rotmats[:, J["L_shoulder"]] @ [1.0, 0.0, 0.0])[:, 1]
    right_height = (rotmats[:, J["R_shoulder"]] @ [-1.0, 0.0, 0.0])[:, 1]
    assert np.all(np.abs(left_height - right_height) > 0.2)  # one arm is always clearly higher
    assert abs(np.mean(right_height > left_height) - 0.5) < 0.07


def _joints(body_model, batch: PoseBatch) -> np.ndarray:
    with torch.no_grad():
        return body_model.forward_rotmats(torch.as_tensor(batch.rotmats)).joints[:, :24].numpy()


def test_families_look_like_their_names_on_the_body_model(body_model):
    kwargs = {"count": 16, "yaw_degrees": (0.0, 0.0), "tilt_degrees": 0.0}
    # Standing: the head above the pelvis above the knees above the ankles.
    joints = _joints(body_model, _one_family("standing", **kwargs))
    heights = joints[..., 1]
    assert np.all(heights[:, J["head"]] > heights[:, J["pelvis"]] + 0.4)
    for side in "LR":
        assert np.all(heights[:, J["pelvis"]] > heights[:, J[f"{side}_knee"]] + 0.25)
        assert np.all(heights[:, J[f"{side}_knee"]] > heights[:, J[f"{side}_ankle"]] + 0.25)
    # Sitting on a chair: thighs about level, knees in front of the hips.
    joints = _joints(body_model, _one_family("sitting", **kwargs))
    for side in "LR":
        thigh = joints[:, J[f"{side}_knee"]] - joints[:, J[f"{side}_hip"]]
        assert np.all(np.abs(thigh[:, 1]) < 0.2) and np.all(thigh[:, 2] > 0.25)
    # Lying: the trunk is level and the body stretches along the floor.
    joints = _joints(body_model, _one_family("lying", **kwargs))
    assert np.all(np.abs(joints[:, J["neck"], 1] - joints[:, J["pelvis"], 1]) < 0.15)
    for side in "LR":
        along_floor = joints[:, J["head"], [0, 2]] - joints[:, J[f"{side}_ankle"], [0, 2]]
        assert np.all(np.linalg.norm(along_floor, axis=1) > 0.9)


def test_zero_poses_is_an_empty_batch():
    batch = _sample(0)
    assert len(batch) == 0 and batch.rotmats.shape == (0, 24, 3, 3)


def test_the_contact_sheet_is_written_as_a_png(body_model, tmp_path):
    output = tmp_path / "figures" / "poses.png"
    source = ProceduralPoseSource(PoseParams(family_weights={"sitting": 1.0, "waving": 1.0}))
    assert draw_pose_families(body_model, source, output, per_family=1) == output
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in output.parent.iterdir()] == ["poses.png"]  # no temporary left behind


def test_the_contact_sheet_also_draws_poses_from_files(body_model, tmp_path):
    _write_hmr(tmp_path / "fits.npz", count=3)
    output = draw_pose_families(
        body_model, HmrFitPoseSource([tmp_path / "fits.npz"]), tmp_path / "hmr.png", per_family=1
    )
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# Parameters.


def test_default_params_draw_procedural_poses_from_every_family():
    params = PoseParams()
    assert params.source == "procedural" and params.yaw_degrees == (-180.0, 180.0)
    assert set(params.family_weights) == set(FAMILY_NAMES)
    source = create_pose_source(params, Path("."))
    assert isinstance(source, ProceduralPoseSource) and source.families == FAMILY_NAMES


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"family_weights": {"dancing": 1.0}}, r"unknown families \['dancing'\]"),
        ({"family_weights": {"walking": -1.0, "sitting": 2.0}}, r"non-negative"),
        ({"family_weights": {"walking": 0.0}}, r"positive weight"),
        ({"yaw_degrees": (90.0, -90.0)}, r"low <= high"),
        ({"tilt_degrees": -1.0}, r"greater than or equal to 0"),
        ({"frame_stride": 0}, r"greater than or equal to 1"),
        ({"source": "amass"}, r"needs glob patterns in 'files'"),
        ({"source": "bvh", "files": ["*.bvh"]}, r"'procedural', 'amass' or 'hmr'"),
        ({"yaw": 3}, r"Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_bad_params_are_rejected_with_a_reason(fields, message):
    with pytest.raises(ValidationError, match=message):
        PoseParams(**fields)


def test_params_are_frozen():
    with pytest.raises(ValidationError):
        PoseParams().frame_stride = 3  # type: ignore[misc]


# AMASS files.


def _axis_angle(rng: np.random.Generator, frames: int, joints: int) -> np.ndarray:
    return rng.normal(scale=0.4, size=(frames, joints * 3))


def _write_amass(path: Path, frames: int = 12, layout: int = 156, seed: int = 0, **fields) -> dict:
    rng = np.random.default_rng(seed)
    data = {
        "poses": _axis_angle(rng, frames, layout // 3),
        "betas": rng.normal(size=16),
        "trans": rng.normal(size=(frames, 3)),
        "mocap_framerate": np.array(120.0),
    }
    data.update(fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{k: v for k, v in data.items() if v is not None})
    return data


def _rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix().reshape(*rotvec.shape[:-1], 3, 3)


def test_an_smplh_sequence_keeps_the_22_body_joints_and_leaves_smpls_hand_joints_identity(tmp_path):
    data = _write_amass(tmp_path / "CMU" / "01" / "01_01_poses.npz", frames=12, layout=156)
    source = AmassPoseSource([tmp_path / "CMU" / "01" / "01_01_poses.npz"], root=tmp_path, frame_stride=5)
    assert len(source) == 3  # frames 0, 5, 10
    batch = source.sample(200, np.random.default_rng(0))
    assert batch.rotmats.shape == (200, 24, 3, 3) and batch.rotmats.dtype == np.float32
    assert batch.betas.shape == (200, 10) and batch.betas.dtype == np.float32
    np.testing.assert_allclose(batch.betas, np.broadcast_to(data["betas"][:10], (200, 10)), rtol=1e-6)
    assert set(batch.pose_ids) == {f"amass/CMU/01/01_01_poses.npz#{f}" for f in (0, 5, 10)}
    assert set(batch.activities) == {"amass"}
    for rotmats, pose_id in zip(batch.rotmats, batch.pose_ids, strict=True):
        frame = int(pose_id.rsplit("#", 1)[1])
        expected = _rotvec_to_matrix(data["poses"][frame, 3:66].reshape(21, 3))
        np.testing.assert_allclose(rotmats[1:22], expected, atol=1e-6)
        np.testing.assert_allclose(rotmats[22:], np.broadcast_to(np.eye(3), (2, 3, 3)), atol=1e-7)


def test_an_smpl_sequence_keeps_all_24_joints(tmp_path):
    data = _write_amass(tmp_path / "seq.npz", frames=4, layout=72)
    batch = AmassPoseSource([tmp_path / "seq.npz"], root=tmp_path, frame_stride=1).sample(
        40, np.random.default_rng(0)
    )
    for rotmats, pose_id in zip(batch.rotmats, batch.pose_ids, strict=True):
        frame = int(pose_id.rsplit("#", 1)[1])
        expected = _rotvec_to_matrix(data["poses"][frame, 3:].reshape(23, 3))
        np.testing.assert_allclose(rotmats[1:], expected, atol=1e-6)


@pytest.mark.parametrize("heading", [0.0, 35.0, -120.0])
def test_an_upright_amass_body_in_its_z_up_world_is_upright_in_the_y_up_body_frame(tmp_path, heading):
    # In AMASS's z-up world an upright body facing its heading has the root R_z(heading) R_x(90).
    root = Rotation.from_matrix(axis_rotation("z", heading) @ axis_rotation("x", 90.0)).as_rotvec()
    poses = np.zeros((2, 156))
    poses[:, :3] = root
    _write_amass(tmp_path / "upright.npz", frames=2, poses=poses)
    batch = AmassPoseSource([tmp_path / "upright.npz"], frame_stride=1).sample(4, np.random.default_rng(0))
    # y up: the same heading is now a turn about y.
    np.testing.assert_allclose(
        batch.rotmats[:, 0], np.broadcast_to(axis_rotation("y", heading), (4, 3, 3)), atol=1e-6
    )


def test_frames_of_all_files_are_drawn_uniformly(tmp_path):
    _write_amass(tmp_path / "a.npz", frames=3, seed=1)
    _write_amass(tmp_path / "b" / "c.npz", frames=5, seed=2)
    source = create_pose_source(PoseParams(source="amass", files=["**/*.npz"], frame_stride=1), tmp_path)
    assert isinstance(source, AmassPoseSource) and len(source) == 8
    counts = Counter(source.sample(8000, np.random.default_rng(0)).pose_ids)
    assert len(counts) == 8
    assert all(abs(n - 1000) < 4 * np.sqrt(8000 * 1 / 8 * 7 / 8) for n in counts.values())


def test_file_betas_can_be_left_to_the_synthesis(tmp_path):
    _write_amass(tmp_path / "a.npz")
    params = PoseParams(source="amass", files=["a.npz"], use_file_betas=False)
    assert create_pose_source(params, tmp_path).sample(3, np.random.default_rng(0)).betas is None


def test_per_frame_amass_betas_are_cut_to_ten(tmp_path):
    betas = np.arange(12 * 16, dtype=float).reshape(12, 16)
    _write_amass(tmp_path / "a.npz", frames=12, betas=betas)
    batch = AmassPoseSource([tmp_path / "a.npz"], root=tmp_path, frame_stride=4).sample(
        30, np.random.default_rng(0)
    )
    frames = [int(i.rsplit("#", 1)[1]) for i in batch.pose_ids]
    np.testing.assert_array_equal(batch.betas, betas[frames, :10])


# HMR pseudo-ground-truth fits.


def _write_hmr(path: Path, count: int = 5, seed: int = 0, matrices: bool = False, **fields) -> dict:
    rng = np.random.default_rng(seed)
    data = {
        "global_orient": rng.normal(scale=0.5, size=(count, 3)),
        "body_pose": rng.normal(scale=0.4, size=(count, 69)),
        "betas": rng.normal(size=(count, 10)),
    }
    if matrices:
        data["global_orient"] = _rotvec_to_matrix(data["global_orient"])[:, None].astype(np.float32)
        data["body_pose"] = _rotvec_to_matrix(data["body_pose"].reshape(count, 23, 3)).astype(np.float32)
    data.update(fields)
    np.savez(path, **{k: v for k, v in data.items() if v is not None})
    return data


def test_an_hmr_root_turned_half_round_about_x_is_the_upright_body(tmp_path):
    # Camera frame: y down, z away from the camera. A body standing upright and facing the camera
    # has the root R_x(180): its up is the camera's -y, its front the camera's -z.
    orient = np.tile([np.pi, 0.0, 0.0], (3, 1))
    _write_hmr(tmp_path / "fits.npz", count=3, global_orient=orient)
    batch = HmrFitPoseSource([tmp_path / "fits.npz"], root=tmp_path).sample(6, np.random.default_rng(0))
    np.testing.assert_allclose(batch.rotmats[:, 0], np.broadcast_to(np.eye(3), (6, 3, 3)), atol=1e-6)
    assert set(batch.activities) == {"hmr"} and batch.pose_ids[0].startswith("hmr/fits.npz#")


@pytest.mark.parametrize("orient_shape", [(4, 3, 3), (4, 1, 3, 3)])
def test_hmr_rotation_matrices_and_axis_angles_give_the_same_poses(tmp_path, orient_shape):
    data = _write_hmr(tmp_path / "aa.npz", count=4, seed=5)
    as_matrices = _write_hmr(tmp_path / "rm.npz", count=4, seed=5, matrices=True)
    np.savez(
        tmp_path / "rm.npz",
        global_orient=as_matrices["global_orient"].reshape(orient_shape),
        body_pose=as_matrices["body_pose"],
        betas=as_matrices["betas"],
    )
    a = HmrFitPoseSource([tmp_path / "aa.npz"]).rotmats
    b = HmrFitPoseSource([tmp_path / "rm.npz"]).rotmats
    np.testing.assert_allclose(a, b, atol=1e-6)
    flip = axis_rotation("x", 180.0)
    np.testing.assert_allclose(a[:, 0], flip @ _rotvec_to_matrix(data["global_orient"]), atol=1e-6)
    np.testing.assert_allclose(a[:, 1:], _rotvec_to_matrix(data["body_pose"].reshape(4, 23, 3)), atol=1e-6)


# Bad pose files: a PoseFileError names the file, the field and what was expected.


def _bad_amass(tmp_path: Path, **fields) -> tuple[type, Path]:
    path = tmp_path / "bad.npz"
    _write_amass(path, frames=6, **fields)
    return AmassPoseSource, path


def _bad_hmr(tmp_path: Path, **fields) -> tuple[type, Path]:
    path = tmp_path / "bad.npz"
    _write_hmr(path, count=4, **fields)
    return HmrFitPoseSource, path


NAN_POSES = np.zeros((6, 156))
NAN_POSES[2, 7] = np.nan
INF_BETAS = np.zeros((4, 10))
INF_BETAS[1, 1] = np.inf
NOT_ROTATIONS = np.tile(2.0 * np.eye(3), (4, 23, 1, 1))


@pytest.mark.parametrize(
    "make, fields, field, expected",
    [
        (_bad_amass, {"poses": None}, "poses", "missing"),
        (_bad_amass, {"betas": None}, "betas", "missing"),
        (_bad_amass, {"poses": np.zeros((6, 70))}, "poses", r"expected shape \(T, 72\) SMPL or \(T, 156\)"),
        (_bad_amass, {"poses": np.zeros((0, 156))}, "poses", r"T >= 1, got \(0, 156\)"),
        (_bad_amass, {"betas": np.zeros(8)}, "betas", r"B >= 10, got \(8,\)"),
        (_bad_amass, {"poses": NAN_POSES}, "poses", r"NaN or infinite values \(first at index \[2, 7\]\)"),
        (_bad_amass, {"poses": np.array(["a", "b"])}, "poses", "expected numbers"),
        (_bad_hmr, {"global_orient": None}, "global_orient", "missing"),
        (_bad_hmr, {"body_pose": None}, "body_pose", "missing"),
        (_bad_hmr, {"betas": None}, "betas", "missing"),
        (_bad_hmr, {"body_pose": np.zeros((4, 66))}, "body_pose", r"expected shape \(4, 69\)"),
        (_bad_hmr, {"body_pose": np.zeros((3, 69))}, "body_pose", r"got \(3, 69\)"),
        (_bad_hmr, {"global_orient": np.zeros((4, 2, 3))}, "global_orient", r"expected shape"),
        (_bad_hmr, {"betas": np.zeros((4, 5))}, "betas", r"expected shape \(4, B\) with B >= 10"),
        (_bad_hmr, {"betas": INF_BETAS}, "betas", "NaN or infinite"),
        (_bad_hmr, {"body_pose": NOT_ROTATIONS}, "body_pose", "expected rotation matrices"),
    ],
)  # fmt: skip
def test_a_bad_field_names_the_file_and_the_field(tmp_path, make, fields, field, expected):
    source_class, path = make(tmp_path, **fields)
    with pytest.raises(PoseFileError, match=rf"{re.escape(str(path))}: field '{field}'.*{expected}"):
        source_class([path])


@pytest.mark.parametrize(
    "write",
    [
        lambda path: path.write_bytes(b"this is not a zip archive"),
        lambda path: path.write_bytes(b"PK\x03\x04 truncated"),
        lambda path: np.save(path.with_suffix(".npy"), np.zeros(3)) or path.with_suffix(".npy").rename(path),
        lambda path: None,  # no file at all
    ],
    ids=["garbage", "truncated-zip", "npy-not-npz", "missing"],
)
@pytest.mark.parametrize("source_class", [AmassPoseSource, HmrFitPoseSource])
def test_an_unreadable_file_is_named(tmp_path, write, source_class):
    path = tmp_path / "poses.npz"
    write(path)
    with pytest.raises(PoseFileError, match=re.escape(str(path))):
        source_class([path])


def test_patterns_that_match_no_file_are_an_error_naming_the_folder(tmp_path):
    with pytest.raises(PoseFileError, match=rf"{re.escape(str(tmp_path))}: no file matches .*'\*\*/\*.npz'"):
        find_pose_files(tmp_path, ["**/*.npz"])
    with pytest.raises(PoseFileError, match="no file matches"):
        create_pose_source(PoseParams(source="hmr", files=["fits/*.npz"]), tmp_path)
