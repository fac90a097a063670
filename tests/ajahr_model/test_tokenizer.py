"""The tokenizer stage's promises: checkpoints, exact resumption, config checks, zeroed joints."""

from __future__ import annotations

import json

import pytest
import torch

from ajahr_model.tokenizer.checkpoint import CheckpointError, load_into, load_tokenizer, read_checkpoint
from ajahr_model.tokenizer.params import TokenizerSection
from ajahr_model.tokenizer.rotation6d import ZERO_NORM
from ajahr_model.tokenizer.train import CHECKPOINT_NAME, TokenizerTraining, train_tokenizer
from ajahr_model.tokenizer.vqvae import PoseVQVAE, TokenizerConfig, TokenizerConfigError
from tests.ajahr_model.conftest import tiny_section


def _train(section: TokenizerSection, body_model, folder, name="amputee", **limits):
    return train_tokenizer(
        name,
        section.settings(),
        section.role(name),
        body_model,
        folder,
        profile="cpu",
        progress=False,
        **limits,
    )


def test_a_finished_run_writes_a_checkpoint_a_consumer_loads_frozen(tiny, body_model, tmp_path):
    outcome = _train(tiny, body_model, tmp_path)
    assert outcome.complete and outcome.step == 6
    folder = tmp_path / "amputee"
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.pt", "loss_curve.png", "metrics.json"]
    metrics = json.loads((folder / "metrics.json").read_text())
    for part in ("normal", "amputee"):
        assert metrics["held_out"][part]["mpjpe_mm"] > 0 and metrics["held_out"][part]["mve_mm"] > 0
    assert {"codebook_usage", "perplexity", "dead_codes"} <= set(metrics["codebook"])
    assert metrics["config"]["tokens"] == 20 and metrics["config"]["smpl_joints"] == list(range(1, 22))
    assert read_checkpoint(folder / CHECKPOINT_NAME)["config"]["num_joints"] == 21

    model = load_tokenizer(folder / CHECKPOINT_NAME, expected=tiny.settings().model.config())
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    # The loaded tokenizer reproduces the trained one, codebook included.
    state = read_checkpoint(folder / CHECKPOINT_NAME)
    fresh = PoseVQVAE(model.config)
    fresh.load_state_dict(state["model"])
    fresh.eval()
    poses = torch.randn(2, 21, 6)
    assert torch.equal(model(poses).pose6d, fresh(poses).pose6d)
    assert torch.equal(model.codebook, state["model"]["quantizer.codebook"])


def test_stopping_halfway_and_resuming_gives_exactly_the_weights_of_one_run(tiny, body_model, tmp_path):
    whole = _train(tiny, body_model, tmp_path / "whole")
    first = _train(tiny, body_model, tmp_path / "split", max_steps=3)
    assert not first.complete and first.step == 3
    with pytest.raises(CheckpointError, match="stopped at step 3 of 6"):
        load_tokenizer(first.checkpoint)
    second = _train(tiny, body_model, tmp_path / "split")
    assert second.complete and second.step == 6

    one, split = read_checkpoint(whole.checkpoint), read_checkpoint(second.checkpoint)
    for key, tensor in one["model"].items():
        assert torch.equal(tensor, split["model"][key]), key  # weights and the EMA codebook state
    moments = one["training"]["optimizer"]["state"]
    for index, values in moments.items():
        for name, tensor in values.items():
            assert torch.equal(tensor, split["training"]["optimizer"]["state"][index][name]), (index, name)
    assert one["training"]["history"] == split["training"]["history"]
    assert one["metrics"]["held_out"] == split["metrics"]["held_out"]


def test_a_time_limit_stops_after_the_step_that_reaches_it_and_saves(tiny, body_model, tmp_path):
    outcome = _train(tiny, body_model, tmp_path, max_seconds=0.0)
    assert not outcome.complete and outcome.step == 1
    assert read_checkpoint(outcome.checkpoint)["step"] == 1


def test_running_a_finished_tokenizer_again_only_rewrites_its_metrics(tiny, body_model, tmp_path):
    first = _train(tiny, body_model, tmp_path)
    again = _train(tiny, body_model, tmp_path)
    assert again.complete and again.step == first.step and again.seconds == 0.0
    assert again.results["held_out"] == first.results["held_out"]
    state = read_checkpoint(again.checkpoint)
    assert [e["step"] for e in state["training"]["evaluations"]] == [3, 6]


def test_a_checkpoint_of_other_settings_is_not_resumed_and_not_lost(tiny, body_model, tmp_path, caplog):
    first = _train(tiny, body_model, tmp_path, max_steps=2)
    old = read_checkpoint(first.checkpoint)
    other = TokenizerSection.model_validate(tiny_section(steps=5))
    outcome = _train(other, body_model, tmp_path)
    assert "written with other settings; starting over" in caplog.text
    assert outcome.complete and outcome.step == 5
    kept = tmp_path / "amputee" / f"checkpoint.settings-{old['fingerprint']}.pt"
    assert read_checkpoint(kept)["step"] == 2  # the earlier run, set aside


def test_an_unreadable_checkpoint_is_set_aside_and_training_starts_over(tiny, body_model, tmp_path, caplog):
    folder = tmp_path / "amputee"
    folder.mkdir()
    (folder / CHECKPOINT_NAME).write_bytes(b"half a file")
    outcome = _train(tiny, body_model, tmp_path)
    assert outcome.complete and "not a readable checkpoint" in caplog.text
    assert (folder / "checkpoint.unreadable.pt").read_bytes() == b"half a file"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"tokens": 40}, "tokens: the model has 20, the checkpoint has 40"),
        ({"codebook_size": 64}, "codebook_size: the model has 32, the checkpoint has 64"),
        ({"code_dim": 4}, "code_dim: the model has 8, the checkpoint has 4"),
        ({"smpl_joints": tuple(range(1, 12))}, "num_joints: the model has 21, the checkpoint has 11"),
    ],
)
def test_a_checkpoint_of_another_config_is_refused_naming_the_difference(change, named, tmp_path):
    base = {"tokens": 20, "codebook_size": 32, "code_dim": 8, "width": 16}
    from ajahr_model.tokenizer.checkpoint import checkpoint_state, save_checkpoint

    path = save_checkpoint(
        checkpoint_state(PoseVQVAE(TokenizerConfig(**{**base, **change})), name="x", complete=True),
        tmp_path / "checkpoint.pt",
    )
    model = PoseVQVAE(TokenizerConfig(**base))
    with pytest.raises(TokenizerConfigError, match=named):
        load_into(model, read_checkpoint(path), path)
    with pytest.raises(TokenizerConfigError, match=named):
        load_tokenizer(path, expected=model.config)


def test_a_file_that_is_not_a_tokenizer_checkpoint_is_named(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a pose-tokenizer checkpoint"):
        load_tokenizer(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_tokenizer(tmp_path / "missing.pt")


def test_the_amputee_tokenizer_decodes_zeroed_joints_near_zero(body_model):
    """A short training of a small amputee tokenizer already decodes amputated joints as zeros.

    Printed (pytest -s): the mean 6D length of the decoded amputated joints of held-out amputee
    poses (0: exactly zero; any rotation: sqrt 2 = 1.41; below 0.71 decodes to a zero matrix).
    """
    section = tiny_section(steps=400, batch_size=16, chunk_batches=16, eval_every=1000, log_every=100)
    section["profiles"]["cpu"]["model"].update(width=64, codebook_size=128)
    section["profiles"]["cpu"]["optim"] = {"lr": 3e-3, "milestones": [399]}
    section["profiles"]["cpu"]["validation"]["amputee"] = 64
    section["shared"] = {"noise": {"end": 0.1}}
    tokenizer = TokenizerSection.model_validate(section)
    settings = tokenizer.settings()
    training = TokenizerTraining(
        "amputee", settings, tokenizer.role("amputee"), body_model, torch.device("cpu")
    )
    for _ in range(settings.train.steps):
        training.train_step()
    metrics = training.evaluate()["amputee"]
    print(
        f"\nzeroed joints after {settings.train.steps} steps: mean 6D length "
        f"{metrics['zeroed_joint_6d_norm_mean']:.3f} (max {metrics['zeroed_joint_6d_norm_max']:.3f}), "
        f"{100 * metrics['zeroed_joints_decoded_zero']:.1f}% decode as zero; "
        f"{100 * metrics['present_joints_decoded_zero']:.2f}% of present joints do"
    )
    assert metrics["zeroed_joint_6d_norm_mean"] < ZERO_NORM
    assert metrics["zeroed_joints_decoded_zero"] > 0.75
    assert metrics["present_joints_decoded_zero"] < 0.05


@pytest.mark.parametrize(("schedule", "final_fraction"), [("multistep", 0.05), ("cosine", 0.05)])
def test_the_learning_rate_ends_at_lr_times_gamma_under_either_schedule(schedule, final_fraction, body_model):
    section = tiny_section()
    section["profiles"]["cpu"]["optim"] = {"lr": 1e-3, "gamma": 0.05, "milestones": [4], "schedule": schedule}
    tokenizer = TokenizerSection.model_validate(section)
    training = TokenizerTraining(
        "amputee", tokenizer.settings(), tokenizer.role("amputee"), body_model, torch.device("cpu")
    )
    rates = []
    for _ in range(tokenizer.settings().train.steps):
        training.train_step()
        rates.append(training.scheduler.get_last_lr()[0])
    assert rates[-1] == pytest.approx(1e-3 * final_fraction)
    assert all(b <= a for a, b in zip(rates, rates[1:], strict=False))  # never rises
