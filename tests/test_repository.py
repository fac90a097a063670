"""The repository's wiring: DVC stages, their params and commands, the Makefile's targets."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _paths(entries: list) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries]


def test_every_stage_names_params_that_exist_and_a_command_that_is_installed():
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    variables = {k: v for entry in pipeline.get("vars", []) for k, v in entry.items()}
    stages = pipeline["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, stage in stages.items():
        for key in stage.get("params", []):
            section = key.split(".")[0]
            assert section in params, f"stage {name}: params section {section!r} is not in params.yaml"
        command = stage["cmd"].split()[0]
        installed = (Path(sys.executable).parent / command).exists() or shutil.which(command)
        assert installed, f"stage {name}: command {command!r} is not installed in the environment"
        produced = {str(out) for other in stages.values() for out in _paths(other.get("outs", []))}
        produced |= {str(m) for other in stages.values() for m in _paths(other.get("metrics", []))}
        for dep in stage.get("deps", []):
            for key, value in variables.items():
                dep = dep.replace("${" + key + "}", value)
            assert (ROOT / dep).exists() or dep in produced, f"stage {name}: dependency {dep} does not exist"


def test_make_help_lists_the_two_commands_of_the_readme():
    listed = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True)
    targets = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    assert {"run", "test", "install", "body-model"} <= targets
    readme = (ROOT / "README.md").read_text().splitlines()
    assert any("make run" in line for line in readme[:8]) and any("make test" in line for line in readme[:8])
