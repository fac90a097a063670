"""The 6D rotation form: round trips, and zeros (amputated joints) that stay zeros."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ajahr_model.tokenizer.rotation6d import (
    ZERO_NORM,
    matrix_to_rotation_6d,
    rotation_6d_to_matrix,
    zeroed_joints_6d,
)
from tests.conftest import random_rotmats


def test_rotation_to_6d_and_back_is_the_same_rotation():
    rotmats = random_rotmats(torch.Generator().manual_seed(0), 16, max_angle=math.pi)
    back = rotation_6d_to_matrix(matrix_to_rotation_6d(rotmats))
    assert torch.allclose(back, rotmats, atol=1e-5)


def test_any_6d_vector_gives_a_proper_rotation():
    sixd = torch.randn(500, 6, generator=torch.Generator().manual_seed(1)) * 3.0
    sixd = sixd[sixd.norm(dim=-1) >= ZERO_NORM]
    rotmats = rotation_6d_to_matrix(sixd)
    eye = torch.eye(3).expand_as(rotmats)
    assert torch.allclose(rotmats.transpose(-1, -2) @ rotmats, eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rotmats), torch.ones(len(sixd)), atol=1e-5)


def test_a_zero_matrix_is_six_zeros_and_six_zeros_is_a_zero_matrix_with_finite_gradients():
    assert torch.equal(matrix_to_rotation_6d(torch.zeros(2, 3, 3)), torch.zeros(2, 6))
    sixd = torch.zeros(4, 6, requires_grad=True)
    rotmats = rotation_6d_to_matrix(sixd)
    assert torch.equal(rotmats, torch.zeros(4, 3, 3))
    rotmats.sum().backward()
    assert torch.isfinite(sixd.grad).all()
    # Also with the threshold off: exact zeros must still come out as zeros, not NaN.
    assert torch.equal(rotation_6d_to_matrix(torch.zeros(3, 6), zero_below=0.0), torch.zeros(3, 3, 3))


def test_short_vectors_decode_to_zero_and_scale_does_not_change_a_rotation():
    rotmats = random_rotmats(torch.Generator().manual_seed(2), 8)
    sixd = matrix_to_rotation_6d(rotmats)  # length sqrt(2)
    short = sixd * (0.9 * ZERO_NORM / math.sqrt(2.0))
    long = sixd * (1.1 * ZERO_NORM / math.sqrt(2.0))
    assert torch.equal(rotation_6d_to_matrix(short), torch.zeros_like(rotmats))
    assert zeroed_joints_6d(short).all() and not zeroed_joints_6d(long).any()
    assert torch.allclose(rotation_6d_to_matrix(long), rotmats, atol=1e-5)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"\(\.\.\., 6\)"):
        rotation_6d_to_matrix(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        matrix_to_rotation_6d(torch.zeros(2, 3, 4))


_angle = st.floats(min_value=-math.pi, max_value=math.pi, allow_nan=False)
_axis = st.tuples(*[st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)] * 3).filter(
    lambda v: sum(c * c for c in v) > 1e-4
)


@given(axis=_axis, angle=_angle, scale=st.floats(min_value=0.6, max_value=50.0))
def test_any_rotation_survives_the_6d_round_trip_at_any_scale_above_the_zero_threshold(axis, angle, scale):
    from smplx.lbs import batch_rodrigues

    direction = torch.tensor(axis, dtype=torch.float64)
    rotmat = batch_rodrigues((direction / direction.norm() * angle)[None].float()).double()
    sixd = matrix_to_rotation_6d(rotmat) * scale  # length sqrt(2) * scale >= 0.85 > ZERO_NORM
    assert torch.allclose(rotation_6d_to_matrix(sixd), rotmat, atol=1e-6)
