"""How a synthetic A3D image looks: skin tones, clothing regions, patterns, lights, backgrounds, jitter.

Everything is drawn from a numpy generator passed in, so every test fixes its seed.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from a3d_data.appearance import (
    NUM_SKIN_TONES,
    PATTERNS,
    PROCEDURAL_KINDS,
    AppearanceParams,
    BackgroundCatalogue,
    BackgroundParams,
    ClothingParams,
    ColourJitterParams,
    Garment,
    LightingParams,
    Outfit,
    Part,
    SkinParams,
    body_regions,
    colour_jitter,
    garment_labels,
    pattern_mask,
    procedural_background,
    relative_luminance,
    sample_lights,
    sample_skin_tones,
    sample_vertex_colors,
    skin_palette,
)
from a3d_data.appearance.backgrounds import SKIMAGE_EXCLUDED, SKIMAGE_PHOTOS
from a3d_data.appearance.clothing import LEG_END, SLEEVE_END, WAIST
from a3d_data.synthesis.schema import SPLITS

SKIMAGE_ONLY = BackgroundParams(mate_folder=None)


@pytest.fixture(scope="module")
def regions(body_model):
    return body_regions(body_model)


@pytest.fixture(scope="module")
def catalogue():
    return BackgroundCatalogue()


def outfit(sleeves="short", legs="long", shoes=True, hair="short", top="solid", bottom="solid") -> Outfit:
    return Outfit(sleeves, legs, shoes, hair, top, bottom, SLEEVE_END[sleeves], LEG_END[legs], WAIST)


def every_outfit():
    for sleeves, legs, shoes, hair in itertools.product(
        SLEEVE_END, LEG_END, (True, False), ("none", "short", "long")
    ):
        yield outfit(sleeves, legs, shoes, hair)


# --- skin --------------------------------------------------------------------------------------


def test_the_skin_palette_runs_from_very_light_to_very_dark():
    luminance = relative_luminance(skin_palette())
    assert NUM_SKIN_TONES >= 10
    assert luminance[0] > 0.75  # MST-1, very light
    assert luminance[-1] < 0.025  # MST-10, very dark
    assert np.all(np.diff(luminance[3:]) < 0)  # darker and darker past the three lightest tones


def test_skin_tones_are_drawn_uniformly_and_jittered_only_slightly():
    colours, tones = sample_skin_tones(5000, np.random.default_rng(0))
    counts = np.bincount(tones, minlength=NUM_SKIN_TONES)
    assert counts.min() > 0.8 * 500 and counts.max() < 1.2 * 500
    assert colours.dtype == np.float32 and colours.min() >= 0.0 and colours.max() <= 1.0
    # The jitter never moves a body's colour far from its palette tone.
    assert np.abs(colours - skin_palette()[tones]).max() < 0.25


def test_skin_tone_weights_can_favour_tones_but_must_name_each_tone():
    only_darkest = SkinParams(tone_weights=[0.0] * (NUM_SKIN_TONES - 1) + [1.0])
    _, tones = sample_skin_tones(50, np.random.default_rng(0), only_darkest)
    assert set(tones.tolist()) == {NUM_SKIN_TONES - 1}
    with pytest.raises(ValueError, match="tone_weights"):
        sample_skin_tones(5, np.random.default_rng(0), SkinParams(tone_weights=[1.0, 1.0]))


# --- clothing regions --------------------------------------------------------------------------


def test_every_vertex_belongs_to_a_body_part_and_the_model_is_left_right_symmetric(regions):
    counts = np.bincount(regions.part, minlength=len(Part))
    assert counts.sum() == regions.num_vertices and counts.min() > 1000
    assert counts[Part.LEFT_ARM] == counts[Part.RIGHT_ARM]
    assert abs(int(counts[Part.LEFT_LEG]) - int(counts[Part.RIGHT_LEG])) <= 2


def test_hands_are_always_skin_and_feet_are_shoes_exactly_when_shoes_are_worn(regions):
    assert regions.hand.sum() > 1000 and regions.foot.sum() > 1000
    for choice in every_outfit():
        labels = garment_labels(regions, choice)
        assert np.all(labels[regions.hand] == Garment.SKIN), choice
        expected = Garment.SHOES if choice.shoes else Garment.SKIN
        assert np.all(labels[regions.foot] == expected), choice


def _band(regions, parts, low, high):
    on_part = np.isin(regions.part, [int(p) for p in parts])
    return on_part & (regions.limb_fraction > low) & (regions.limb_fraction < high)


def test_sleeve_and_trouser_lengths_cover_the_limb_segments_they_name(regions):
    arms, legs = (Part.LEFT_ARM, Part.RIGHT_ARM), (Part.LEFT_LEG, Part.RIGHT_LEG)
    upper_arm, forearm = _band(regions, arms, 0.1, 0.25), _band(regions, arms, 0.7, 0.9)
    thigh, shin = _band(regions, legs, 0.1, 0.22), _band(regions, legs, 0.7, 0.88)

    def covered(labels, where, garment):
        return np.mean(labels[where] == garment)

    sleeveless, short, long = (garment_labels(regions, outfit(sleeves=s)) for s in ("none", "short", "long"))
    assert covered(sleeveless, upper_arm, Garment.TOP) == 0.0
    assert covered(short, upper_arm, Garment.TOP) == 1.0 and covered(short, forearm, Garment.TOP) == 0.0
    assert covered(long, forearm, Garment.TOP) == 1.0

    shorts, knee, trousers = (garment_labels(regions, outfit(legs=s)) for s in ("shorts", "knee", "long"))
    assert covered(shorts, thigh, Garment.BOTTOM) == 1.0 and covered(shorts, shin, Garment.BOTTOM) == 0.0
    assert covered(knee, _band(regions, legs, 0.45, 0.5), Garment.BOTTOM) == 1.0
    assert covered(trousers, shin, Garment.BOTTOM) == 1.0


def test_the_top_covers_the_chest_the_bottom_the_pelvis_and_the_face_stays_skin(regions):
    torso = regions.part == Part.TORSO
    chest = torso & (regions.torso_fraction > 0.5) & (regions.torso_fraction < 0.8) & (regions.rest[:, 2] > 0)
    pelvis = torso & (regions.torso_fraction < 0.0)
    face = (regions.part == Part.HEAD) & (regions.head_depth > 0.7) & (regions.head_height > -0.2)
    face &= (regions.head_height < 0.4) & ~regions.eye & ~regions.mouth
    for choice in every_outfit():
        labels = garment_labels(regions, choice)
        assert np.all(labels[chest] == Garment.TOP)
        assert np.all(labels[pelvis] == Garment.BOTTOM)
        assert np.all(labels[face] == Garment.SKIN)


def test_hair_grows_on_the_crown_only_when_the_style_has_hair(regions):
    crown = (regions.part == Part.HEAD) & (regions.head_height > 0.85)
    nape = (regions.part == Part.HEAD) & (regions.head_depth < -0.3) & (regions.head_height < -0.35)
    assert crown.sum() > 40 and nape.sum() > 20
    bald, short, long = (garment_labels(regions, outfit(hair=h)) for h in ("none", "short", "long"))
    assert np.all(bald[crown] == Garment.SKIN)
    assert np.all(short[crown] == Garment.HAIR) and np.all(long[crown] == Garment.HAIR)
    assert np.mean(long[nape] == Garment.HAIR) > np.mean(short[nape] == Garment.HAIR)


def test_patterns_vary_across_the_garment_and_solid_does_not(regions):
    top = garment_labels(regions, outfit(sleeves="long")) == Garment.TOP
    for kind in PATTERNS:
        mask = pattern_mask(
            kind,
            regions.surface_uv[top],
            regions.rest[top],
            regions.spacing[top],
            0.1,
            np.random.default_rng(1),
        )
        assert mask.min() >= 0.0 and mask.max() <= 1.0
        if kind == "solid":
            assert np.all(mask == 0.0)
        else:  # both colours cover a visible share of the top
            assert np.mean(mask > 0.9) > 0.05 and np.mean(mask < 0.1) > 0.05, kind


def test_a_striped_top_shows_two_colours_on_the_rendered_albedo(body_model, regions):
    only_stripes = ClothingParams(
        top_patterns={
            "solid": 0,
            "horizontal_stripes": 1,
            "vertical_stripes": 0,
            "checks": 0,
            "dots": 0,
            "noise": 0,
        }
    )
    colors, meta = sample_vertex_colors(
        body_model, 4, np.random.default_rng(3), AppearanceParams(clothing=only_stripes)
    )
    chest = (regions.part == Part.TORSO) & (regions.torso_fraction > 0.4) & (regions.torso_fraction < 0.8)
    assert all(m["top_pattern"] == "horizontal_stripes" for m in meta)
    assert np.all(colors[:, chest].std(axis=1).max(axis=1) > 0.05)


# --- vertex colours ----------------------------------------------------------------------------


def test_vertex_colours_are_finite_albedo_with_one_record_per_body(body_model):
    colors, meta = sample_vertex_colors(body_model, 6, np.random.default_rng(0))
    assert colors.shape == (6, body_model.num_vertices, 3) and colors.dtype == np.float32
    assert np.isfinite(colors).all() and colors.min() >= 0.0 and colors.max() <= 1.0
    assert len(meta) == 6
    for record in meta:
        assert 0 <= record["skin_tone"] < NUM_SKIN_TONES and isinstance(record["skin_tone"], int)
        assert record["sleeves"] in SLEEVE_END and record["legs"] in LEG_END
        assert record["top_pattern"] in PATTERNS and record["bottom_pattern"] in PATTERNS
        assert isinstance(record["shoes"], bool) and record["hair"] in ("none", "short", "long")


def test_the_hands_carry_the_recorded_skin_tone(body_model, regions):
    colors, meta = sample_vertex_colors(body_model, 8, np.random.default_rng(5))
    palette = skin_palette()
    for body, record in zip(colors, meta, strict=True):
        hand = body[regions.hand]
        assert np.ptp(hand, axis=0).max() < 1e-6  # one colour on the whole hand
        assert np.abs(hand[0] - palette[record["skin_tone"]]).max() < 0.25


def test_the_same_seed_gives_the_same_appearance_and_another_seed_does_not(body_model):
    first = sample_vertex_colors(body_model, 3, np.random.default_rng(11))
    again = sample_vertex_colors(body_model, 3, np.random.default_rng(11))
    other = sample_vertex_colors(body_model, 3, np.random.default_rng(12))
    np.testing.assert_array_equal(first[0], again[0])
    assert first[1] == again[1]
    assert not np.array_equal(first[0], other[0])


# --- lights ------------------------------------------------------------------------------------


def test_lights_come_from_the_camera_side_and_above_within_their_ranges():
    params = LightingParams()
    lights = sample_lights(500, np.random.default_rng(0), params)
    direction = lights.direction
    assert direction.shape == (500, 3) and lights.colour.shape == (500, 3) and lights.ambient.shape == (500,)
    torch.testing.assert_close(direction.norm(dim=1), torch.ones(500))
    assert torch.all(direction[:, 1] < 0)  # above: OpenCV's y points down
    assert torch.all(direction[:, 2] < 0)  # in front of the body: towards the camera
    elevation = torch.rad2deg(torch.asin(-direction[:, 1]))
    assert (
        elevation.min() >= params.elevation_deg.low - 1e-3
        and elevation.max() <= params.elevation_deg.high + 1e-3
    )
    for values, bounds in ((lights.ambient, params.ambient), (lights.diffuse, params.diffuse)):
        assert values.min() >= bounds.low - 1e-6 and values.max() <= bounds.high + 1e-6
    assert lights.colour.min() >= 0.0 and lights.colour.max() <= 1.0


def test_light_colour_is_warm_at_low_and_cool_at_high_colour_temperature():
    def colour(kelvin):
        params = LightingParams(temperature_k={"low": kelvin, "high": kelvin}, tint_strength=1.0)
        return sample_lights(1, np.random.default_rng(0), params).colour[0]

    warm, cool = colour(3000.0), colour(9000.0)
    assert warm[0] > warm[2] and cool[2] > cool[0]
    untinted = sample_lights(1, np.random.default_rng(0), LightingParams(tint_strength=0.0)).colour[0]
    torch.testing.assert_close(untinted, torch.ones(3))


# --- backgrounds -------------------------------------------------------------------------------


def test_every_catalogued_photo_loads_offline_as_rgb_at_the_requested_size(catalogue):
    assert len(catalogue.photo_ids()) >= len(SKIMAGE_PHOTOS)
    rng = np.random.default_rng(0)
    for background_id in catalogue.photo_ids():
        image = catalogue.load(background_id, 64, rng)
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8, background_id
    assert catalogue.load("skimage/moon", 256).shape == (256, 256, 3)  # a grey photo becomes RGB


def test_every_procedural_kind_is_rgb_at_the_requested_size_and_fixed_by_its_seed():
    for kind in PROCEDURAL_KINDS:
        image = procedural_background(kind, 7, 96)
        assert image.shape == (96, 96, 3) and image.dtype == np.uint8
        assert image.std() > 1.0, kind  # not a blank image
        np.testing.assert_array_equal(image, procedural_background(kind, 7, 96))
        assert not np.array_equal(image, procedural_background(kind, 8, 96))


def test_no_photo_of_a_person_is_in_the_catalogue(catalogue):
    people = {name for name, why in SKIMAGE_EXCLUDED.items() if "person" in why or "faces" in why}
    assert {"astronaut", "camera", "lfw_subset"} <= people
    names = {background_id.split("/", 1)[1] for background_id in catalogue.photo_ids()}
    assert not names & (people | {"grace_hopper"})
    assert not set(SKIMAGE_PHOTOS) & set(SKIMAGE_EXCLUDED)


def test_photo_splits_are_disjoint_deterministic_and_each_split_has_photos(catalogue):
    per_split = {split: set(catalogue.photo_ids(split)) for split in SPLITS}
    for a, b in itertools.combinations(SPLITS, 2):
        assert not per_split[a] & per_split[b]
    assert set.union(*per_split.values()) == set(catalogue.photo_ids())
    assert all(per_split[split] for split in SPLITS)
    rebuilt = BackgroundCatalogue()
    assert {split: set(rebuilt.photo_ids(split)) for split in SPLITS} == per_split


def test_scikit_image_photos_keep_their_split_whether_or_not_other_sources_are_installed(catalogue):
    skimage_only = BackgroundCatalogue(SKIMAGE_ONLY)
    assert all(skimage_only.photo_ids(split) for split in SPLITS)
    for background_id in skimage_only.photo_ids():
        assert skimage_only.split_of(background_id) == catalogue.split_of(background_id)
    # Two views of one scene are one background as far as splits go.
    assert skimage_only.split_of("skimage/motorcycle_left") == skimage_only.split_of(
        "skimage/motorcycle_right"
    )


def test_the_split_salt_reshuffles_photos_between_splits():
    salted = BackgroundCatalogue(BackgroundParams(mate_folder=None, split_salt="another"))
    default = BackgroundCatalogue(SKIMAGE_ONLY)
    assert any(salted.split_of(i) != default.split_of(i) for i in default.photo_ids())


def test_procedural_backgrounds_of_different_splits_never_coincide():
    catalogue = BackgroundCatalogue(SKIMAGE_ONLY)
    ranges = [catalogue.procedural_seed_range(split) for split in SPLITS]
    for (_, high), (low, _) in itertools.pairwise(ranges):
        assert high <= low
    seen = {}
    for split in SPLITS:
        _, ids = catalogue.sample_backgrounds(40, np.random.default_rng(0), split, size=32)
        seen[split] = set(ids)
        assert all(catalogue.split_of(i) == split for i in ids)
    for a, b in itertools.combinations(SPLITS, 2):
        assert not seen[a] & seen[b]
    with pytest.raises(ValueError, match="beyond"):
        catalogue.split_of(f"procedural/clouds/{ranges[-1][1]}")


def test_sampled_backgrounds_are_uint8_rgb_and_reproducible_for_a_seed():
    catalogue = BackgroundCatalogue(SKIMAGE_ONLY)
    images, ids = catalogue.sample_backgrounds(12, np.random.default_rng(4), "train", size=48)
    again, ids_again = catalogue.sample_backgrounds(12, np.random.default_rng(4), "train", size=48)
    assert images.shape == (12, 48, 48, 3) and images.dtype == np.uint8
    assert ids == ids_again and np.array_equal(images, again)
    assert any(i.startswith("skimage/") for i in ids) and any(i.startswith("procedural/") for i in ids)


def test_photos_from_a_folder_are_catalogued_and_cropped_without_mirroring(tmp_path):
    # A photo whose left half is red and right half blue, and a grey one.
    split_colour = np.zeros((120, 200, 3), dtype=np.uint8)
    split_colour[:, :100, 0] = 255
    split_colour[:, 100:, 2] = 255
    Image.fromarray(split_colour).save(tmp_path / "RedBlue.png")
    Image.fromarray(np.full((80, 80), 90, dtype=np.uint8)).save(tmp_path / "Grey.jpg")
    (tmp_path / "notes.txt").write_text("not a photo")
    params = BackgroundParams(
        use_skimage=False, mate_folder=tmp_path, crop_fraction={"low": 1.0, "high": 1.0}
    )
    catalogue = BackgroundCatalogue(params)
    assert catalogue.photo_ids() == ["mate/Grey", "mate/RedBlue"]
    grey = catalogue.load("mate/Grey", 32)
    assert grey.shape == (32, 32, 3) and np.all(grey[..., 0] == grey[..., 2])
    for seed in range(5):
        crop = catalogue.load("mate/RedBlue", 64, np.random.default_rng(seed)).astype(int)
        assert crop[:, :8, 0].mean() > crop[:, :8, 2].mean()  # red stays on the left
        assert crop[:, -8:, 2].mean() > crop[:, -8:, 0].mean()


def test_a_missing_photo_folder_leaves_the_other_sources(tmp_path):
    catalogue = BackgroundCatalogue(BackgroundParams(mate_folder=tmp_path / "absent"))
    assert catalogue.photo_ids() and all(i.startswith("skimage/") for i in catalogue.photo_ids())


def test_unknown_splits_and_ids_are_refused_with_their_name(catalogue):
    with pytest.raises(ValueError, match="holdout"):
        catalogue.sample_backgrounds(1, np.random.default_rng(0), "holdout")
    with pytest.raises(KeyError, match="skimage/astronaut"):
        catalogue.load("skimage/astronaut")


# --- colour jitter -----------------------------------------------------------------------------


def _test_images(count=6, size=40):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(count, size, size, 3), dtype=np.uint8)
    images[:, :, : size // 2] //= 4  # dark left half, so left and right can be told apart
    return images


def test_colour_jitter_at_zero_strength_is_the_identity():
    images = _test_images()
    params = ColourJitterParams(blur_probability=1.0, noise_probability=1.0, jpeg_probability=1.0)
    np.testing.assert_array_equal(
        colour_jitter(images, np.random.default_rng(0), params, strength=0.0), images
    )


def test_colour_jitter_changes_colours_within_the_uint8_range():
    images = _test_images()
    out = colour_jitter(images, np.random.default_rng(0))
    assert out.shape == images.shape and out.dtype == np.uint8
    assert not np.array_equal(out, images)
    assert not np.shares_memory(out, images)


def test_nothing_flips_an_image_left_to_right():
    images = _test_images()
    params = ColourJitterParams(blur_probability=1.0, noise_probability=1.0, jpeg_probability=1.0)
    out = colour_jitter(images, np.random.default_rng(1), params).astype(float)
    left, right = out[:, :, :20].mean(axis=(1, 2, 3)), out[:, :, 20:].mean(axis=(1, 2, 3))
    assert np.all(left < right)


def test_colour_jitter_refuses_float_images():
    with pytest.raises(ValueError, match="uint8"):
        colour_jitter(np.zeros((1, 8, 8, 3), dtype=np.float32), np.random.default_rng(0))


# --- parameters --------------------------------------------------------------------------------


def test_appearance_params_reject_unknown_keys_and_inconsistent_values():
    assert AppearanceParams().backgrounds.split_fractions.train == 0.7
    with pytest.raises(ValidationError, match="extra"):
        AppearanceParams.model_validate({"skin": {"tone": 3}})
    with pytest.raises(ValidationError, match="sum to 1"):
        BackgroundParams(split_fractions={"train": 0.8, "val": 0.15, "test": 0.15})
    with pytest.raises(ValidationError, match="must not exceed"):
        LightingParams(ambient={"low": 0.6, "high": 0.3})
    with pytest.raises(ValidationError, match="positive"):
        ClothingParams(sleeves={"none": 0, "short": 0, "long": 0})
    with pytest.raises(ValidationError, match="frozen"):
        AppearanceParams().skin.lightness_jitter = 0.1  # type: ignore[misc]


# --- the picture -------------------------------------------------------------------------------


def test_the_appearance_sheet_is_written_as_a_png(body_model, tmp_path):
    from a3d_data.appearance import draw_appearance_sheet

    output = draw_appearance_sheet(body_model, tmp_path / "sheet.png", count=2, columns=2)
    with Image.open(output) as sheet:
        assert sheet.format == "PNG" and sheet.width > 400
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]  # no temporary left behind
