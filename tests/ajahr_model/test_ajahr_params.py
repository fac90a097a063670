"""Sections ``keypoints`` and ``ajahr``: profiles, validation errors that name the key, the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from a3d_data.params import ParamsError, load_section
from ajahr_model.training.params import AJAHRSection, KeypointsSection

ROOT = Path(__file__).resolve().parents[2]


def test_params_yaml_holds_the_code_defaults_of_both_sections_in_every_profile():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, section_type in (("ajahr", AJAHRSection), ("keypoints", KeypointsSection)):
        in_file, in_code = section_type.model_validate(params[name]), section_type()
        assert in_file.profile == in_code.profile == "cpu"
        for profile in ("cpu", "gpu", "paper"):
            assert in_file.settings(profile) == in_code.settings(profile), (name, profile)


def test_the_profiles_scale_from_two_cores_to_the_paper():
    section = AJAHRSection()
    cpu, gpu, paper = (section.settings(p) for p in ("cpu", "gpu", "paper"))
    assert cpu.model.backbone == "vit_tiny_patch16_224" and cpu.train.accelerator == "cpu"
    assert gpu.model.backbone == "vit_base_patch16_224" and gpu.train.precision == "bf16-mixed"
    assert paper.model.backbone == "vit_huge_patch14_224" and paper.model.patch_size == 16
    assert (paper.model.image_height, paper.model.image_width) == (256, 192)
    assert (paper.train.batch_size, paper.train.steps, paper.train.devices) == (64, 150_000, 2)
    assert paper.optim.lr == 5e-6 and paper.finetune.mode == "partial"
    assert gpu.loss == paper.loss  # the GPU profiles share the published weights
    assert (cpu.loss.global_orient, cpu.loss.bpac) == (0.01, 0.02)  # tuned for 320 steps on 2 cores


def test_a_bad_value_names_the_profile_key_where_it_was_written(tmp_path):
    params = {
        "ajahr": {
            "profile": "cpu",
            "profiles": {"cpu": {"train": {"precision": "fp8"}}, "gpu": {}, "paper": {}},
        }
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=r"profiles\.cpu\.train\.precision"):
        load_section(path, "ajahr", AJAHRSection)
    params["ajahr"] = {"shared": {"loss": {"keypoints3d": -1}}}
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=r"shared\.loss\.keypoints3d"):
        load_section(path, "ajahr", AJAHRSection)


def test_a_detector_reading_the_skeleton_without_the_prior_is_refused(tmp_path):
    params = {"keypoints": {"profile": "gpu", "profiles": {"gpu": {"model": {"skeleton_context": True}}}}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(
        ParamsError, match=r"skeleton_context reads the keypoint prior's skeleton: set prior_input"
    ):
        load_section(path, "keypoints", KeypointsSection).settings()


def test_tals_thresholds_are_one_number_or_one_per_joint():
    from ajahr_model.training.params import LossSettings

    assert LossSettings(tals_threshold_3d=[0.1] * 24).weights().tals_threshold_3d == (0.1,) * 24
    with pytest.raises(ValueError, match="tals_threshold_2d: 3 thresholds, expected one number or 17"):
        LossSettings(tals_threshold_2d=[0.1] * 3)
    with pytest.raises(ValueError):
        LossSettings(tals_threshold_3d=-0.1)
