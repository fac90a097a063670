"""Parameters of the appearance of synthetic A3D images: skin, clothing, lights, backgrounds, jitter.

Self-contained pydantic models (frozen, unknown keys rejected) so that the ``synthesize`` section
of ``params.yaml`` can embed :class:`AppearanceParams` as one sub-section. Every default here is
the value the project uses; ``params.yaml`` only needs the keys it changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Weight = Annotated[float, Field(ge=0.0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FloatRange(_Section):
    """A closed interval ``[low, high]``; values are drawn uniformly from it."""

    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


class _Weights(_Section):
    """Relative weights of named choices (need not sum to 1; at least one must be positive)."""

    @model_validator(mode="after")
    def _some_positive(self) -> _Weights:
        if sum(self.as_dict().values()) <= 0.0:
            raise ValueError("at least one weight must be positive")
        return self

    def as_dict(self) -> dict[str, float]:
        """Choice name -> weight, in field order."""
        return {name: float(getattr(self, name)) for name in type(self).model_fields}


class SleeveWeights(_Weights):
    """How far the top covers the arms: sleeveless, to mid upper arm, to the wrist."""

    none: Weight = 0.2
    short: Weight = 0.45
    long: Weight = 0.35


class LegWeights(_Weights):
    """How far the bottom covers the legs: mid thigh, just below the knee, to the ankle."""

    shorts: Weight = 0.2
    knee: Weight = 0.15
    long: Weight = 0.65


class HairWeights(_Weights):
    """Painted hair on the head: none (bald or shaved), short (crown and back), long (to the nape)."""

    none: Weight = 0.15
    short: Weight = 0.55
    long: Weight = 0.3


class PatternWeights(_Weights):
    """Fabric patterns, computed per vertex from rest-pose coordinates."""

    solid: Weight = 0.4
    horizontal_stripes: Weight = 0.12
    vertical_stripes: Weight = 0.12
    checks: Weight = 0.12
    dots: Weight = 0.12
    noise: Weight = 0.12


class SkinParams(_Section):
    """Skin tones: a palette entry (uniform unless ``tone_weights`` is given), then jitter.

    ``lightness_jitter`` is the standard deviation of a log brightness factor; ``channel_jitter``
    the standard deviation of an independent shift per sRGB channel (undertone), in [0, 1] units.
    """

    tone_weights: list[Weight] | None = None
    lightness_jitter: float = Field(0.04, ge=0.0, le=0.5)
    channel_jitter: float = Field(0.012, ge=0.0, le=0.2)


class ClothingParams(_Section):
    """Garment styles, patterns and colours.

    Lengths are fractions of the limb (shoulder to wrist, hip to ankle); ``length_jitter`` moves
    each garment's hem by up to that fraction. ``pattern_period_m`` is the repeat of stripes,
    checks and dots on the rest-pose body, in metres (a 1.7 m body is ~200 px tall in a 256 px
    crop, so 0.06-0.14 m is 7-16 px); the bundled model's torso has ~2 cm edges and per-vertex
    colour blurs each stripe edge over one edge, so periods under ~5 cm fade to a flat mix.
    """

    sleeves: SleeveWeights = SleeveWeights()
    legs: LegWeights = LegWeights()
    hair: HairWeights = HairWeights()
    shoes_probability: Probability = 0.85
    top_patterns: PatternWeights = PatternWeights()
    bottom_patterns: PatternWeights = PatternWeights(
        solid=0.7, horizontal_stripes=0.03, vertical_stripes=0.06, checks=0.08, dots=0.03, noise=0.1
    )
    pattern_period_m: FloatRange = FloatRange(low=0.06, high=0.14)
    length_jitter: float = Field(0.05, ge=0.0, le=0.3)
    colour_jitter: float = Field(0.04, ge=0.0, le=0.3)
    min_pattern_contrast: float = Field(0.2, ge=0.0, le=0.8)


class LightingParams(_Section):
    """One directional light plus ambient, in the OpenCV camera frame (x right, y down, z forward).

    The light comes from ``elevation_deg`` above the horizontal and ``azimuth_deg`` to the side of
    the camera (0 = from straight behind the camera, positive = from the image's right). Its
    colour is a black body of ``temperature_k`` kelvin, mixed with white by ``tint_strength``
    (cameras white-balance most of a light's tint away).
    """

    elevation_deg: FloatRange = FloatRange(low=5.0, high=60.0)
    azimuth_deg: FloatRange = FloatRange(low=-60.0, high=60.0)
    ambient: FloatRange = FloatRange(low=0.3, high=0.55)
    diffuse: FloatRange = FloatRange(low=0.45, high=0.8)
    temperature_k: FloatRange = FloatRange(low=3500.0, high=9000.0)
    tint_strength: Probability = 0.6

    @model_validator(mode="after")
    def _physical(self) -> LightingParams:
        if not -90.0 <= self.elevation_deg.low <= self.elevation_deg.high <= 90.0:
            raise ValueError("elevation_deg must lie in [-90, 90]")
        if not -180.0 <= self.azimuth_deg.low <= self.azimuth_deg.high <= 180.0:
            raise ValueError("azimuth_deg must lie in [-180, 180]")
        if self.ambient.low < 0.0 or self.diffuse.low < 0.0:
            raise ValueError("ambient and diffuse intensities must be non-negative")
        if not 1000.0 <= self.temperature_k.low <= self.temperature_k.high <= 40000.0:
            raise ValueError("temperature_k must lie in [1000, 40000]")
        return self


class BackgroundKindWeights(_Weights):
    """How often a background is a shipped photograph or a procedural image."""

    photo: Weight = 0.6
    procedural: Weight = 0.4


class ProceduralWeights(_Weights):
    """Kinds of procedural background."""

    gradient: Weight = 1.0
    clouds: Weight = 1.0
    colour_field: Weight = 1.0
    tiles: Weight = 1.0
    floor: Weight = 1.0


class SplitFractions(_Section):
    """Share of each source's photographed scenes assigned to each split."""

    train: Probability = 0.7
    val: Probability = 0.15
    test: Probability = 0.15

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitFractions:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split fractions must sum to 1, got {total}")
        return self


class BackgroundParams(_Section):
    """The background catalogue and how crops are taken from it.

    Photographs are split by scene: each source's scenes are ordered by a hash of
    ``split_salt`` and the scene name, then dealt out by ``split_fractions`` (at least one scene
    per split for a source of three or more); changing the salt reshuffles them. Procedural
    seeds of split k are drawn from
    ``[k * procedural_seeds_per_split, (k + 1) * procedural_seeds_per_split)``, so no procedural
    background is shared between splits. ``crop_fraction`` is the side of the square crop as a
    fraction of the photo's shorter side; photos are downscaled on load so that their longer
    side is at most ``max_photo_side`` pixels.
    """

    kinds: BackgroundKindWeights = BackgroundKindWeights()
    procedural: ProceduralWeights = ProceduralWeights()
    use_skimage: bool = True
    mate_folder: Path | None = Path("/usr/share/backgrounds/mate/nature")
    split_fractions: SplitFractions = SplitFractions()
    split_salt: str = "a3d-backgrounds"
    procedural_seeds_per_split: int = Field(1_000_000, ge=1)
    crop_fraction: FloatRange = FloatRange(low=0.35, high=1.0)
    max_photo_side: int = Field(1024, ge=64, le=8192)

    @model_validator(mode="after")
    def _crop_in_unit_interval(self) -> BackgroundParams:
        if not 0.0 < self.crop_fraction.low <= self.crop_fraction.high <= 1.0:
            raise ValueError("crop_fraction must lie in (0, 1]")
        return self


class ColourJitterParams(_Section):
    """Photometric jitter of the final images; each factor is drawn from ``1 +- range``.

    ``hue`` is in turns (0.03 = 11 degrees). Blur and noise are applied with their probability;
    ``noise_sigma`` is in uint8 grey levels. ``jpeg_probability`` re-encodes an image as JPEG with
    a quality drawn from ``jpeg_quality`` (the softness and blocking of web photos).
    """

    brightness: float = Field(0.2, ge=0.0, le=1.0)
    contrast: float = Field(0.2, ge=0.0, le=1.0)
    saturation: float = Field(0.25, ge=0.0, le=1.0)
    hue: float = Field(0.03, ge=0.0, le=0.5)
    blur_probability: Probability = 0.2
    blur_sigma: FloatRange = FloatRange(low=0.3, high=1.0)
    noise_probability: Probability = 0.3
    noise_sigma: FloatRange = FloatRange(low=1.0, high=4.0)
    jpeg_probability: Probability = 0.3
    jpeg_quality: FloatRange = FloatRange(low=40.0, high=90.0)

    @model_validator(mode="after")
    def _valid_ranges(self) -> ColourJitterParams:
        if self.blur_sigma.low < 0.0 or self.noise_sigma.low < 0.0:
            raise ValueError("blur_sigma and noise_sigma must be non-negative")
        if not 1.0 <= self.jpeg_quality.low <= self.jpeg_quality.high <= 100.0:
            raise ValueError("jpeg_quality must lie in [1, 100]")
        return self


class AppearanceParams(_Section):
    """Everything that decides how a synthetic A3D image looks, apart from pose, shape and camera."""

    skin: SkinParams = SkinParams()
    clothing: ClothingParams = ClothingParams()
    lighting: LightingParams = LightingParams()
    backgrounds: BackgroundParams = BackgroundParams()
    colour_jitter: ColourJitterParams = ColourJitterParams()
