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


def _expanded_stages(pipeline: dict) -> dict[str, dict]:
    """The stages with every ``foreach`` expanded (``name@item``) and ``${...}`` substituted."""
    variables = {k: v for entry in pipeline.get("vars", []) for k, v in entry.items()}

    def substitute(value, item=None):
        if isinstance(value, dict):
            return {substitute(k, item): substitute(v, item) for k, v in value.items()}
        if isinstance(value, list):
            return [substitute(v, item) for v in value]
        if isinstance(value, str):
            for key, text in {**variables, **({"item": item} if item is not None else {})}.items():
                value = value.replace("${" + key + "}", str(text))
        return value

    stages = {}
    for name, stage in pipeline["stages"].items():
        if "foreach" in stage:
            items = stage["foreach"]
            if isinstance(items, str):  # ${a.b}: a list in params.yaml, as DVC resolves it
                node = yaml.safe_load((ROOT / "params.yaml").read_text())
                for part in items.strip("${}").split("."):
                    node = node[part]
                items = node
            for item in items:
                stages[f"{name}@{item}"] = substitute(stage["do"], item)
        else:
            stages[name] = substitute(stage)
    return stages


def _key_exists(params: dict, dotted: str) -> bool:
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_every_stage_names_params_that_exist_and_a_command_that_is_installed():
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    stages = _expanded_stages(pipeline)
    assert {"train_tokenizers", "train_keypoints", "report"} <= set(stages)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, stage in stages.items():
        for key in stage.get("params", []):
            assert _key_exists(params, key), f"stage {name}: params key {key!r} is not in params.yaml"
        command = stage["cmd"].split()[0]
        installed = (Path(sys.executable).parent / command).exists() or shutil.which(command)
        assert installed, f"stage {name}: command {command!r} is not installed in the environment"
        produced = {str(out) for other in stages.values() for out in _paths(other.get("outs", []))}
        produced |= {str(m) for other in stages.values() for m in _paths(other.get("metrics", []))}
        for dep in stage.get("deps", []):
            inside = any(out.startswith(dep.rstrip("/") + "/") for out in produced)
            assert (ROOT / dep).exists() or dep in produced or inside, (
                f"stage {name}: dependency {dep} does not exist"
            )


def test_every_trained_variant_has_a_stage_and_the_report_reads_all_their_evaluations():
    from ajahr_model.training.params import AJAHRSection

    stages = _expanded_stages(yaml.safe_load((ROOT / "dvc.yaml").read_text()))
    section = AJAHRSection.model_validate(yaml.safe_load((ROOT / "params.yaml").read_text())["ajahr"])
    assert {"ajahr", "hmr2", "tokenhmr"} <= set(section.trained_variants)
    report = stages["report"]
    for variant in section.trained_variants:
        stage = stages[f"train_model@{variant}"]
        words = stage["cmd"].split()
        assert words[words.index("--variant") + 1] == variant
        evaluation = Path(words[words.index("--evaluation-dir") + 1])
        assert _paths(stage["metrics"]) == [str(evaluation / "metrics.json")]
        assert str(evaluation / "predictions.npz") in _paths(stage["outs"])
        assert f"ajahr.variants.{variant}" in stage["params"]
        # The report depends on the folder that holds every variant's evaluation.
        assert any(str(evaluation).startswith(dep + "/") for dep in report["deps"])


def test_make_help_lists_the_two_commands_of_the_readme():
    listed = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True)
    targets = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    assert {"run", "test", "install", "body-model"} <= targets
    readme = (ROOT / "README.md").read_text().splitlines()
    assert any("make run" in line for line in readme[:8]) and any("make test" in line for line in readme[:8])


def test_the_tokenizer_stage_declares_what_the_command_writes_and_keeps_the_checkpoints():
    from ajahr_model.tokenizer.params import TOKENIZER_NAMES
    from ajahr_model.tokenizer.train import CHECKPOINT_NAME, FIGURE_NAME, METRICS_NAME

    stage = _expanded_stages(yaml.safe_load((ROOT / "dvc.yaml").read_text()))["train_tokenizers"]
    words = stage["cmd"].split()
    assert words[:2] == ["ajahr", "train-tokenizers"]
    outs = {next(iter(o)) if isinstance(o, dict) else o: o for o in stage["outs"]}
    parent = Path(words[words.index("--output-dir") + 1])
    folders = [parent / name for name in TOKENIZER_NAMES]
    assert set(outs) == {str(f / n) for f in folders for n in (CHECKPOINT_NAME, FIGURE_NAME)}
    for folder in folders:
        # persist: a run stopped at a time limit resumes from it instead of DVC deleting it.
        assert outs[str(folder / CHECKPOINT_NAME)][str(folder / CHECKPOINT_NAME)]["persist"] is True
    assert _paths(stage["metrics"]) == [str(f / METRICS_NAME) for f in folders]
    assert "tokenizer" in stage["params"] and "body_model" in stage["params"]


def test_one_make_command_switches_every_stages_profile_and_the_default_is_dvc_repro():
    """`make run PROFILE=...` is one command (a DVC experiment, so `dvc params diff` shows it);
    the tokenizers take their gpu profile for the paper's, having no paper profile."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())

    def dry_run(*args: str) -> str:
        done = subprocess.run(
            ["make", "-n", "run", *args], cwd=ROOT, capture_output=True, text=True, check=True
        )
        return done.stdout.replace("\\\n", " ")

    assert "dvc repro" in dry_run() and "exp run" not in dry_run()
    refused = subprocess.run(["make", "run", "PROFILE=paper"], cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode != 0 and "INIT_WEIGHTS" in refused.stderr  # partial fine-tuning needs them
    for profile, extra in (("gpu", ""), ("paper", "INIT_WEIGHTS=vit_h.pth")):
        command = " ".join(dry_run(f"PROFILE={profile}", *([extra] if extra else [])).split())
        if extra:
            assert "-S ajahr.shared.init_weights=vit_h.pth" in command
        tokenizer = profile if profile in params["tokenizer"]["profiles"] else "gpu"
        for key, value in (("tokenizer", tokenizer), ("keypoints", profile), ("ajahr", profile)):
            assert value in params[key]["profiles"]
            assert f"-S {key}.profile={value}" in command
