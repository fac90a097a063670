"""The keypoint prior: BlazePose's keypoints for every crop, read by the loader and the detector."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from a3d_data.skeleton import BPAC_COCO_KEYPOINTS
from a3d_data.synthesis.schema import CROP_SIZE, KeypointState
from ajahr_model.data.a3d import A3DDataset, Augmentation, collate, index_samples
from ajahr_model.data.keypoint_prior import (
    PRIOR_FILE,
    KeypointPrior,
    PriorError,
    load_keypoint_prior,
)
from ajahr_model.networks.keypoints import (
    SKELETON_BONES,
    SKELETON_GEOMETRY_DIM,
    DetectorConfig,
    KeypointDetector,
    detect_batch,
    detector_loss,
    skeleton_geometry,
)
from ajahr_model.prior.run import (
    PYTHON_ENV,
    KeypointPriorError,
    KeypointPriorParams,
    blazepose_python,
    compute_keypoint_prior,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
BLAZEPOSE_PYTHON = REPO_ROOT / ".venv-blazepose" / "bin" / "python"


def _write_prior(path: Path, keys: list[str], keypoints: np.ndarray, found: np.ndarray) -> Path:
    confidence = np.where(found[:, None], 0.9, 0.0).astype(np.float32).repeat(17, axis=1)
    np.savez(
        path, keys=np.array(keys), keypoints=keypoints.astype(np.float32), confidence=confidence, found=found
    )
    return path


def _truth_as_prior(dataset_dir: Path, tmp_path: Path, split: str = "train") -> tuple[list, Path]:
    """A prior file whose keypoints are the labels' (found for every sample but the first)."""
    refs = index_samples(dataset_dir, split, ["amputee", "non_amputee"])
    plain = A3DDataset(refs)
    keypoints = np.stack([plain.load(i)[1]["keypoints2d"] for i in range(len(refs))])
    found = np.ones(len(refs), bool)
    found[0] = False
    keypoints[0] = 0.0
    return refs, _write_prior(tmp_path / PRIOR_FILE, [r.key for r in refs], keypoints, found)


def test_a_prior_file_round_trips_and_a_missing_key_is_named(tmp_path):
    path = _write_prior(tmp_path / "p.npz", ["a", "b"], np.ones((2, 17, 2)), np.array([True, False]))
    prior = load_keypoint_prior(path)
    keypoints, confidence = prior.lookup("a")
    assert keypoints.shape == (17, 2) and confidence.shape == (17,) and "b" in prior
    with pytest.raises(PriorError, match=r"p.npz: no prior keypoints for sample 'c'"):
        prior.lookup("c")
    with pytest.raises(PriorError, match=r"p.npz: 1 samples have no prior keypoints, e.g. \['c'\]"):
        prior.check_covers(["a", "c"])


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"keys": ["a"], "keypoints": np.zeros((1, 17, 2)), "confidence": np.zeros((1, 17))},
            "missing array",
        ),
        (
            {
                "keys": ["a"],
                "keypoints": np.zeros((1, 16, 2)),
                "confidence": np.zeros((1, 17)),
                "found": [True],
            },
            r"keypoints has shape \(1, 16, 2\), expected \(1, 17, 2\)",
        ),
        (
            {
                "keys": ["a"],
                "keypoints": np.zeros((1, 17, 2)),
                "confidence": np.full((1, 17), 2.0),
                "found": [True],
            },
            r"confidence in \[0, 1\]",
        ),
    ],
)
def test_a_bad_prior_file_names_the_file_and_the_field(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(PriorError, match=rf"bad.npz: .*{message}"):
        load_keypoint_prior(path)


def test_the_loader_carries_the_prior_and_the_augmentation_moves_it_with_the_labels(a3d_tiny, tmp_path):
    refs, path = _truth_as_prior(a3d_tiny, tmp_path)
    dataset = A3DDataset(refs, Augmentation(), seed=3, prior=load_keypoint_prior(path))
    for index in range(1, 5):
        sample = dataset[(index, index)]
        state = sample["keypoint_state"]
        inside = (state == KeypointState.VISIBLE) | (state == KeypointState.OCCLUDED)
        # A prior equal to the labels stays equal to them through scale, rotation and shift.
        torch.testing.assert_close(sample["prior_keypoints2d"][inside], sample["keypoints2d"][inside])
        kept = sample["prior_confidence"] > 0
        assert (
            (sample["prior_keypoints2d"][kept] >= 0) & (sample["prior_keypoints2d"][kept] < CROP_SIZE)
        ).all()
        assert (sample["prior_keypoints2d"][~kept] == 0).all()
    # Where the prior found nobody, nothing appears after augmentation.
    first = dataset[(0, 7)]
    assert (first["prior_confidence"] == 0).all() and (first["prior_keypoints2d"] == 0).all()
    batch = collate([dataset[i] for i in range(3)])
    assert batch["prior_keypoints2d"].shape == (3, 17, 2) and batch["prior_confidence"].shape == (3, 17)


def test_a_prior_made_from_another_dataset_is_refused(a3d_tiny, tmp_path):
    refs = index_samples(a3d_tiny, "train", ["amputee"])
    path = _write_prior(tmp_path / "other.npz", ["x"], np.zeros((1, 17, 2)), np.array([True]))
    with pytest.raises(PriorError, match="other.npz: .* rerun the keypoint_prior stage"):
        A3DDataset(refs, prior=load_keypoint_prior(path))


def test_a_detector_with_a_prior_takes_its_positions_and_locates_nothing_where_it_found_nobody():
    torch.manual_seed(0)
    detector = KeypointDetector(DetectorConfig(input_size=64, heatmap_sigma=1.0, prior_input=True)).eval()
    assert detector.backbone.conv1.in_channels == 3 + 17
    image = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8)
    prior = torch.rand(2, 17, 2) * 200 + 20
    confidence = torch.full((2, 17), 0.8)
    confidence[1] = 0.0  # nobody found in the second crop
    with torch.no_grad():
        det = detector(image, prior, confidence)
    torch.testing.assert_close(det.located[0], prior[0])
    assert (det.located[1] == 0).all()
    kept = det.confidence[0] >= 0.55
    torch.testing.assert_close(det.keypoints[0][kept], prior[0][kept])
    assert (det.keypoints[det.confidence < 0.55] == 0).all()
    # The states read the prior: moving it changes them.
    with torch.no_grad():
        moved = detector(image, prior.flip(1), confidence)
    assert not torch.allclose(moved.state_logits[0], det.state_logits[0])
    with pytest.raises(ValueError, match="reads a keypoint prior"):
        detector(image)
    with pytest.raises(ValueError, match="--keypoint-prior"):
        detect_batch(detector, {"image": image})


def test_the_stage_needs_the_blazepose_interpreter_and_says_where(tmp_path, monkeypatch):
    monkeypatch.setenv(PYTHON_ENV, str(tmp_path / "nowhere" / "python"))
    with pytest.raises(KeypointPriorError, match=rf"nowhere/python: no BlazePose interpreter .*{PYTHON_ENV}"):
        blazepose_python(REPO_ROOT)


@pytest.mark.skipif(not BLAZEPOSE_PYTHON.exists(), reason="make install makes .venv-blazepose")
def test_blazepose_finds_the_people_of_a3d_crops_and_writes_one_row_per_sample(a3d_tiny, tmp_path):
    summary = compute_keypoint_prior(
        a3d_tiny, tmp_path, KeypointPriorParams(workers=2), BLAZEPOSE_PYTHON, progress=False
    )
    prior: KeypointPrior = load_keypoint_prior(tmp_path)
    refs = [
        r
        for split in ("train", "val", "test")
        for r in index_samples(a3d_tiny, split, ["amputee", "non_amputee"])
    ]
    prior.check_covers([r.key for r in refs])
    assert summary["samples"] == len(prior) and summary["found_fraction"] >= 0.5
    found = prior.found
    assert (prior.confidence[~found] == 0).all() and (prior.confidence[found] > 0).all()
    # Found people lie in the crop, near their labelled keypoints (median over visible joints).
    dataset = A3DDataset(refs)
    errors = []
    for i, ref in enumerate(refs):
        keypoints, confidence = prior.lookup(ref.key)
        if confidence.max() == 0:
            continue
        labels = dataset.load(i)[1]
        visible = labels["keypoint_state"] == KeypointState.VISIBLE
        errors.extend(np.linalg.norm(keypoints - labels["keypoints2d"], axis=-1)[visible])
    assert np.median(errors) < 0.1 * CROP_SIZE
    assert not list(tmp_path.glob(".prior-*")) and not list(tmp_path.glob("*.tmp*"))


@pytest.mark.skipif(not BLAZEPOSE_PYTHON.exists(), reason="make install makes .venv-blazepose")
def test_blazepose_runs_on_crops_outside_a_dataset_in_their_order(a3d_tiny):
    from ajahr_model.prior.run import blazepose_on_crops

    dataset = A3DDataset(index_samples(a3d_tiny, "test", ["non_amputee"]))
    crops = np.stack([dataset[i]["image"].permute(1, 2, 0).numpy() for i in range(3)])
    blank = np.zeros((1, CROP_SIZE, CROP_SIZE, 3), np.uint8)
    keypoints, confidence = blazepose_on_crops(
        np.concatenate([crops, blank]), KeypointPriorParams(), BLAZEPOSE_PYTHON
    )
    assert keypoints.shape == (4, 17, 2) and confidence.shape == (4, 17)
    assert (confidence[3] == 0).all() and (keypoints[3] == 0).all()  # nobody in a black crop
    assert (confidence[:3].max(axis=1) > 0).sum() >= 2


def _skeleton(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three jittered standing people about 150 px tall (torso ~70 px) in a 256 px crop."""
    generator = torch.Generator().manual_seed(seed)
    template = torch.tensor(
        [[128, 50]] * 5 + [[148, 80], [108, 80], [155, 115], [101, 115], [158, 145], [98, 145],
         [140, 150], [116, 150], [142, 190], [114, 190], [143, 225], [113, 225]], dtype=torch.float32,
    )  # fmt: skip
    keypoints = template + torch.randn(3, 17, 2, generator=generator) * 6
    confidence = torch.rand(3, 17, generator=generator) * 0.5 + 0.5
    return keypoints, confidence


@settings(max_examples=25, deadline=None)
@given(
    scale=st.floats(0.3, 3.0),
    shift_x=st.floats(-50.0, 50.0),
    shift_y=st.floats(-50.0, 50.0),
    seed=st.integers(0, 1000),
)
def test_the_skeleton_geometry_does_not_change_when_the_person_is_moved_or_scaled(
    scale, shift_x, shift_y, seed
):
    keypoints, confidence = _skeleton(seed)
    moved = keypoints * scale + torch.tensor([shift_x, shift_y])
    base, after = skeleton_geometry(keypoints, confidence), skeleton_geometry(moved, confidence)
    assert base.shape == (3, SKELETON_GEOMETRY_DIM) and torch.isfinite(base).all()
    # Everything but the log torso length (the person's size in the crop) is shape alone.
    torch.testing.assert_close(base[:, :-2], after[:, :-2], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(
        after[:, -2] - base[:, -2], torch.full((3,), math.log(scale)), atol=1e-4, rtol=1e-4
    )


def test_a_missing_forearm_shows_in_the_skeleton_geometry_and_nobody_found_stays_finite():
    keypoints, confidence = _skeleton(0)
    tucked = keypoints.clone()
    tucked[:, 10] = tucked[:, 8]  # the right wrist put on the right elbow, as on a stump
    forearm = SKELETON_BONES.index((8, 10))
    assert (
        skeleton_geometry(tucked, confidence)[:, forearm]
        < skeleton_geometry(keypoints, confidence)[:, forearm]
    ).all()
    nobody = skeleton_geometry(torch.zeros(1, 17, 2), torch.zeros(1, 17))
    assert torch.isfinite(nobody).all() and nobody[0, -1] == 0.0  # the "found" feature


def test_the_skeleton_context_adds_to_the_absent_logits_of_bpacs_keypoints_and_is_trained_on_its_own():
    torch.manual_seed(0)
    config = DetectorConfig(input_size=64, heatmap_sigma=1.0, prior_input=True, skeleton_context=True)
    detector = KeypointDetector(config)
    image = torch.randint(0, 256, (4, 3, 256, 256), dtype=torch.uint8)
    keypoints, confidence = _skeleton(1)
    keypoints, confidence = torch.cat([keypoints, keypoints[:1]]), torch.cat([confidence, confidence[:1]])
    det = detector(image, keypoints, confidence)
    assert det.skeleton_logits.shape == (4, len(BPAC_COCO_KEYPOINTS))
    assert det.state_logits.shape == (4, 17, 3)
    # Face keypoints get no skeleton evidence: silencing the skeleton's last layer leaves them as they were.
    detector.eval()
    with torch.no_grad():
        before = detector(image, keypoints, confidence).state_logits
        detector.skeleton[-1].bias.add_(5.0)
        after = detector(image, keypoints, confidence).state_logits
    torch.testing.assert_close(after[:, :5], before[:, :5])
    torch.testing.assert_close(
        after[:, 5:, 2] - before[:, 5:, 2], torch.full((4, 12), 5.0), atol=1e-3, rtol=0
    )
    torch.testing.assert_close(after[:, :, :2], before[:, :, :2])
    # The loss has a term of its own for the skeleton's verdict.
    detector.train()
    state = torch.full((4, 17), KeypointState.VISIBLE)
    state[0, [6, 8, 10]] = KeypointState.ABSENT
    loss, parts = detector_loss(detector(image, keypoints, confidence), keypoints, state, 1.0, 1.0, 8.0)
    assert set(parts) == {"heatmap", "state", "skeleton"} and parts["skeleton"] > 0
    loss.backward()
    assert detector.skeleton[1].weight.grad.abs().sum() > 0


def test_the_skeleton_context_needs_the_prior():
    with pytest.raises(ValueError, match="skeleton_context .* prior_input"):
        DetectorConfig(skeleton_context=True)
