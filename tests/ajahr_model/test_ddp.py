"""DDP from the documented command, on CPU: ``ajahr train-ajahr`` with ``train.devices: 2`` starts
two processes (Lightning Fabric, gloo), which stop together at a time limit and resume to exactly
the weights of an uninterrupted two-process run. The same code runs over N GPUs with NCCL.

The command runs in a subprocess: Fabric starts the second rank by running the command again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from ajahr_model.training.detector import train_detector
from ajahr_model.training.loop import read_training_checkpoint
from tests.ajahr_model.conftest_ajahr import tiny_ajahr_section, tiny_keypoints

AJAHR = Path(sys.executable).with_name("ajahr")


@pytest.fixture(scope="module")
def train_two_processes(a3d_tiny, tiny_tokenizers, tmp_path_factory):
    """Runs ``ajahr train-ajahr`` on a tiny two-process run into a folder; returns the process."""
    root = tmp_path_factory.mktemp("ddp")
    train_detector(tiny_keypoints(steps=1).settings(), a3d_tiny, root / "detector", progress=False)
    params = root / "params.yaml"
    section = tiny_ajahr_section(train={"steps": 4, "devices": 2, "checkpoint_every": 2})
    params.write_text(yaml.safe_dump({"body_model": {}, "ajahr": section}))
    inputs = ["--dataset", str(a3d_tiny), "--tokenizers", str(tiny_tokenizers),
              "--detector", str(root / "detector" / "checkpoint.pt")]  # fmt: skip

    def train(output: Path, **env: str) -> subprocess.CompletedProcess:
        command = [str(AJAHR), "train-ajahr", "--params", str(params), "--output-dir", str(output),
                   "--no-progress", *inputs]  # fmt: skip
        # One thread a process: the two ranks share the machine's cores.
        environment = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", **env}
        return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)

    return train


@pytest.mark.skipif(not AJAHR.exists(), reason="needs the installed ajahr command")
def test_two_processes_stop_together_at_a_time_limit_and_resume_to_the_weights_of_one_run(
    train_two_processes, tmp_path
):
    whole = train_two_processes(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert "Starting with 2 processes" in whole.stderr + whole.stdout
    # A time limit of zero: every rank is past it after one step; they stop at the same step.
    stopped = train_two_processes(tmp_path / "split", AJAHR_MAX_TRAIN_MINUTES="0")
    assert stopped.returncode == 3, stopped.stderr[-3000:]
    saved = read_training_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert saved["step"] == 1 and not saved["complete"] and len(saved["rng_per_rank"]) == 2
    resumed = train_two_processes(tmp_path / "split")
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    a = read_training_checkpoint(tmp_path / "whole" / "checkpoint.pt")
    b = read_training_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert a["step"] == b["step"] == 4 and a["complete"] and b["complete"]
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]
    # Rank 0 alone writes the checkpoint and evaluates; nothing half-written is left behind.
    assert (tmp_path / "whole" / "metrics.json").exists()
    assert not list((tmp_path / "whole").glob("*.tmp"))
