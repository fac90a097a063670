"""The evaluation: metrics against hand-computed cases, the baselines as variants of one model,
the per-model evaluation files and the report."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from a3d_data.params import ParamsError, load_section
from ajahr_model.evaluation.metrics import (
    balanced_accuracy,
    binary_metrics,
    classification_metrics,
    confusion_matrix,
    lsp14_joints,
    mesh_errors,
    mpjpe_mm,
    mve_mm,
    pa_mpjpe_mm,
)
from ajahr_model.training.ajahr import build_ajahr, train_ajahr
from ajahr_model.training.losses import ajahr_loss
from ajahr_model.training.params import AJAHRSection
from tests.ajahr_model.conftest_ajahr import tiny_ajahr

# --- metrics -----------------------------------------------------------------------------------


def _skeleton(seed: int = 0, joints: int = 24) -> torch.Tensor:
    return torch.randn(1, joints, 3, generator=torch.Generator().manual_seed(seed)) * 0.3


def test_mpjpe_aligns_each_skeleton_at_the_mean_of_its_hips():
    gt = _skeleton()
    # A translated copy is perfect; moving one non-hip joint 24 mm costs 24/24 = 1 mm.
    assert mpjpe_mm(gt + torch.tensor([1.0, -2.0, 5.0]), gt).item() == pytest.approx(0.0, abs=1e-3)
    moved = gt.clone()
    moved[0, 15, 0] += 0.024
    assert mpjpe_mm(moved, gt).item() == pytest.approx(1.0, rel=1e-4)
    # Moving a hip 24 mm moves the pelvis 12 mm: 22 joints off by 12 mm, the moved hip by 12,
    # the other hip by 12: every joint 12 mm.
    hip = gt.clone()
    hip[0, 1, 0] += 0.024
    assert mpjpe_mm(hip, gt).item() == pytest.approx(12.0, rel=1e-4)


def test_mve_uses_the_pelvis_offsets_of_the_skeletons():
    gt_j, gt_v = _skeleton(1), _skeleton(2, joints=100)
    shift = torch.tensor([0.3, 0.1, -0.2])
    assert mve_mm(gt_v + shift, gt_v, gt_j + shift, gt_j).item() == pytest.approx(0.0, abs=1e-4)
    # Vertices 10 mm off with the skeleton in place: 10 mm.
    assert mve_mm(gt_v + torch.tensor([0.01, 0, 0]), gt_v, gt_j, gt_j).item() == pytest.approx(10.0, rel=1e-4)


@settings(max_examples=25, deadline=None)
@given(
    axis=st.tuples(*[st.floats(-1, 1)] * 3).filter(lambda a: sum(x * x for x in a) > 0.1),
    angle=st.floats(-math.pi, math.pi),
    scale=st.floats(0.3, 3.0),
    shift=st.tuples(*[st.floats(-2, 2)] * 3),
)
def test_pa_mpjpe_is_blind_to_a_similarity_transform(axis, angle, scale, shift):
    from scipy.spatial.transform import Rotation

    gt = _skeleton(3)
    rotation = torch.from_numpy(
        Rotation.from_rotvec(np.array(axis) / np.linalg.norm(axis) * angle).as_matrix()
    )
    pred = scale * gt @ rotation.float().T + torch.tensor(shift)
    assert pa_mpjpe_mm(pred, gt).item() < 1e-2


def test_pa_mpjpe_never_exceeds_mpjpe_and_does_not_mirror():
    gt = _skeleton(4)
    noisy = gt + 0.02 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(5))
    assert pa_mpjpe_mm(noisy, gt) <= mpjpe_mm(noisy, gt) + 1e-3
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0])  # a reflection is not a rotation
    assert pa_mpjpe_mm(mirrored, gt).item() > 1.0


def test_the_14_joint_protocol_needs_a_regressor_that_fits_the_mesh():
    vertices = torch.randn(2, 50, 3)
    regressor = torch.rand(17, 50)
    regressor /= regressor.sum(1, keepdim=True)
    joints = lsp14_joints(vertices, regressor)
    assert joints.shape == (2, 14, 3)
    errors = mesh_errors(None, None, vertices, vertices, h36m_regressor=regressor)
    assert errors.mpjpe.abs().max() < 1e-4 and errors.mve.abs().max() < 1e-4
    with pytest.raises(ValueError, match=r"\(17, 50\)"):
        lsp14_joints(vertices, torch.rand(17, 49))


def test_classifier_metrics_weight_precision_recall_and_f1_by_support():
    target = torch.tensor([0, 0, 0, 1])
    pred = torch.tensor([0, 0, 1, 1])
    figures = classification_metrics(pred, target, num_classes=2)
    # class 0: P 1, R 2/3, F1 0.8 (support 3); class 1: P 0.5, R 1, F1 2/3 (support 1).
    assert figures["accuracy"] == pytest.approx(0.75)
    assert figures["precision"] == pytest.approx((3 * 1.0 + 0.5) / 4)
    assert figures["recall"] == pytest.approx((3 * 2 / 3 + 1.0) / 4)
    assert figures["f1"] == pytest.approx((3 * 0.8 + 2 / 3) / 4)
    binary = binary_metrics(pred == 1, target == 1)
    assert (binary["precision"], binary["recall"]) == (0.5, 1.0)
    assert confusion_matrix(pred, target, 2) == [[2, 1], [0, 1]]
    with pytest.raises(ValueError, match="no samples"):
        classification_metrics(torch.tensor([]), torch.tensor([]), 2)


def test_balanced_accuracy_counts_false_calls_of_one_class_as_much_as_misses():
    # 2 amputees (classes 0 and 1) and 4 intact people (12): calling everyone intact is right
    # for 4 of 6 people but scores chance, 1/3, as the mean of the three classes' recalls.
    target = torch.tensor([0, 1, 12, 12, 12, 12])
    assert balanced_accuracy(torch.full((6,), 12), target) == pytest.approx(1 / 3)
    assert balanced_accuracy(target, target) == 1.0
    # A predicted id no person has (13: several limbs) is a wrong answer, not an error.
    assert balanced_accuracy(torch.tensor([0, 13, 12, 12, 13, 13]), target) == pytest.approx(
        (1 + 0 + 0.5) / 3
    )
    with pytest.raises(ValueError, match="no samples"):
        balanced_accuracy(torch.tensor([]), torch.tensor([]))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 12), min_size=1, max_size=40),
    st.integers(0, 12),
)
def test_a_verdict_that_ignores_the_image_scores_one_over_the_classes_present(labels, constant):
    target = torch.tensor(labels)
    classes = len(set(labels))
    score = balanced_accuracy(torch.full_like(target, constant), target)
    assert score == pytest.approx(1 / classes if constant in labels else 0.0)
    assert score * classes <= 1.0 + 1e-6  # never above chance


# --- the baselines are variants of one model ----------------------------------------------------


@pytest.fixture(scope="module")
def batch(a3d_tiny):
    from ajahr_model.data.a3d import A3DDataset, BalancedBatches, collate, index_samples

    dataset = A3DDataset(index_samples(a3d_tiny, "train", ["amputee", "non_amputee"]))
    sampler = BalancedBatches([r.part for r in dataset.refs], 4, 0.5, 0)
    return collate([dataset[i] for i in sampler.batch(0)])


def test_the_variants_resolve_over_the_profile_and_bad_ones_are_named(tmp_path):
    section = AJAHRSection()
    hmr2, tokenhmr = section.settings(variant="hmr2"), section.settings(variant="tokenhmr")
    assert hmr2.model.pose_head == "direct" and not hmr2.model.use_bpac and hmr2.tokenizers == ()
    assert tokenhmr.tokenizers == ("non_amputee",) and not tokenhmr.model.use_bpac
    assert section.settings(variant="no_second_cross_attention").model.second_cross_attention is False
    # The variants share the profile's budget: same steps, batch and backbone.
    ajahr = section.settings()
    assert (hmr2.train, hmr2.model.backbone) == (ajahr.train, ajahr.model.backbone)
    with pytest.raises(ValueError, match="variant 'nope'"):
        section.settings(variant="nope")
    path = tmp_path / "params.yaml"
    path.write_text(
        json.dumps(
            {"ajahr": {"variants": {"ajahr": {}, "bad": {"tokenizers": []}}, "trained_variants": ["ajahr"]}}
        )
    )
    with pytest.raises(ParamsError, match="variant 'bad'.*tokenizer"):
        load_section(path, "ajahr", AJAHRSection)


@pytest.mark.parametrize("variant", ["hmr2", "tokenhmr", "no_second_cross_attention"])
def test_a_baseline_runs_without_the_parts_it_leaves_out(variant, tiny_tokenizers, body_model, batch):
    settings_ = tiny_ajahr().settings(variant=variant)
    model = build_ajahr(settings_, tiny_tokenizers, body_model)
    assert set(model.tokenizers) == set(settings_.tokenizers)
    assert (model.bpac is None) == (not settings_.model.use_bpac)
    assert all(layer.bpac is None for layer in model.layers)  # no second cross-attention
    out = model(batch["image"], batch["keypoints2d"], batch["head_labels"], switching="ground_truth")
    assert out.joints.shape == (batch["image"].shape[0], 24, 3)
    if model.bpac is None:
        assert out.bpac is None and (out.predicted_head_labels() == 3).all()
    total, terms = ajahr_loss(out, batch, settings_.loss.weights())
    assert torch.isfinite(total) and (terms["bpac"] == 0) == (model.bpac is None)
    # Ground-truth zeroing still collapses the amputated limbs.
    assert torch.equal(out.zeroed.any(-1), (batch["head_labels"] != 3).any(-1))


def test_the_keypoint_token_joins_h_token_and_carries_gradient(tiny_tokenizers, body_model, batch):
    from ajahr_model.networks.regressor import keypoint_features

    features = keypoint_features(batch["keypoints2d"])
    assert features.shape == (batch["keypoints2d"].shape[0], 51)
    absent = batch["keypoints2d"].abs().sum(-1) == 0
    assert torch.equal(features.view(-1, 17, 3)[..., 2] == 0, absent)  # presence flag
    section = tiny_ajahr(model={"keypoint_token": True})
    model = build_ajahr(section.settings(), tiny_tokenizers, body_model)
    # The read-out and the cross-attention branches are zero at initialisation: no gradient yet.
    torch.nn.init.normal_(model.readout.weight, std=0.01)
    for layer in model.layers:
        torch.nn.init.normal_(layer.bpac.cross_attn.to_out.weight, std=0.01)
    out = model(batch["image"], batch["keypoints2d"], batch["head_labels"], switching="ground_truth")
    out.joints.square().sum().backward()
    assert model.keypoint_encoder[0].weight.grad.abs().sum() > 0
    # Not for the baselines (no BPAC-Net input) nor without the second cross-attention.
    for variant in ("hmr2", "tokenhmr", "no_second_cross_attention"):
        assert (
            build_ajahr(section.settings(variant=variant), tiny_tokenizers, body_model).keypoint_encoder
            is None
        )


def test_the_keypoint_query_lifts_the_keypoints_it_is_given_for_every_variant(
    tiny_tokenizers, body_model, batch
):
    section = tiny_ajahr(model={"keypoint_query": True})
    for variant in ("ajahr", "hmr2", "tokenhmr"):  # the baselines read the same keypoints
        model = build_ajahr(section.settings(variant=variant), tiny_tokenizers, body_model).eval()
        assert model.keypoint_query is not None
        torch.nn.init.normal_(model.readout.weight, std=0.01)  # zero at initialisation
        image, keypoints, labels = batch["image"], batch["keypoints2d"], batch["head_labels"]
        with torch.no_grad():
            same = model(image, keypoints, labels, switching="ground_truth")
            moved = model(image, keypoints, labels, switching="ground_truth", query_keypoints=keypoints + 40)
            again = model(image, keypoints, labels, switching="ground_truth", query_keypoints=keypoints)
        # Default: the query reads ``keypoints``; given others, the answer follows them.
        assert torch.equal(same.joints, again.joints)
        assert not torch.allclose(same.joints, moved.joints)
        if model.bpac is not None:  # BPAC-Net still reads ``keypoints``
            assert torch.equal(same.bpac.logits, moved.bpac.logits)
        model.train()
        out = model(image, keypoints, labels, switching="ground_truth")
        out.joints.square().sum().backward()
        assert model.keypoint_query[0].weight.grad.abs().sum() > 0
    assert build_ajahr(tiny_ajahr().settings(), tiny_tokenizers, body_model).keypoint_query is None


# --- evaluation files and the report -------------------------------------------------------------


@pytest.fixture(scope="module")
def evaluated(a3d_tiny, tiny_tokenizers, body_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluated")
    section = tiny_ajahr(train={"steps": 2})
    for variant in ("ajahr", "hmr2"):
        result = train_ajahr(
            section.settings(variant=variant),
            a3d_tiny,
            tiny_tokenizers,
            None,
            body_model,
            root / variant,
            progress=False,
            variant=variant,
            evaluation_dir=root / "evaluation" / variant,
        )
        assert result.complete
    return root


def test_each_model_writes_its_figures_and_one_row_per_test_sample(evaluated):
    metrics = json.loads((evaluated / "evaluation" / "ajahr" / "metrics.json").read_text())
    assert {"test", "per_class", "bpac", "checks", "train"} <= set(metrics)
    for part in ("amputee", "non_amputee", "occlusion"):
        entry = metrics["test"][part]
        assert set(entry) >= {"gt_labels", "predicted_labels", "mean_pose", "samples"}
        assert entry["gt_labels"]["pa_mpjpe"] <= entry["gt_labels"]["mpjpe"] + 1e-3
    for source in ("detected_keypoints", "true_keypoints"):
        for check in ("bpac_amputee_class_accuracy_over_chance", "bpac_balanced_class_accuracy_over_chance"):
            assert metrics["checks"][f"{check} ({source})"] >= 0.0
        verdict = metrics["checks"][f"bpac_amputee_or_not ({source})"]
        assert set(verdict) >= {"accuracy", "precision", "recall", "f1"}
    assert set(metrics["bpac"]["amputee"]["detected_keypoints"]["heads"]) == {
        "right_arm", "left_arm", "left_leg", "right_leg",
    }  # fmt: skip
    with np.load(evaluated / "evaluation" / "ajahr" / "predictions.npz") as table:
        assert len(table["key"]) == len(table["gt_labels_mpjpe"]) == 12  # 4 per test part
        assert table["rotmats"].shape == (12, 24, 3, 3)
    baseline = json.loads((evaluated / "evaluation" / "hmr2" / "metrics.json").read_text())
    assert "bpac" not in baseline  # no classifier, no classifier figures


def test_the_report_puts_the_models_side_by_side(evaluated, a3d_tiny, body_model, tmp_path):
    from ajahr_model.evaluation.report import ReportInputError, load_evaluations, write_report

    evaluations = load_evaluations(evaluated / "evaluation", ["ajahr", "hmr2"])
    facts = write_report(evaluations, a3d_tiny, body_model, tmp_path, render_backend="torch", profile="cpu")
    assert set(facts["models"]) == {"ajahr", "hmr2", "mean_pose"}
    findings = facts["findings"]
    # A win counts only beyond the 95% interval of the paired per-sample differences.
    gain, half = findings["amputee_mpjpe_gain_over_hmr2_mm"], findings["amputee_mpjpe_gain_over_hmr2_ci95_mm"]
    assert half > 0 and findings["beats_baselines_on_amputee"] == (gain - half > 0)
    markdown = (tmp_path / "report.md").read_text()
    assert "HMR2-style" in markdown and "AJAHR" in markdown and "Table" in markdown
    assert "<table" in (tmp_path / "report.html").read_text()
    for name in ("confusion.png", "per_class.png", "overlays.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG", name
    assert json.loads((tmp_path / "metrics.json").read_text()) == json.loads(json.dumps(facts))
    with pytest.raises(ReportInputError, match="tokenhmr"):
        load_evaluations(evaluated / "evaluation", ["tokenhmr"])


# --- real data: EMDB- and 3DPW-style sequences -------------------------------------------------


def _frames(folder, names, size=(320, 240)):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in names:
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / name)


def _yaw(degrees: float) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    extrinsics = np.eye(4)
    extrinsics[:3, :3] = Rotation.from_euler("y", degrees, degrees=True).as_matrix()
    return extrinsics


def _threedpw_fixture(tmp_path, frames=3):
    import pickle

    poses = np.zeros((frames, 72))
    poses[:, 3:] = 0.1  # a bent body, the world root upright
    poses2d = np.zeros((frames, 3, 18))
    poses2d[:, 0, :] = np.linspace(100, 200, 18)
    poses2d[:, 1, :] = np.linspace(50, 210, 18)
    poses2d[:, 2, :] = 1.0
    data = {
        "sequence": "downtown_test",
        "img_frame_ids": np.arange(frames),
        "poses": [poses],
        "betas": [np.zeros(10)],
        "cam_poses": np.stack([_yaw(30.0)] * frames),
        "campose_valid": [np.array([1] * (frames - 1) + [0])],  # the last frame is invalid
        "poses2d": [poses2d],
    }
    path = tmp_path / "downtown_test.pkl"
    path.write_bytes(pickle.dumps(data, protocol=2))
    _frames(tmp_path / "imageFiles" / "downtown_test", [f"image_{i:05d}.jpg" for i in range(frames)])
    return path, tmp_path / "imageFiles"


def _emdb_fixture(tmp_path, frames=3):
    import pickle

    data = {
        "name": "P0_00_test",
        "smpl": {
            "poses_root": np.zeros((frames, 3)),
            "poses_body": np.full((frames, 69), 0.05),
            "betas": np.zeros(10),
        },
        "camera": {"extrinsics": np.stack([_yaw(-45.0)] * frames)},
        "bboxes": {"bboxes": np.tile([60.0, 20.0, 180.0, 230.0], (frames, 1))},
        "good_frames_mask": np.array([True] * frames),
    }
    path = tmp_path / "P0_00_test_data.pkl"
    path.write_bytes(pickle.dumps(data))
    _frames(tmp_path / "images", [f"{i:05d}.jpg" for i in range(frames)])
    return path, tmp_path / "images"


def test_a_3dpw_sequence_reads_into_camera_frame_ground_truth(tmp_path):
    from scipy.spatial.transform import Rotation

    from ajahr_model.evaluation.real_data import read_sequence

    path, images = _threedpw_fixture(tmp_path)
    sequence = read_sequence("3dpw", path, images)
    assert len(sequence) == 2  # the invalid camera pose is dropped
    assert sequence.image_paths[0] == images / "downtown_test" / "image_00000.jpg"
    # An upright world root seen by a camera turned 30 degrees: the camera-frame root is that turn.
    turned = Rotation.from_rotvec(sequence.global_orient[0]).as_euler("yxz", degrees=True)
    assert turned[0] == pytest.approx(30.0, abs=1e-6)
    # The box holds every confident keypoint, padded: side = 1.2 x the larger extent (160 px).
    assert sequence.boxes[0].tolist() == pytest.approx([150.0, 130.0, 192.0])


def test_an_emdb_sequence_reads_and_bad_fields_are_named(tmp_path):
    import pickle

    from ajahr_model.evaluation.real_data import SequenceFileError, read_sequence

    path, images = _emdb_fixture(tmp_path)
    sequence = read_sequence("emdb", path, images)
    assert len(sequence) == 3 and sequence.body_pose.shape == (3, 69) and sequence.betas.shape == (3, 10)
    assert sequence.boxes[0].tolist() == pytest.approx([120.0, 125.0, 210.0 * 1.2])
    broken = pickle.loads(path.read_bytes())
    broken["smpl"]["poses_body"] = np.zeros((3, 60))
    path.write_bytes(pickle.dumps(broken))
    with pytest.raises(SequenceFileError, match=r"smpl\.poses_body.*\(3, 60\).*\(3, 69\)"):
        read_sequence("emdb", path, images)
    broken["smpl"]["poses_body"] = np.zeros((3, 69))
    del broken["camera"]
    path.write_bytes(pickle.dumps(broken))
    with pytest.raises(SequenceFileError, match="'camera.extrinsics' is missing"):
        read_sequence("emdb", path, images)
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(SequenceFileError, match="junk.pkl"):
        read_sequence("emdb", tmp_path / "junk.pkl", images)


def test_a_trained_model_is_evaluated_on_a_real_style_sequence(
    evaluated, tiny_tokenizers, body_model, tmp_path
):
    from PIL import Image

    from ajahr_model.evaluation.real_data import crop_person, evaluate_sequence, read_sequence
    from ajahr_model.networks.keypoints import DetectorConfig, KeypointDetector
    from ajahr_model.training.ajahr import load_trained_model

    crop = crop_person(Image.new("RGB", (100, 100), (255, 255, 255)), np.array([0.0, 0.0, 100.0]))
    assert crop.shape == (256, 256, 3) and crop[0, 0].sum() == 0 and crop[-1, -1].sum() == 3 * 255

    model = load_trained_model(evaluated / "ajahr" / "checkpoint.pt", tiny_tokenizers, body_model)
    detector = KeypointDetector(DetectorConfig(input_size=32, heatmap_sigma=1.0)).eval()
    path, images = _emdb_fixture(tmp_path)
    figures = evaluate_sequence(model, detector, read_sequence("emdb", path, images), batch_size=2)
    assert figures["frames"] == 3 and figures["joints"] == "smpl24"
    assert all(math.isfinite(figures[k]) and figures[k] > 0 for k in ("mve", "mpjpe", "pa_mpjpe"))
    assert figures["pa_mpjpe"] <= figures["mpjpe"] + 1e-3
