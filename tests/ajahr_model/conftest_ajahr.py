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


def tiny_ajahr_section(**overrides: Any) -> dict[str, Any]:
    """The ``ajahr`` section of a params file for tiny runs (``overrides`` update its profile)."""
    profile = {"model": copy.deepcopy(TINY_MODEL), "optim": {"lr": 1e-3}, "train": dict(TINY_RUN)}
    for key, value in overrides.items():
        profile.setdefault(key, {}).update(value) if isinstance(value, dict) else profile.__setitem__(
            key, value
        )
    return {"profile": "cpu", "profiles": {"cpu": profile}}


def tiny_ajahr(**overrides: Any) -> AJAHRSection:
    return AJAHRSection.model_validate(tiny_ajahr_section(**overrides))


def tiny_keypoints(**train: Any) -> KeypointsSection:
    profile = {"model": {"input_size": 32, "heatmap_sigma": 1.0}, "train": {**TINY_RUN, **train}}
    return KeypointsSection.model_validate({"profile": "cpu", "profiles": {"cpu": profile}})


def make_truth_prior(dataset_dir: Path, folder: Path, noise_px: float = 3.0, seed: int = 0) -> Path:
    """A keypoint-prior folder for every sample of ``dataset_dir``: the labelled keypoints with
    Gaussian noise, absent ones where they would be (the prior knows nothing of amputation: it
    puts them at the parent joint), nobody found in the first sample of each split."""
    import numpy as np

    from ajahr_model.data.a3d import A3DDataset, index_samples
    from ajahr_model.data.keypoint_prior import PRIOR_FILE

    rng = np.random.default_rng(seed)
    keys, keypoints, found = [], [], []
    for split in ("train", "val", "test"):
        refs = index_samples(dataset_dir, split, ["amputee", "non_amputee", "occlusion"])
        dataset = A3DDataset(refs)
        for i, ref in enumerate(refs):
            points = dataset.load(i)[1]["keypoints2d"] + rng.normal(0, noise_px, (17, 2))
            keys.append(ref.key)
            keypoints.append(np.clip(points, 1, 254) if i else np.zeros((17, 2)))
            found.append(i > 0)
    found_array = np.array(found)
    confidence = np.where(found_array[:, None], 0.9, 0.0).repeat(17, axis=1)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / PRIOR_FILE,
        keys=np.array(keys),
        keypoints=np.array(keypoints, np.float32),
        confidence=confidence.astype(np.float32),
        found=found_array,
    )
    return folder
