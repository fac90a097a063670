"""Section ``validate_a3d`` of ``params.yaml``: what the A3D validation gate accepts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from a3d_data.synthesis.schema import FOCAL_LENGTH, PARTS, SPLITS


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Interval(_Section):
    """A closed interval ``[low, high]``."""

    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Interval:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


def _all_parts_in_test() -> dict[str, tuple[str, ...]]:
    # The occlusion part (the 3DOH50K analog) is an evaluation set, so only the test split must hold it.
    return {"train": ("amputee", "non_amputee"), "val": ("amputee", "non_amputee"), "test": PARTS}


class ValidateA3DParams(_Section):
    """Section ``validate_a3d``: tolerances and ranges of the A3D validation gate.

    Shares are computed per split. ``amputee_fraction`` is the share of the amputee part among
    the A3D proper parts (amputee + non_amputee); the occlusion part is left out because it is a
    separate evaluation set. ``class_balance_tolerance`` bounds, for each amputee class 0-11,
    ``|share - 1/12| / (1/12)`` where ``share`` is the class's share of the split's amputee samples.
    """

    amputee_fraction: float = Field(0.5, ge=0.0, le=1.0)
    amputee_fraction_tolerance: float = Field(0.05, ge=0.0, le=1.0)
    class_balance_tolerance: float = Field(0.25, ge=0.0)
    min_samples_per_split: int = Field(12, ge=1)
    required_parts: dict[str, tuple[str, ...]] = Field(default_factory=_all_parts_in_test)

    # Every label file is always read (they are small); JPEG decoding is the slow part.
    check_images: Literal["all", "sample"] = "all"
    images_per_shard: int = Field(32, ge=1)  # with check_images: sample
    sample_seed: int = 0
    max_failed_images: int = Field(0, ge=0)

    # Value ranges: metres for the camera, pixels for the focal length, bbox side / 200 for the scale.
    cam_tz: Interval = Interval(low=1.0, high=200.0)
    cam_xy_abs_max: float = Field(20.0, gt=0.0)
    bbox_scale: Interval = Interval(low=0.1, high=2.56)
    beta_abs_max: float = Field(5.0, gt=0.0)
    focal: float = Field(FOCAL_LENGTH, gt=0.0)

    # How many failing rows each expectation shows in the report.
    examples_per_expectation: int = Field(10, ge=1, le=1000)

    @model_validator(mode="after")
    def _known_splits_and_parts(self) -> ValidateA3DParams:
        for split, parts in self.required_parts.items():
            if split not in SPLITS:
                raise ValueError(f"required_parts: unknown split {split!r} (expected one of {list(SPLITS)})")
            unknown = sorted(set(parts) - set(PARTS))
            if unknown:
                raise ValueError(
                    f"required_parts.{split}: unknown parts {unknown} (expected from {list(PARTS)})"
                )
        return self
