"""The repository's wiring: DVC stages, their params and commands, the Makefile's targets."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_every_stage_names_params_that_exist_and_a_command_that_is_installed():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, stage in stages.items():
        for key in stage.get("params", []):
            section = key.split(".")[0]
            assert section in params, f"stage {name}: params key {key!r} is not in params.yaml"
        command = stage["cmd"].split()[0]
        installed = (Path(sys.executable).parent / command).exists() or shutil.which(command)
        assert installed, f"stage {name}: command {command!r} is not installed in the environment"
        for dep in stage.get("deps", []):
            assert (ROOT / dep).exists(), f"stage {name}: dependency {dep} does not exist"


def test_make_help_lists_the_two_commands_of_the_readme():
    listed = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True)
    targets = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    assert {"run", "test", "install", "body-model"} <= targets
    readme = (ROOT / "README.md").read_text().splitlines()
    assert any("make run" in line for line in readme[:8]) and any("make test" in line for line in readme[:8])
