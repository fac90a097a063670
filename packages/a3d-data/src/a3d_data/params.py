"""``params.yaml`` sections of the a3d-data stages, validated by pydantic before any work.

Each stage reads only its own sections through :func:`load_section`; a wrong type, an unknown key
or an out-of-range value raises :class:`ParamsError` naming the file and the dotted key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ParamsError(ValueError):
    """A ``params.yaml`` problem, worded for the person who edits the file."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


UnitInterval = Annotated[float, Field(ge=0.0, le=1.0)]


class Range(_Section):
    """A closed interval ``[low, high]`` of a phenotype control in [0, 1]."""

    low: UnitInterval
    high: UnitInterval

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


class HeightDistribution(_Section):
    """Standing heights (metres) of the sampled adults: normal per sex, blended by the gender
    control (0 = male, 1 = female in anny), clipped to ``[low, high]``."""

    male_mean: float = Field(1.76, ge=1.0, le=2.3)
    female_mean: float = Field(1.63, ge=1.0, le=2.3)
    std: float = Field(0.075, ge=0.0, le=0.5)
    low: float = Field(1.45, ge=1.0, le=2.3)
    high: float = Field(2.00, ge=1.0, le=2.3)

    @model_validator(mode="after")
    def _ordered(self) -> HeightDistribution:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


class BodyModelParams(_Section):
    """Section ``body_model``: which body model every stage loads.

    ``path`` empty means the bundled licence-free A3D model; otherwise a licensed SMPL ``.pkl``
    (neutral, female or male; chumpy objects are read without chumpy) or a model ``.npz`` in the
    A3D layout. Relative paths are taken from the repository root.
    """

    path: Path | None = None
    num_betas: int = Field(10, ge=1, le=300)


class ConvertBodyModelParams(_Section):
    """Section ``convert_body_model``: building the bundled model from ``anny`` (make body-model).

    Phenotype controls are anny's, in [0, 1]; anny's age anchors are 0.333 child, 0.667 young
    adult, 1.0 old, so the default keeps to adults. Standing height is not drawn as a control
    but in metres (``height_m``), and anny's height control is solved for it.
    """

    seed: int = 0
    num_samples: int = Field(400, ge=50, le=20000)
    num_betas: int = Field(10, ge=1, le=64)
    gender: Range = Range(low=0.0, high=1.0)
    age: Range = Range(low=0.6, high=0.9)
    height_m: HeightDistribution = HeightDistribution()
    weight: Range = Range(low=0.2, high=0.8)
    muscle: Range = Range(low=0.2, high=0.8)
    proportions: Range = Range(low=0.0, high=1.0)
    output: Path = Path("packages/a3d-data/src/a3d_data/body_model/assets/a3d_neutral.npz")


class AmputationFigureParams(_Section):
    """Section ``amputation_figure``: the labelled picture of the 13 AJAHR classes."""

    output: Path = Path("outputs/amputation_classes.png")
    panel_pixels: int = Field(320, ge=64, le=2048)
    columns: int = Field(5, ge=1, le=13)
    yaw_degrees: float = Field(20.0, ge=-180.0, le=180.0)


SectionT = TypeVar("SectionT", bound=BaseModel)


def read_params_file(path: Path) -> dict:
    """The whole ``params.yaml`` as a mapping; a missing or malformed file is a ParamsError."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ParamsError(f"{path}: cannot read the params file ({err.strerror})") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    return data


def load_section(path: Path, name: str, model: type[SectionT]) -> SectionT:
    """Validate section ``name`` of the params file at ``path`` against ``model``.

    A missing section takes the defaults in code. Errors name ``file: section.key``.
    """
    raw = read_params_file(path).get(name) or {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: {name}: expected a mapping, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        problems = []
        for item in err.errors():
            key = ".".join([name, *(str(part) for part in item["loc"])])
            shown = "" if item["type"] == "missing" else f" (got {item.get('input')!r})"
            problems.append(f"{path}: {key}: {item['msg']}{shown}")
        raise ParamsError("\n".join(problems)) from None
