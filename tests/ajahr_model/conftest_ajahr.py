"""A tiny A3D dataset, tiny trained tokenizers and tiny AJAHR settings, shared by the AJAHR tests."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from a3d_data.synthesis.params import PartSizes, SynthesizeParams
from a3d_data.synthesis.run import run_synthesis
from ajahr_model.tokenizer.params import TokenizerSection
from ajahr_model.tokenizer.train import train_tokenizer
from ajahr_model.training.params import AJAHRSection, KeypointsSection
from tests.ajahr_model.conftest import tiny_section

TINY_SIZES = {
    "train": PartSizes(amputee=8, non_amputee=8),
    "val": PartSizes(amputee=2, non_amputee=2, occlusion=2),
    "test": PartSizes(amputee=4, non_amputee=4, occlusion=4),
}

TINY_RUN = {
    "batch_size": 4,
    "steps": 4,
    "accelerator": "cpu",
    "num_workers": 0,
    "checkpoint_every": 100,
    "log_every": 1,
    "eval_batch_size": 4,
    "eval_limit": 4,
}

TINY_MODEL = {
    "backbone": "vit_tiny_patch16_224",
    "patch_size": 8,
    "image_height": 32,
    "image_width": 24,
    "decoder_depth": 1,
    "decoder_dim": 32,
    "decoder_heads": 2,
    "decoder_head_dim": 16,
    "decoder_mlp_dim": 32,
    "mixer_dim": 8,
    "mixer_depth": 1,
    "bpac_input_size": 32,
    "bpac_heatmap_sigma": 1.0,
}


def make_dataset(root: Path) -> Path:
    params = SynthesizeParams(sizes=TINY_SIZES, shard_size=8, batch_size=4, workers=1, output=Path("a3d"))
    run_synthesis(params, root)
    return root / "a3d"


def make_tokenizers(root: Path, body_model) -> Path:
    section = TokenizerSection.model_validate(tiny_section())
    for name in ("non_amputee", "amputee"):
        train_tokenizer(name, section.settings(), section.role(name), body_model, root, progress=False)
    return root


def tiny_ajahr(**overrides: Any) -> AJAHRSection:
    profile = {"model": copy.deepcopy(TINY_MODEL), "optim": {"lr": 1e-3}, "train": dict(TINY_RUN)}
    for key, value in overrides.items():
        profile.setdefault(key, {}).update(value) if isinstance(value, dict) else profile.__setitem__(
            key, value
        )
    return AJAHRSection.model_validate({"profile": "cpu", "profiles": {"cpu": profile}})


def tiny_keypoints(**train: Any) -> KeypointsSection:
    profile = {"model": {"input_size": 32, "heatmap_sigma": 1.0}, "train": {**TINY_RUN, **train}}
    return KeypointsSection.model_validate({"profile": "cpu", "profiles": {"cpu": profile}})
