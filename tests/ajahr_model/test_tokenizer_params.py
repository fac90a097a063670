"""Section ``tokenizer`` of params.yaml: profiles merged over shared settings, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from a3d_data.params import ParamsError, load_section
from ajahr_model.tokenizer.params import TokenizerSection
from ajahr_model.tokenizer.train import code_fingerprint, settings_fingerprint
from tests.ajahr_model.conftest import tiny_section


def _load(tmp_path: Path, section: dict) -> TokenizerSection:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"tokenizer": section}))
    return load_section(path, "tokenizer", TokenizerSection)


def test_defaults_give_a_small_cpu_profile_and_the_paper_scale_gpu_profile():
    section = TokenizerSection()
    cpu, gpu = section.settings("cpu"), section.settings("gpu")
    assert section.profile == "cpu" and section.settings() == cpu
    assert (gpu.model.tokens, gpu.model.codebook_size, gpu.model.code_dim) == (320, 2048, 256)
    assert gpu.train.batch_size == 256 and gpu.train.steps >= 100_000
    assert cpu.model.tokens < gpu.model.tokens and cpu.train.steps < 10_000
    # Shared settings reach both profiles.
    for settings in (cpu, gpu):
        assert settings.quantizer.decay == 0.99 and settings.optim.gamma == 0.05
        assert (settings.loss.rotmat, settings.loss.vertices, settings.loss.joints, settings.loss.commit) == (
            20.0, 100.0, 100.0, 1.0,
        )  # fmt: skip
    assert section.role("non_amputee").amputee_fraction == 0.0
    assert section.role("amputee").amputee_fraction == 0.5


def test_a_profile_overrides_only_the_keys_it_names(tmp_path):
    section = _load(tmp_path, tiny_section() | {"shared": {"noise": {"end": 0.2}, "loss": {"joints": 50.0}}})
    settings = section.settings()
    assert settings.noise.end == 0.2 and settings.noise.start == 0.01  # shared, partly set
    assert settings.loss.joints == 50.0 and settings.loss.vertex_subset == 64  # shared + profile
    assert settings.model.tokens == 20


def test_a_bad_value_in_a_profile_is_named_with_its_profile(tmp_path):
    section = tiny_section()
    section["profiles"]["gpu"] = {"model": {"width": 0}}
    with pytest.raises(
        ParamsError, match=r"tokenizer: .*profiles\.gpu\.model\.width: Input should be greater"
    ):
        _load(tmp_path, section)


def test_unknown_keys_and_impossible_token_counts_are_refused(tmp_path):
    with pytest.raises(ParamsError, match=r"profiles\.cpu\.train\.stepz: Extra inputs are not permitted"):
        _load(tmp_path, tiny_section(stepz=3))
    section = tiny_section()
    section["profiles"]["cpu"]["model"]["tokens"] = 30
    with pytest.raises(ParamsError, match=r"tokens=30 is not 20 \* 2\*\*mul"):
        _load(tmp_path, section)
    with pytest.raises(ParamsError, match=r"milestones \[4\] are not before train.steps \(3\)"):
        _load(tmp_path, tiny_section(steps=3))
    with pytest.raises(ParamsError, match="profile 'gpu' has no entry"):
        _load(tmp_path, {"profile": "gpu", "profiles": {"cpu": {}}})


def test_bookkeeping_settings_do_not_change_the_fingerprint_that_guards_resumption():
    base = TokenizerSection.model_validate(tiny_section())
    chattier = TokenizerSection.model_validate(tiny_section(log_every=2, eval_every=5, checkpoint_every=1))
    longer = TokenizerSection.model_validate(tiny_section(steps=7))
    role = base.role("amputee")
    assert settings_fingerprint(base.settings(), role) == settings_fingerprint(chattier.settings(), role)
    assert settings_fingerprint(base.settings(), role) != settings_fingerprint(longer.settings(), role)
    assert settings_fingerprint(base.settings(), role) != settings_fingerprint(
        base.settings(), base.role("non_amputee")
    )


def test_the_repository_params_file_gives_the_defaults_in_code():
    """params.yaml spells out every tokenizer setting; they are the same as the code's defaults,
    so a stage run without the section trains the same tokenizers."""
    repo_params = Path(__file__).resolve().parents[2] / "params.yaml"
    section = load_section(repo_params, "tokenizer", TokenizerSection)
    assert section.profile == "cpu"
    for profile in ("cpu", "gpu"):
        assert section.settings(profile) == TokenizerSection().settings(profile), profile
    gpu = section.settings("gpu")
    assert (gpu.model.tokens, gpu.model.codebook_size, gpu.model.code_dim) == (320, 2048, 256)
    assert gpu.train.batch_size == 256 and gpu.train.steps >= 100_000 and gpu.device == "cuda"


def test_the_code_that_trains_is_part_of_the_fingerprint():
    """A checkpoint written by other code (a changed loss, say) is not resumed or reused."""
    section = TokenizerSection.model_validate(tiny_section())
    settings, role = section.settings(), section.role("amputee")
    assert settings_fingerprint(settings, role) == settings_fingerprint(settings, role, code_fingerprint())
    assert settings_fingerprint(settings, role, "code-a") != settings_fingerprint(settings, role, "code-b")
