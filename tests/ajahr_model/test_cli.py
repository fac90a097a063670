"""The ``ajahr train-tokenizer`` command: outputs, split runs, and refusals before any work."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from ajahr_model.cli import app
from tests.ajahr_model.conftest import tiny_section

runner = CliRunner()


def _params(tmp_path: Path, **sections) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(sections))
    return path


def test_train_tokenizer_in_two_invocations_writes_the_three_outputs(tmp_path):
    params = _params(tmp_path, tokenizer=tiny_section())
    args = ["train-tokenizer", "non_amputee", "--params", str(params), "--no-progress"]
    first = runner.invoke(app, [*args, "--max-steps-this-run", "4"])
    # Status 3: stopped at the limit, so DVC would not record the unfinished outputs.
    assert first.exit_code == 3, first.output
    assert "stopped at step 4 of 6" in first.output
    folder = tmp_path / "models" / "tokenizers" / "non_amputee"
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.pt"]

    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "held-out MPJPE" in second.output and f"wrote {folder / 'checkpoint.pt'}" in second.output
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.pt", "loss_curve.png", "metrics.json"]
    with Image.open(folder / "loss_curve.png") as image:
        assert image.format == "PNG" and image.width > 600


def test_train_tokenizers_trains_both_side_by_side_and_fails_when_one_run_fails(tmp_path, capfd):
    params = _params(tmp_path, tokenizer=tiny_section())
    result = runner.invoke(app, ["train-tokenizers", "--jobs", "2", "--params", str(params), "--no-progress"])
    assert result.exit_code == 0, result.output + capfd.readouterr().err
    for name in ("non_amputee", "amputee"):
        folder = tmp_path / "models" / "tokenizers" / name
        assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.pt", "loss_curve.png", "metrics.json"]
    # A bad section fails each run (status 2) and the command says which.
    (tmp_path / "broken").mkdir()
    broken = _params(tmp_path / "broken", tokenizer=tiny_section(batch_size=1))
    result = runner.invoke(app, ["train-tokenizers", "--params", str(broken), "--no-progress"])
    assert result.exit_code == 2
    assert "tokenizer run(s) failed: non_amputee, amputee" in result.output + capfd.readouterr().err


def test_an_unknown_tokenizer_or_a_bad_param_stops_before_any_work(tmp_path):
    params = _params(tmp_path, tokenizer=tiny_section(batch_size=1))
    result = runner.invoke(app, ["train-tokenizer", "amputee", "--params", str(params)])
    assert result.exit_code == 2
    assert "profiles.cpu.train.batch_size: Input should be greater than or equal to 2" in result.output
    result = runner.invoke(app, ["train-tokenizer", "elbow", "--params", str(params)])
    assert result.exit_code == 2 and "unknown tokenizer 'elbow'" in result.output
    assert not (tmp_path / "models").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_the_cuda_device_on_a_machine_without_one_is_refused(tmp_path):
    section = tiny_section()
    section["profiles"]["cpu"]["device"] = "cuda"
    params = _params(tmp_path, tokenizer=section)
    result = runner.invoke(app, ["train-tokenizer", "amputee", "--params", str(params)])
    assert result.exit_code == 2 and "no CUDA device is available" in result.output


def test_a_time_limit_from_the_environment_stops_the_run_with_status_3(tmp_path):
    """How an orchestrator bounds `dvc repro`: AJAHR_MAX_TRAIN_MINUTES, then the same command again."""
    params = _params(tmp_path, tokenizer=tiny_section())
    args = ["train-tokenizer", "amputee", "--params", str(params), "--no-progress"]
    stopped = runner.invoke(app, args, env={"AJAHR_MAX_TRAIN_MINUTES": "0"})
    assert stopped.exit_code == 3 and "stopped at step 1 of 6" in stopped.output
    finished = runner.invoke(app, args)
    assert finished.exit_code == 0 and "held-out MPJPE" in finished.output
