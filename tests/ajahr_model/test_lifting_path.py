"""The cpu profile's lifting path in the regressor: the orientation from regressed root joints,
token logits that start on the rest pose, cross-attention branches that start at zero, and
BPAC-Net's own learning rate."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ajahr_model.networks.regressor import AJAHR, root_frame
from ajahr_model.tokenizer.rotation6d import matrix_to_rotation_6d, rotation_6d_to_matrix
from ajahr_model.training.ajahr import build_ajahr, parameter_groups
from ajahr_model.training.losses import LossWeights, ajahr_loss
from tests.ajahr_model.conftest_ajahr import tiny_ajahr

LIFTING = {"keypoint_query": True, "root_from_joints": True, "rest_pose_token_logit": 6.0}


def _rotation(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return rotation_6d_to_matrix(torch.randn(1, 6, generator=generator))[0]


def _lifting_model(tiny_tokenizers, body_model, mean_root: torch.Tensor | None = None, **model) -> AJAHR:
    torch.manual_seed(0)
    settings = tiny_ajahr(model={**LIFTING, **model}).settings()
    root6d = matrix_to_rotation_6d(mean_root) if mean_root is not None else None
    return build_ajahr(settings, tiny_tokenizers, body_model, root6d).eval()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_the_root_frame_turns_with_the_body(seed):
    joints = torch.randn(24, 3, generator=torch.Generator().manual_seed(seed + 1))
    rotation = _rotation(seed)
    torch.testing.assert_close(
        root_frame(joints @ rotation.T), rotation @ root_frame(joints), atol=1e-5, rtol=0
    )
    frame = root_frame(joints)
    torch.testing.assert_close(frame.T @ frame, torch.eye(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(frame), torch.tensor(1.0), atol=1e-5, rtol=0)


def _inputs(batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (batch, 3, 256, 256), generator=generator, dtype=torch.uint8)
    return image, torch.rand(batch, 17, 2, generator=generator) * 200 + 20


def test_the_orientation_starts_at_the_mean_and_follows_the_regressed_root_joints(
    tiny_tokenizers, body_model
):
    mean_root = _rotation(3)
    model = _lifting_model(tiny_tokenizers, body_model, mean_root)
    image, keypoints = _inputs()
    with torch.no_grad():
        out = model(image, keypoints)
    assert out.joints_direct.shape == (2, 24, 3)
    torch.testing.assert_close(out.rotmats[:, 0], mean_root.expand(2, 3, 3), atol=1e-5, rtol=0)
    # Regressed joints of the rest skeleton under another rotation give that rotation.
    turn = _rotation(7)
    model.mean_joints_direct.copy_(model.mean_joints_direct @ (turn @ mean_root.T).T)
    with torch.no_grad():
        turned = model(image, keypoints)
    torch.testing.assert_close(turned.rotmats[:, 0], turn.expand(2, 3, 3), atol=1e-5, rtol=0)


def test_the_regressed_joints_have_their_own_l1_term(tiny_tokenizers, body_model):
    model = _lifting_model(tiny_tokenizers, body_model)
    image, keypoints = _inputs()
    out = model(image, keypoints)
    gt_joints = out.joints.detach() + 0.1
    batch = {
        "rotmats": out.rotmats.detach(),
        "betas": out.betas.detach(),
        "joints3d_smpl": gt_joints,
        "keypoints2d": torch.zeros(2, 17, 2),
        "keypoint_state": torch.zeros(2, 17, dtype=torch.long),
        "head_labels": torch.zeros(2, 4, dtype=torch.long),
    }
    _, terms = ajahr_loss(out, batch, LossWeights(joints_direct=1.0))
    expected = (out.joints_direct - (gt_joints - gt_joints[:, :1])).abs().sum(-1).mean()
    torch.testing.assert_close(terms["joints_direct"], expected.detach())
    total, _ = ajahr_loss(out, batch, LossWeights(joints_direct=1.0))
    total.backward()
    assert model.joints_head.weight.grad.abs().sum() > 0


def test_the_token_logits_start_on_the_rest_pose_tokens(tiny_tokenizers, body_model):
    model = _lifting_model(tiny_tokenizers, body_model)
    identity = matrix_to_rotation_6d(torch.eye(3)).repeat(1, 21, 1)
    for role, tokenizer in model.tokenizers.items():
        bias = model.classifier.token_bias[role]
        assert bias.shape == (tokenizer.config.tokens, tokenizer.config.codebook_size)
        assert bias.argmax(-1).tolist() == tokenizer.encode(identity)[0].tolist()
        assert set(bias.unique().tolist()) == {0.0, 6.0}
    off = _lifting_model(tiny_tokenizers, body_model, rest_pose_token_logit=0.0)
    assert all((b == 0).all() for b in off.classifier.token_bias.values())


def test_at_initialisation_the_image_does_not_move_the_query(tiny_tokenizers, body_model):
    """Cross-attention branches start at zero: an untrained backbone's tokens cannot drown the
    keypoints the query starts from. Without BPAC-Net, two images give the same answer at first."""
    torch.manual_seed(0)
    model = build_ajahr(
        tiny_ajahr(model=LIFTING).settings(variant="hmr2"), tiny_tokenizers, body_model
    ).eval()
    image, keypoints = _inputs()
    with torch.no_grad():
        a = model(image, keypoints)
        b = model(image.flip(-1), keypoints)
        moved = model(image, keypoints.flip(1))
    torch.testing.assert_close(a.joints_direct, b.joints_direct)
    torch.testing.assert_close(a.vertices, b.vertices)
    # The keypoints reach the heads only once they are trained; the query itself moves at once.
    assert model.keypoint_query is not None and not torch.equal(
        model.keypoint_query(torch.zeros(1, 51)), model.keypoint_query(torch.ones(1, 51))
    )
    assert moved.vertices.shape == a.vertices.shape


def test_at_initialisation_the_second_cross_attention_block_is_the_identity(tiny_tokenizers, body_model):
    """AJAHR starts as the decoder without BPAC-Net's block: whatever h_token says (here, two
    different keypoint sets for BPAC-Net), the decoder's answer is the same until it learns."""
    torch.manual_seed(0)
    model = build_ajahr(tiny_ajahr(model=LIFTING).settings(), tiny_tokenizers, body_model).eval()
    image, keypoints = _inputs()
    intact = torch.full((2, 4), 3)  # the same tokenizer for both, whatever BPAC-Net says
    with torch.no_grad():
        a = model(image, keypoints, intact, switching="ground_truth", query_keypoints=keypoints)
        b = model(
            image, torch.zeros_like(keypoints), intact, switching="ground_truth", query_keypoints=keypoints
        )
        layer = model.layers[0]
        x = torch.randn(2, 3, layer.bpac.norm_self.normalized_shape[0])
        h_token = torch.randn(2, 1, layer.bpac.norm_context.normalized_shape[0])
        torch.testing.assert_close(layer.bpac(x, h_token), x)
    assert not torch.equal(a.bpac.h_token, b.bpac.h_token)
    torch.testing.assert_close(a.vertices, b.vertices)
    torch.testing.assert_close(a.joints_direct, b.joints_direct)


def test_bpac_net_can_learn_at_its_own_rate(tiny_tokenizers, body_model):
    settings = tiny_ajahr(optim={"lr": 5e-4, "bpac_lr": 1e-3}).settings()
    model = build_ajahr(settings, tiny_tokenizers, body_model)
    groups = parameter_groups(model, settings)
    bpac_ids = {id(p) for p in model.bpac.parameters()}
    assert len(groups) == 2 and groups[1]["lr"] == 1e-3 and "lr" not in groups[0]
    assert {id(p) for p in groups[1]["params"]} == bpac_ids
    assert not bpac_ids & {id(p) for p in groups[0]["params"]}
    assert len(parameter_groups(model, tiny_ajahr().settings())) == 1
