"""Tiny tokenizer settings: the same code paths as the real profiles, in a fraction of a second."""

from __future__ import annotations

from typing import Any

import pytest

from ajahr_model.tokenizer.params import TokenizerSection


def tiny_section(**train: Any) -> dict[str, Any]:
    """A ``tokenizer`` params section whose cpu profile trains a 20-token, 32-code model in a blink."""
    return {
        "profile": "cpu",
        "profiles": {
            "cpu": {
                "model": {"tokens": 20, "codebook_size": 32, "code_dim": 8, "width": 16},
                "loss": {"vertex_subset": 64},
                "optim": {"lr": 1e-3, "milestones": [4]},
                "train": {"batch_size": 8, "steps": 6, "chunk_batches": 2, "log_every": 1, "eval_every": 3,
                          "checkpoint_every": 100, **train},
                "validation": {"normal": 8, "amputee": 8, "batch_size": 16},
                "device": "cpu",
            },
            "gpu": {},
        },
    }  # fmt: skip


@pytest.fixture
def tiny() -> TokenizerSection:
    return TokenizerSection.model_validate(tiny_section())


@pytest.fixture(scope="session")
def a3d_tiny(tmp_path_factory):
    """A 36-sample A3D dataset (train 8 + 8, test 4 + 4 + 4), synthesized once per session."""
    from tests.ajahr_model.conftest_ajahr import make_dataset

    return make_dataset(tmp_path_factory.mktemp("a3d"))


@pytest.fixture(scope="session")
def tiny_tokenizers(tmp_path_factory, body_model):
    """Folder with two tiny trained tokenizers (non_amputee/, amputee/)."""
    from tests.ajahr_model.conftest_ajahr import make_tokenizers

    return make_tokenizers(tmp_path_factory.mktemp("tokenizers"), body_model)
