"""Sections ``synthesize`` and ``contact_sheet`` of params.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from a3d_data.appearance.params import AppearanceParams
from a3d_data.poses.params import PoseParams
from a3d_data.synthesis.schema import SPLITS


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PartSizes(_Section):
    """Samples of each part in one split."""

    amputee: int = Field(0, ge=0)
    non_amputee: int = Field(0, ge=0)
    occlusion: int = Field(0, ge=0)


class CameraParams(_Section):
    """Framing in the 256-pixel crop (scale and translation augmentation, truncation)."""

    fill_range: tuple[float, float] = (0.6, 0.95)
    centre_jitter: float = Field(0.04, ge=0.0, le=0.5)
    truncation_probability: float = Field(0.08, ge=0.0, le=1.0)
    truncation_shift: tuple[float, float] = (0.15, 0.35)

    @field_validator("fill_range", "truncation_shift")
    @classmethod
    def _ordered_positive(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1] <= 2:
            raise ValueError(f"expected 0 < low <= high <= 2, got {list(value)}")
        return value


class SynthesizeParams(_Section):
    """Section ``synthesize``: the A3D dataset the ``synthesize`` stage writes."""

    seed: int = 0
    output: Path = Path("data/a3d")
    sizes: dict[str, PartSizes] = {
        "train": PartSizes(amputee=2000, non_amputee=2000),
        "val": PartSizes(amputee=250, non_amputee=250, occlusion=100),
        "test": PartSizes(amputee=500, non_amputee=500, occlusion=300),
    }
    shard_size: int = Field(500, ge=1, le=100_000)
    batch_size: int = Field(32, ge=1, le=4096)
    workers: int = Field(2, ge=1, le=256)
    threads_per_worker: int = Field(1, ge=1, le=64)
    # None: local processes. "local": an in-process Dask LocalCluster with ``workers`` workers.
    # Otherwise the address of a Dask scheduler (tcp://host:8786).
    dask_scheduler: str | None = None
    render_backend: Literal["auto", "opengl", "torch"] = "auto"
    device: str = "cpu"
    jpeg_quality: int = Field(90, ge=30, le=100)
    beta_std: float = Field(1.0, ge=0.0, le=3.0)
    beta_clip: float = Field(2.5, gt=0.0, le=5.0)
    camera: CameraParams = CameraParams()
    poses: PoseParams = PoseParams()
    appearance: AppearanceParams = AppearanceParams()

    @field_validator("device")
    @classmethod
    def _torch_device(cls, value: str) -> str:
        import torch

        try:
            torch.device(value)
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"not a torch device name ({err}); expected e.g. cpu, cuda, cuda:0") from None
        return value

    @model_validator(mode="after")
    def _known_splits(self) -> SynthesizeParams:
        unknown = set(self.sizes) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown splits {sorted(unknown)}: expected some of {list(SPLITS)}")
        test = self.sizes.get("test")
        if test is not None and min(test.amputee, test.non_amputee, test.occlusion) == 0:
            raise ValueError("the test split needs amputee, non_amputee and occlusion samples")
        return self


class ContactSheetParams(_Section):
    """Section ``contact_sheet``: the picture of samples of every class and of the occlusion set."""

    output: Path = Path("outputs/a3d_contact_sheet.png")
    split: Literal["train", "val", "test"] = "test"
    per_class: int = Field(2, ge=1, le=10)
    occlusion_samples: int = Field(4, ge=0, le=40)
