"""Parameters of the pose sources: one self-contained pydantic model, embeddable in any section."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from a3d_data.poses.families import DEFAULT_FAMILY_WEIGHTS, FAMILY_NAMES


class PoseParams(BaseModel):
    """Where the poses of the synthesis come from, and how they are drawn.

    ``source``: ``procedural`` (activity families, no data needed), ``amass`` (AMASS-layout npz
    files, z-up world) or ``hmr`` (pseudo-ground-truth fits of an HMR method, camera frame).
    ``files`` are glob patterns (``**`` allowed) relative to the root folder given to
    :func:`a3d_data.poses.create_pose_source`; they are needed for ``amass`` and ``hmr``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["procedural", "amass", "hmr"] = "procedural"
    files: list[str] = []
    # AMASS is recorded at 60-120 fps; consecutive frames are near duplicates. Not used for hmr,
    # where every fit belongs to its own image.
    frame_stride: int = Field(10, ge=1, le=10000)
    # False (default): drop the files' shape coefficients, which belong to the model the files
    # were fitted with (a licensed SMPL), and let the synthesis sample shapes for its own body
    # model. True when the body model is the one the files were fitted with.
    use_file_betas: bool = False
    # Procedural only. A family left out has weight 0.
    family_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_FAMILY_WEIGHTS))
    # Heading of the body about the vertical, drawn uniformly in [low, high] degrees.
    yaw_degrees: tuple[float, float] = (-180.0, 180.0)
    # Largest tilt of the body off its family's orientation (upright, or horizontal for lying),
    # about a random horizontal axis, degrees.
    tilt_degrees: float = Field(5.0, ge=0.0, le=45.0)
    # Standard deviation of the noise added to every joint angle before clipping, degrees.
    jitter_degrees: float = Field(3.0, ge=0.0, le=20.0)

    @field_validator("family_weights")
    @classmethod
    def _known_families(cls, weights: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(weights) - set(FAMILY_NAMES))
        if unknown:
            raise ValueError(f"unknown families {unknown}; known: {list(FAMILY_NAMES)}")
        negative = sorted(name for name, weight in weights.items() if not weight >= 0.0)
        if negative:
            raise ValueError(f"weights must be non-negative, got { ({n: weights[n] for n in negative}) }")
        if not sum(weights.values()) > 0.0:
            raise ValueError("at least one family needs a positive weight")
        return weights

    @field_validator("yaw_degrees")
    @classmethod
    def _yaw_range(cls, yaw: tuple[float, float]) -> tuple[float, float]:
        low, high = yaw
        if not -360.0 <= low <= high <= 360.0:
            raise ValueError(f"expected -360 <= low <= high <= 360, got {yaw}")
        return yaw

    @model_validator(mode="after")
    def _files_for_file_sources(self) -> PoseParams:
        if self.source != "procedural" and not self.files:
            raise ValueError(f"source {self.source!r} needs glob patterns in 'files'")
        return self
