"""Clothing, hair and skin as per-vertex albedo for the renderer.

A body wears a top (torso, and the arms to the sleeve length), a bottom (pelvis and thighs, and
the legs to the trouser length), optionally shoes (feet and ankles) and painted hair; everything
else is skin. Hands are always skin, so the garment never hides where a hand is (or is not).
Regions come from the rest pose (:mod:`a3d_data.appearance.regions`), so they are the same
vertices in every pose, shape and amputation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from a3d_data.appearance.params import AppearanceParams, ClothingParams
from a3d_data.appearance.patterns import pattern_mask
from a3d_data.appearance.regions import BodyRegions, Part, body_regions
from a3d_data.appearance.skin import hex_to_rgb, sample_skin_tones

if TYPE_CHECKING:
    from a3d_data.body_model import BodyModel


class Garment(IntEnum):
    """What covers a vertex."""

    SKIN = 0
    TOP = 1
    BOTTOM = 2
    SHOES = 3
    HAIR = 4
    EYE = 5
    MOUTH = 6


# Where each garment ends, as a fraction of the limb (0 shoulder/hip joint, 1 wrist/ankle joint).
SLEEVE_END: Final[dict[str, float]] = {"none": -0.15, "short": 0.35, "long": 0.97}
LEG_END: Final[dict[str, float]] = {"shorts": 0.3, "knee": 0.58, "long": 0.97}
SHOE_TOP: Final[float] = 0.93  # ankle-high: the shoe covers the leg beyond this fraction
# Torso height (0 pelvis joint, 1 neck joint) where the top meets the bottom, and the neckline.
WAIST: Final[float] = 0.3
NECKLINE: Final[float] = 0.93
NECKLINE_DIP: Final[float] = 0.06  # how much lower the neckline is at the front (round neck)
# Hairline: head height above which hair grows, as a function of head depth (back -1 .. face +1).
HAIRLINE_DEPTH: Final[tuple[float, ...]] = (-1.0, -0.3, 0.3, 0.7, 1.0)
HAIRLINE_HEIGHT: Final[dict[str, tuple[float, ...]]] = {
    "short": (-0.3, 0.05, 0.45, 0.62, 0.7),
    "long": (-0.8, -0.5, 0.2, 0.6, 0.7),
}

CLOTHING_COLOURS_HEX: Final[tuple[str, ...]] = (
    "#151517", "#3c3d42", "#7d7f84", "#bfc0c2", "#ecebe6",  # black to white
    "#1e2752", "#3b5784", "#7390b3", "#86b4e0", "#2b4dbd",  # navy, denim, light denim, sky, royal
    "#1b6f6f", "#22542e", "#6b6b33", "#b9a673", "#d9c8a6",  # teal, forest, olive, khaki, beige
    "#664227", "#721a24", "#c41f1f", "#e6802a", "#d9ad33",  # brown, maroon, red, orange, mustard
    "#f2d84c", "#eb99b3", "#66337f", "#b3a6d9", "#99d9b3",  # yellow, pink, purple, lavender, mint
)  # fmt: skip
HAIR_COLOURS_HEX: Final[tuple[str, ...]] = (
    "#17120f",
    "#2e2119",
    "#4d3524",
    "#6e4b30",
    "#7d3a1f",
    "#a8834f",
    "#d2b98a",
    "#8f8b86",
)  # black, dark brown, brown, light brown, auburn, dark blond, blond, grey
SHOE_COLOURS_HEX: Final[tuple[str, ...]] = (
    "#141414",
    "#f0f0ee",
    "#5a3a22",
    "#8b6a4a",
    "#6e6e70",
    "#1f2a4d",
    "#a32626",
)  # black, white, dark brown, tan, grey, navy, red
IRIS_COLOURS_HEX: Final[tuple[str, ...]] = ("#2b1d16", "#4a3321", "#3f5a78", "#4f6a46")
SCLERA: Final[tuple[float, float, float]] = (0.9, 0.88, 0.85)
MOUTH: Final[tuple[float, float, float]] = (0.35, 0.14, 0.14)


@dataclass(frozen=True)
class Outfit:
    """One body's clothing choices; hem positions are limb or torso fractions (see constants)."""

    sleeves: str
    legs: str
    shoes: bool
    hair: str
    top_pattern: str
    bottom_pattern: str
    sleeve_end: float
    leg_end: float
    waist: float


def _palette(codes: tuple[str, ...]) -> np.ndarray:
    return np.stack([hex_to_rgb(code) for code in codes])


def _choose(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[name] for name in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def sample_outfit(rng: np.random.Generator, params: ClothingParams) -> Outfit:
    """Draw one :class:`Outfit` from the style and pattern weights of ``params``."""
    sleeves = _choose(rng, params.sleeves.as_dict())
    legs = _choose(rng, params.legs.as_dict())
    jitter = params.length_jitter
    return Outfit(
        sleeves=sleeves,
        legs=legs,
        shoes=bool(rng.uniform() < params.shoes_probability),
        hair=_choose(rng, params.hair.as_dict()),
        top_pattern=_choose(rng, params.top_patterns.as_dict()),
        bottom_pattern=_choose(rng, params.bottom_patterns.as_dict()),
        sleeve_end=SLEEVE_END[sleeves] + rng.uniform(-jitter, jitter),
        leg_end=LEG_END[legs] + rng.uniform(-jitter, jitter),
        waist=WAIST + rng.uniform(-jitter, jitter),
    )


def garment_labels(regions: BodyRegions, outfit: Outfit) -> np.ndarray:
    """(V,) int8 :class:`Garment` of every vertex for one outfit."""
    part = regions.part
    arm = (part == Part.LEFT_ARM) | (part == Part.RIGHT_ARM)
    leg = (part == Part.LEFT_LEG) | (part == Part.RIGHT_LEG)
    torso = part == Part.TORSO
    labels = np.full(regions.num_vertices, Garment.SKIN, dtype=np.int8)

    # The neckline dips at the front: ``head_depth`` is not defined on the torso, so use z.
    front = np.clip(regions.rest[:, 2] / max(float(regions.rest[torso, 2].max()), 1e-6), 0.0, 1.0)
    neckline = NECKLINE - NECKLINE_DIP * front
    below_neck = regions.torso_fraction < neckline
    above_waist = regions.torso_fraction >= outfit.waist
    labels[torso & below_neck & above_waist] = Garment.TOP
    labels[arm & (regions.limb_fraction < outfit.sleeve_end) & ~regions.hand] = Garment.TOP
    labels[torso & ~above_waist] = Garment.BOTTOM
    # Trousers stop at the foot, so a bare foot is skin whatever the trouser length.
    labels[leg & (regions.limb_fraction < outfit.leg_end) & ~regions.foot] = Garment.BOTTOM
    if outfit.shoes:
        labels[leg & ((regions.limb_fraction > SHOE_TOP) | regions.foot)] = Garment.SHOES

    if outfit.hair != "none":
        hairline = np.interp(regions.head_depth, HAIRLINE_DEPTH, HAIRLINE_HEIGHT[outfit.hair])
        head = (part == Part.HEAD) & ~regions.eye & ~regions.mouth
        labels[head & (regions.head_height > hairline)] = Garment.HAIR
    labels[regions.eye] = Garment.EYE
    labels[regions.mouth] = Garment.MOUTH
    return labels


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])


def _garment_colours(rng: np.random.Generator, params: ClothingParams) -> tuple[np.ndarray, np.ndarray]:
    """A main colour and a contrasting second colour (3,) each, from the clothing palette."""
    palette = _palette(CLOTHING_COLOURS_HEX)
    main = palette[rng.integers(len(palette))]
    contrasting = np.flatnonzero(np.abs(_luma(palette) - _luma(main)) >= params.min_pattern_contrast)
    if len(contrasting) == 0:  # only when min_pattern_contrast is set very high
        contrasting = np.array([int(np.argmax(np.abs(_luma(palette) - _luma(main))))])
    second = palette[rng.choice(contrasting)]
    jitter = rng.normal(0.0, params.colour_jitter, size=(2, 3))
    return np.clip(main + jitter[0], 0.0, 1.0), np.clip(second + jitter[1], 0.0, 1.0)


def _paint_garment(
    colors: np.ndarray,
    where: np.ndarray,
    pattern: str,
    regions: BodyRegions,
    rng: np.random.Generator,
    params: ClothingParams,
) -> None:
    main, second = _garment_colours(rng, params)
    period = rng.uniform(params.pattern_period_m.low, params.pattern_period_m.high)
    mask = pattern_mask(
        pattern, regions.surface_uv[where], regions.rest[where], regions.spacing[where], period, rng
    )
    colors[where] = main + mask[:, None] * (second - main)


def sample_vertex_colors(
    model: BodyModel,
    count: int,
    rng: np.random.Generator,
    params: AppearanceParams | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Draw skin, clothing and hair for ``count`` bodies as per-vertex albedo.

    Parameters
    ----------
    model : the body model (its rest pose and skinning weights define the regions).
    count : number of bodies.
    rng : numpy random generator; the same seed gives the same colours.
    params : appearance parameters (skin and clothing sections are used); defaults when None.

    Returns
    -------
    colors : (count, V, 3) float32 sRGB albedo in [0, 1].
    meta : one dict per body: ``skin_tone`` (Monk palette index, int), ``sleeves``, ``legs``,
        ``hair`` (style names), ``shoes`` (bool), ``top_pattern``, ``bottom_pattern``.
    """
    params = params or AppearanceParams()
    regions = body_regions(model)
    skin, tones = sample_skin_tones(count, rng, params.skin)
    hair_palette = _palette(HAIR_COLOURS_HEX)
    shoe_palette = _palette(SHOE_COLOURS_HEX)
    iris_palette = _palette(IRIS_COLOURS_HEX)
    colors = np.empty((count, regions.num_vertices, 3), dtype=np.float32)
    meta: list[dict[str, Any]] = []
    for i in range(count):
        outfit = sample_outfit(rng, params.clothing)
        labels = garment_labels(regions, outfit)
        body = np.empty((regions.num_vertices, 3))
        body[:] = skin[i]
        _paint_garment(body, labels == Garment.TOP, outfit.top_pattern, regions, rng, params.clothing)
        _paint_garment(body, labels == Garment.BOTTOM, outfit.bottom_pattern, regions, rng, params.clothing)
        body[labels == Garment.SHOES] = shoe_palette[rng.integers(len(shoe_palette))]
        body[labels == Garment.HAIR] = hair_palette[rng.integers(len(hair_palette))]
        body[labels == Garment.EYE] = SCLERA
        body[regions.iris] = iris_palette[rng.integers(len(iris_palette))]
        body[labels == Garment.MOUTH] = MOUTH
        colors[i] = np.clip(body, 0.0, 1.0)
        meta.append({"skin_tone": int(tones[i]), **_style_meta(outfit)})
    return colors, meta


def _style_meta(outfit: Outfit) -> dict[str, Any]:
    styles = asdict(outfit)
    for hem in ("sleeve_end", "leg_end", "waist"):
        styles.pop(hem)
    return styles
