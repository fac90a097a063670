"""The camera fitted to the located keypoints (``model.camera_fit``, cpu profile) and the 2D
keypoint error of the evaluation: where the predicted body lands in the crop."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ajahr_model.evaluation.metrics import keypoint_error_px
from ajahr_model.networks.regressor import (
    CAMERA_FIT_MIN_KEYPOINTS,
    camera_translation,
    fit_camera_translation,
    project,
)
from ajahr_model.training.ajahr import build_ajahr
from tests.ajahr_model.conftest_ajahr import tiny_ajahr


def _body(seed: int, batch: int = 3) -> torch.Tensor:
    """Camera-frame points (B, 17, 3) of a body-sized cloud around the origin (metres)."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 17, 3, generator=generator) - 0.5) * torch.tensor([0.8, 1.7, 0.4])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    tx=st.floats(-0.5, 0.5),
    ty=st.floats(-0.5, 0.5),
    tz=st.floats(15.0, 120.0),
)
def test_the_fit_recovers_the_translation_that_made_the_keypoints(seed, tx, ty, tz):
    points = _body(seed)
    truth = torch.tensor([tx, ty, tz]).expand(3, 3)
    keypoints = project(points, truth)
    fitted, valid = fit_camera_translation(points, keypoints, torch.ones(3, 17, dtype=torch.bool))
    assert valid.all()
    torch.testing.assert_close(fitted[:, :2], truth[:, :2], atol=1e-4, rtol=0)
    torch.testing.assert_close(fitted[:, 2], truth[:, 2], atol=0, rtol=1e-4)


def test_only_usable_keypoints_count():
    points = _body(1, batch=2)
    truth = torch.tensor([[0.1, -0.2, 40.0], [-0.3, 0.1, 60.0]])
    keypoints = project(points, truth)
    usable = torch.zeros(2, 17, dtype=torch.bool)
    usable[:, :CAMERA_FIT_MIN_KEYPOINTS] = True
    keypoints[~usable] = 0.37  # garbage where not usable: a hallucinated or absent joint
    fitted, valid = fit_camera_translation(points, keypoints, usable)
    assert valid.all()
    torch.testing.assert_close(fitted, truth, atol=1e-3, rtol=1e-4)


def test_too_few_keypoints_or_a_degenerate_fit_is_not_used():
    points = _body(2, batch=3)
    truth = torch.tensor([0.0, 0.0, 40.0]).expand(3, 3)
    keypoints = project(points, truth)
    usable = torch.ones(3, 17, dtype=torch.bool)
    usable[0, CAMERA_FIT_MIN_KEYPOINTS - 1 :] = False  # one short of the minimum
    keypoints[1] = 0.1  # every keypoint on one spot: the body would be a point, infinitely far
    keypoints[2] *= 20  # the body twenty times its size: a depth of 2 m, in front of the crop
    fitted, valid = fit_camera_translation(points, keypoints, usable)
    assert valid.tolist() == [False, False, False]
    assert torch.isfinite(fitted[0]).all()


def test_a_fit_further_from_the_keypoints_than_the_baseline_is_not_used():
    points = _body(3, batch=1)
    truth = torch.tensor([[0.1, 0.2, 50.0]])
    keypoints = project(points, truth)
    keypoints[0, :3] += torch.tensor([0.3, -0.2])  # three joints drawn far from the body
    usable = torch.ones(1, 17, dtype=torch.bool)
    fitted, valid = fit_camera_translation(points, keypoints, usable)
    assert valid.item() and not torch.allclose(fitted, truth, atol=1e-6, rtol=0)  # pulled a little
    # The truth puts the other 14 exactly on their keypoints: its median error is zero.
    _, against_truth = fit_camera_translation(points, keypoints, usable, baseline=truth)
    assert not against_truth.item()
    _, against_nothing = fit_camera_translation(points, keypoints, usable, baseline=truth + 5.0)
    assert against_nothing.item()


def _model(tiny_tokenizers, body_model, **model):
    torch.manual_seed(0)
    settings_ = tiny_ajahr(model={"keypoint_query": True, **model}).settings(variant="hmr2")
    return build_ajahr(settings_, tiny_tokenizers, body_model).eval()


def test_the_model_puts_its_body_on_the_located_keypoints(tiny_tokenizers, body_model):
    """At initialisation the heads' residuals are zero, so the fitted camera alone places the
    body: keypoints made by projecting the model's own body under a translation give it back."""
    model = _model(tiny_tokenizers, body_model, camera_fit=True)
    image = torch.randint(0, 256, (2, 3, 256, 256), dtype=torch.uint8)
    nowhere = torch.zeros(2, 17, 2)
    with torch.no_grad():
        unplaced = model(image, nowhere)
        coco = model.body_model.coco_keypoints(unplaced.vertices)
    # Nothing located: the camera head's answer, as without the fit.
    torch.testing.assert_close(unplaced.cam_t, camera_translation(unplaced.camera))
    truth = torch.tensor([[0.2, -0.1, 35.0], [-0.1, 0.3, 55.0]])
    located = (project(coco, truth) + 0.5) * 256
    with torch.no_grad():
        placed = model(image, torch.ones(2, 17, 2), query_keypoints=located)
    torch.testing.assert_close(placed.cam_t, truth, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close((placed.keypoints2d + 0.5) * 256, located, atol=0.05, rtol=0)
    # Training keeps the camera head's answer (the 2D loss trains the head, not a fit).
    model.train()
    training = model(image, torch.ones(2, 17, 2), query_keypoints=located)
    torch.testing.assert_close(training.cam_t, camera_translation(training.camera))


def test_joints_called_absent_do_not_pull_the_fit(tiny_tokenizers, body_model):
    model = _model(tiny_tokenizers, body_model, camera_fit=True)
    image = torch.randint(0, 256, (1, 3, 256, 256), dtype=torch.uint8)
    with torch.no_grad():
        coco = model.body_model.coco_keypoints(model(image, torch.zeros(1, 17, 2)).vertices)
    truth = torch.tensor([[0.05, 0.1, 45.0]])
    located = (project(coco, truth) + 0.5) * 256
    located[0, 9:11] = torch.tensor([5.0, 250.0])  # wrists drawn far away (a hallucinated limb)
    keypoints = located.clone()
    keypoints[0, 9:11] = 0.0  # ... that the detector calls absent
    with torch.no_grad():
        out = model(image, keypoints, query_keypoints=located)
    torch.testing.assert_close(out.cam_t, truth, atol=1e-3, rtol=1e-4)


def test_the_2d_keypoint_error_is_in_pixels_over_visible_keypoints():
    pred = torch.zeros(2, 3, 2)  # the crop's centre, in normalised coordinates
    gt = torch.tensor([[[128.0, 131.0], [132.0, 128.0], [0.0, 0.0]], [[10.0, 10.0]] * 3])
    visible = torch.tensor([[True, True, False], [False, False, False]])
    error = keypoint_error_px(pred, gt, visible)
    assert error[0].item() == pytest.approx(3.5)  # (3 + 4) / 2; the hidden one ignored
    assert math.isnan(error[1].item())
