"""BPAC-Net, the AJAHR regressor and the keypoint detector: shapes, switching, zeroing, weights."""

from __future__ import annotations

import pytest
import timm
import torch

from a3d_data.amputation.labels import head_labels_from_classes
from a3d_data.synthesis.schema import KeypointState
from ajahr_model.networks.bpac import BPACNet, WeightsFileError, gaussian_heatmaps, load_imagenet_weights
from ajahr_model.networks.keypoints import DetectorConfig, JointState, KeypointDetector, joint_state_targets
from ajahr_model.networks.regressor import AJAHR, DecoderLayer
from ajahr_model.training.ajahr import build_ajahr
from tests.ajahr_model.conftest_ajahr import tiny_ajahr


def _inputs(batch: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (batch, 3, 256, 256), generator=g, dtype=torch.uint8)
    keypoints = torch.rand(batch, 17, 2, generator=g) * 256
    return image, keypoints


def test_heatmaps_peak_at_the_keypoint_and_an_absent_one_sits_in_the_corner():
    keypoints = torch.tensor([[[128.0, 64.0], [0.0, 0.0]]])
    maps = gaussian_heatmaps(keypoints, size=64, sigma=1.0)
    assert maps.shape == (1, 2, 64, 64)
    row, col = divmod(int(maps[0, 0].argmax()), 64)
    assert (col, row) in {(31, 15), (32, 16), (31, 16), (32, 15)}  # pixel 128,64 of 256 -> 32,16 of 64
    assert maps[0, 1].argmax() == 0 and maps.max() <= 1.0


def test_bpac_net_is_a_15_channel_resnet34_with_cbam_in_all_16_blocks_and_four_heads():
    model = BPACNet(h_token_dim=48, input_size=64, heatmap_sigma=1.0)
    assert model.backbone.conv1.in_channels == 15
    blocks = [b for layer in (model.backbone.layer1, model.backbone.layer2, model.backbone.layer3,
                              model.backbone.layer4) for b in layer]  # fmt: skip
    assert len(blocks) == 16 and all(type(b.se).__name__ == "CbamModule" for b in blocks)
    out = model(*_inputs())
    assert out.logits.shape == (3, 4, 4) and out.h_token.shape == (3, 48) and out.feature.shape == (3, 512)
    assert out.head_labels().shape == (3, 4) and out.is_amputee().dtype == torch.bool


def test_imagenet_weights_load_into_the_backbone_with_heatmap_filters_at_zero(tmp_path):
    plain = timm.create_model("resnet34", pretrained=False, num_classes=1000)
    path = tmp_path / "resnet34_imagenet.pth"
    torch.save(plain.state_dict(), path)
    model = BPACNet(h_token_dim=8, input_size=32)
    left = load_imagenet_weights(model, path)
    conv1 = model.backbone.conv1.weight
    assert torch.equal(conv1[:, :3], plain.conv1.weight) and (conv1[:, 3:] == 0).all()
    assert torch.equal(model.backbone.layer3[2].conv2.weight, plain.layer3[2].conv2.weight)
    assert left and all(".se." in name for name in left)  # only CBAM stays initialised


def test_a_weights_file_that_does_not_fit_names_the_file_and_the_field(tmp_path):
    path = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(64, 1, 7, 7)}, path)
    with pytest.raises(WeightsFileError, match=r"wrong.pth: field 'conv1.weight'"):
        load_imagenet_weights(BPACNet(8, 32), path)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsFileError, match="junk.pth: cannot read"):
        load_imagenet_weights(BPACNet(8, 32), tmp_path / "junk.pth")


@pytest.fixture(scope="module")
def ajahr(tiny_tokenizers, body_model) -> AJAHR:
    torch.manual_seed(0)
    return build_ajahr(tiny_ajahr().settings(), tiny_tokenizers, body_model).eval()


def test_the_regressor_predicts_a_mesh_camera_and_keypoints_with_their_shapes(ajahr):
    image, keypoints = _inputs()
    with torch.no_grad():
        out = ajahr(image, keypoints)
    assert out.rotmats.shape == (3, 24, 3, 3) and out.betas.shape == (3, 10)
    assert out.vertices.shape == (3, ajahr.body_model.num_vertices, 3) and out.joints.shape == (3, 24, 3)
    assert out.keypoints2d.shape == (3, 17, 2) and out.camera.shape == (3, 3)
    assert out.token_logits["amputee"].shape == (3, 20, 32)
    # HMR2 camera: depth 2 f / (256 s) for focal 5000.
    torch.testing.assert_close(out.cam_t[:, 2], 2 * 5000 / (256 * out.camera[:, 0] + 1e-9))


def test_ground_truth_switching_picks_the_amputee_tokenizer_for_amputees_only(ajahr):
    image, keypoints = _inputs(batch=2)
    labels = head_labels_from_classes(torch.tensor([1, 12]))
    with torch.no_grad():
        out = ajahr(image, keypoints, labels, switching="ground_truth")
        per_role = {
            role: tokenizer.decode_latent(out.token_logits[role].softmax(-1) @ tokenizer.codebook)
            for role, tokenizer in ajahr.tokenizers.items()
        }
    assert out.amputee_tokenizer.tolist() == [True, False]
    sixd = torch.cat([per_role["amputee"][:1], per_role["non_amputee"][1:]])
    assert torch.allclose(ajahr.decode_pose(out.token_logits, out.amputee_tokenizer), sixd)


def test_predicted_switching_follows_bpac_nets_verdict(ajahr):
    """At inference the tokenizer and the zeroing follow BPAC-Net's heads: made to say "none" on
    every head, the non-amputee tokenizer and no zeroing; made to say "right elbow", the amputee
    tokenizer and joints 19, 21, 23 zeroed, whatever the ground-truth labels say."""
    import copy

    model = copy.deepcopy(ajahr)
    image, keypoints = _inputs(batch=2)
    labels = head_labels_from_classes(torch.tensor([1, 12]))
    with torch.no_grad():
        for head in model.bpac.heads:
            head.weight.zero_()
            head.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 5.0]))  # "none" on every head
        intact = model(image, keypoints, labels, switching="predicted")
        model.bpac.heads[0].bias.copy_(torch.tensor([0.0, 5.0, 0.0, 0.0]))  # right arm, elbow level
        elbow = model(image, keypoints, labels, switching="predicted")
    assert intact.amputee_tokenizer.tolist() == [False, False] and not intact.zeroed.any()
    assert elbow.amputee_tokenizer.tolist() == [True, True]
    assert [row.nonzero().flatten().tolist() for row in elbow.zeroed] == [[19, 21, 23], [19, 21, 23]]


def test_amputated_joints_are_zero_matrices_and_the_limb_collapses_onto_its_joint(ajahr):
    image, keypoints = _inputs(batch=1)
    labels = head_labels_from_classes(torch.tensor([1]))  # right elbow: 19, 21, 23 zeroed
    with torch.no_grad():
        out = ajahr(image, keypoints, labels, switching="ground_truth")
    assert out.zeroed[0].nonzero().flatten().tolist() == [19, 21, 23]
    # The left hand (22) is a residual-head rotation: not amputated, so a proper rotation.
    assert (out.rotmats[0, [19, 21, 23]] == 0).all()
    torch.testing.assert_close(torch.linalg.det(out.rotmats[0, 22]), torch.tensor(1.0))
    for child in (21, 23):
        torch.testing.assert_close(out.joints[0, child], out.joints[0, 19], atol=1e-5, rtol=0)


def test_only_the_labels_amputate_a_joint_the_tokenizer_decodes_short(ajahr, monkeypatch):
    # A soft codebook lookup can decode a present joint as a short 6D vector, which the tokenizer
    # alone would read as "amputated". The regressor keeps it a rotation (with a gradient), and
    # zeroes exactly the joints of the label.
    image, keypoints = _inputs(batch=2)
    short = torch.zeros(2, 21, 6)
    short[..., 0] = short[..., 4] = 0.05  # a small identity in 6D
    short.requires_grad_(True)
    monkeypatch.setattr(ajahr, "decode_pose", lambda logits, amputee: short)
    labels = head_labels_from_classes(torch.tensor([1, 12]))  # right elbow; intact
    out = ajahr(image, keypoints, labels, switching="ground_truth")
    body = out.rotmats[:, 1:22]
    zeroed_body = out.zeroed[:, 1:22]
    assert (body[zeroed_body] == 0).all()
    torch.testing.assert_close(torch.linalg.det(body[~zeroed_body]), torch.ones(int((~zeroed_body).sum())))
    out.joints[1].sum().backward()
    assert short.grad[1].abs().sum() > 0


def test_ground_truth_zeroing_applies_to_a_predicted_switch(ajahr):
    image, keypoints = _inputs(batch=2)
    labels = head_labels_from_classes(torch.tensor([8, 12]))
    with torch.no_grad():
        out = ajahr(image, keypoints, labels, switching="predicted", zeroing="ground_truth")
    assert out.zeroed[0].nonzero().flatten().tolist() == [1, 4, 7, 10] and not out.zeroed[1].any()
    with pytest.raises(ValueError, match="needs head_labels"):
        ajahr(image, keypoints, switching="ground_truth")


def test_the_second_cross_attention_reads_h_token_and_can_be_switched_off(tiny_tokenizers, body_model):
    torch.manual_seed(0)
    with_second = build_ajahr(tiny_ajahr().settings(), tiny_tokenizers, body_model)
    without = build_ajahr(
        tiny_ajahr(model={"second_cross_attention": False}).settings(), tiny_tokenizers, body_model
    )
    assert all(isinstance(layer, DecoderLayer) and layer.bpac is not None for layer in with_second.layers)
    assert all(layer.bpac is None for layer in without.layers)
    layer = with_second.layers[0]
    x = torch.randn(2, 1, 32)
    tokens = torch.randn(2, 12, 192)
    h_tokens = torch.randn(2, 1, 192), torch.randn(2, 1, 192)
    # Cross-attention branches start at zero (zero-initialised output projections) ...
    torch.testing.assert_close(layer(x, tokens, h_tokens[0]), layer(x, tokens, h_tokens[1]))
    # ... and read h_token once trained.
    torch.nn.init.normal_(layer.bpac.cross_attn.to_out.weight)
    assert not torch.allclose(layer(x, tokens, h_tokens[0]), layer(x, tokens, h_tokens[1]))


def test_the_tokenizers_and_body_model_are_frozen_and_outside_the_trained_parameters(ajahr):
    names = [name for name, _ in ajahr.trainable_named_parameters()]
    assert names and not any(n.startswith(("tokenizers.", "body_model.")) for n in names)
    assert not any(p.requires_grad for p in ajahr.tokenizers.parameters())
    ajahr.train()
    assert not any(t.training for t in ajahr.tokenizers.values())
    ajahr.eval()


def test_partial_finetuning_trains_only_the_last_blocks(tiny_tokenizers, body_model):
    model = build_ajahr(
        tiny_ajahr(finetune={"mode": "partial", "vit_blocks": 2}).settings(), tiny_tokenizers, body_model
    )
    blocks = list(model.backbone.blocks)
    assert not any(p.requires_grad for b in blocks[:-2] for p in b.parameters())
    assert all(p.requires_grad for b in blocks[-2:] for p in b.parameters())
    assert model.backbone.patch_embed.proj.weight.requires_grad and model.bpac.align.weight.requires_grad


def test_the_detector_gives_keypoints_states_and_zeroes_unconfident_joints():
    model = KeypointDetector(DetectorConfig(input_size=64, heatmap_sigma=1.0)).eval()
    image, _ = _inputs(batch=2)
    with torch.no_grad():
        det = model(image)
    assert det.heatmaps.shape == (2, 17, 16, 16) and det.state_logits.shape == (2, 17, 3)
    assert det.keypoints.shape == (2, 17, 2) and ((det.confidence >= 0) & (det.confidence <= 1)).all()
    assert (det.keypoints[det.confidence < 0.55] == 0).all()
    states = torch.tensor(
        [KeypointState.VISIBLE, KeypointState.OCCLUDED, KeypointState.ABSENT, KeypointState.OUTSIDE]
    )
    assert joint_state_targets(states).tolist() == [JointState.PRESENT, JointState.OCCLUDED, JointState.ABSENT,
                                                    JointState.OCCLUDED]  # fmt: skip
