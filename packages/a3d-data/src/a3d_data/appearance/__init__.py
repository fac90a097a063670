"""How a synthetic A3D image looks: skin, clothing, lights, backgrounds and colour jitter.

Everything draws from a ``numpy.random.Generator`` passed in, so one seed reproduces an image;
nothing is loaded at import time (background photos are read on first use).
"""

from a3d_data.appearance.augment import colour_jitter, jpeg_roundtrip
from a3d_data.appearance.backgrounds import BackgroundCatalogue, PhotoEntry, sample_backgrounds
from a3d_data.appearance.clothing import Garment, Outfit, garment_labels, sample_outfit, sample_vertex_colors
from a3d_data.appearance.figure import draw_appearance_sheet
from a3d_data.appearance.lighting import blackbody_rgb, light_direction, sample_lights
from a3d_data.appearance.params import (
    AppearanceParams,
    BackgroundParams,
    ClothingParams,
    ColourJitterParams,
    LightingParams,
    SkinParams,
)
from a3d_data.appearance.patterns import PATTERNS, pattern_mask
from a3d_data.appearance.procedural import PROCEDURAL_KINDS, procedural_background
from a3d_data.appearance.regions import BodyRegions, Part, body_regions
from a3d_data.appearance.skin import NUM_SKIN_TONES, relative_luminance, sample_skin_tones, skin_palette

__all__ = [
    "NUM_SKIN_TONES",
    "PATTERNS",
    "PROCEDURAL_KINDS",
    "AppearanceParams",
    "BackgroundCatalogue",
    "BackgroundParams",
    "BodyRegions",
    "ClothingParams",
    "ColourJitterParams",
    "Garment",
    "LightingParams",
    "Outfit",
    "Part",
    "PhotoEntry",
    "SkinParams",
    "blackbody_rgb",
    "body_regions",
    "colour_jitter",
    "draw_appearance_sheet",
    "garment_labels",
    "jpeg_roundtrip",
    "light_direction",
    "pattern_mask",
    "procedural_background",
    "relative_luminance",
    "sample_backgrounds",
    "sample_lights",
    "sample_outfit",
    "sample_skin_tones",
    "sample_vertex_colors",
    "skin_palette",
]
