"""Shared fixtures: the bundled body model is loaded once per test session."""

from __future__ import annotations

import pytest
import torch
from hypothesis import settings

from a3d_data.body_model import BodyModel, load_body_model

# Property tests pose a 13.7k-vertex mesh per example; keep them few and deadline-free.
settings.register_profile("project", max_examples=25, deadline=None, derandomize=True)
settings.load_profile("project")


@pytest.fixture(scope="session")
def body_model() -> BodyModel:
    return load_body_model()


def random_rotmats(generator: torch.Generator, batch: int, max_angle: float = 1.2) -> torch.Tensor:
    """Random local rotations (batch, 24, 3, 3): random axes, angles up to ``max_angle`` rad."""
    from smplx.lbs import batch_rodrigues

    axis_angle = torch.randn(batch * 24, 3, generator=generator)
    axis_angle = axis_angle / axis_angle.norm(dim=1, keepdim=True)
    axis_angle = axis_angle * torch.rand(batch * 24, 1, generator=generator) * max_angle
    return batch_rodrigues(axis_angle).reshape(batch, 24, 3, 3)
