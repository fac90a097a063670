"""The seed study: the models retrained at several seeds, their spread, and AJAHR's gain over each
baseline with an interval over seeds; finished runs kept, changed ones retrained, nothing lost."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from ajahr_model.evaluation.evaluate import TEST_PARTS
from ajahr_model.evaluation.report import Evaluation
from ajahr_model.evaluation.seed_study import (
    SeedStudyParams,
    load_study,
    run_seed_study,
    seed_interval,
    seeded,
    study_markdown,
    summarise,
    write_study,
)
from tests.ajahr_model.conftest_ajahr import tiny_ajahr

# --- statistics over seeds ---------------------------------------------------------------------


def test_the_interval_over_two_seeds_is_the_student_t_one():
    # Two runs: mean 2, sample standard deviation sqrt(2), t(0.975, 1 dof) = 12.706.
    mean, half = seed_interval([1.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(12.7062047, rel=1e-6)


@given(st.lists(st.floats(-500, 500), min_size=2, max_size=8), st.floats(-100, 100))
def test_the_interval_moves_with_a_shift_and_keeps_its_width(values, shift):
    mean, half = seed_interval(values)
    shifted_mean, shifted_half = seed_interval([v + shift for v in values])
    assert shifted_mean == pytest.approx(mean + shift, abs=1e-6)
    assert shifted_half == pytest.approx(half, abs=1e-6)
    assert half >= 0


def test_params_need_two_distinct_seeds_and_distinct_variants():
    assert SeedStudyParams(seeds=[3, 5]).seeds == [3, 5]
    with pytest.raises(ValidationError, match="seeds"):
        SeedStudyParams(seeds=[0])
    with pytest.raises(ValidationError, match=r"more than once: \[1\]"):
        SeedStudyParams(seeds=[1, 2, 1])
    with pytest.raises(ValidationError, match="variants"):
        SeedStudyParams(variants=["ajahr", "ajahr"])


def test_a_seeded_run_differs_from_the_pipelines_only_in_its_seed():
    settings = tiny_ajahr().settings(variant="tokenhmr")
    other = seeded(settings, 7)
    assert other.train.seed == 7 and settings.train.seed == 0
    dumped, other_dumped = settings.model_dump(), other.model_dump()
    dumped["train"].pop("seed"), other_dumped["train"].pop("seed")
    assert dumped == other_dumped


def _evaluation(variant: str, per_sample_mm: dict[str, float], bpac: bool = False) -> Evaluation:
    """A hand-made evaluation: every sample of a part at the same MPJPE (4 samples a part)."""
    keys, parts, errors = [], [], []
    for part in TEST_PARTS:
        for i in range(4):
            keys.append(f"{part}/{i}")
            parts.append(part)
            # +-1 mm around the part's figure, so the per-sample interval has a width.
            errors.append(per_sample_mm[part] + (1.0 if i % 2 else -1.0))
    test = {
        part: {
            "gt_labels": {
                "mpjpe": per_sample_mm[part],
                "pa_mpjpe": per_sample_mm[part] / 2,
                "mve": 1.2 * per_sample_mm[part],
            },
            "mean_pose": {"mpjpe": 300.0},
        }
        for part in TEST_PARTS
    }
    metrics: dict = {"test": test}
    if bpac:
        accuracy = {
            "true_keypoints": {"class": {"accuracy": 0.9}},
            "detected_keypoints": {"class": {"accuracy": 0.1}},
        }
        metrics["bpac"] = {"amputee": accuracy}
        metrics["checks"] = {
            "bpac_balanced_class_accuracy_over_chance (true_keypoints)": 11.0,
            "bpac_balanced_class_accuracy_over_chance (detected_keypoints)": 2.5,
        }
    table = {"key": np.array(keys), "part": np.array(parts), "gt_labels_mpjpe": np.array(errors)}
    return Evaluation(variant, metrics, table)


def _figures(amputee: float, non_amputee: float) -> dict[str, float]:
    return {"amputee": amputee, "non_amputee": non_amputee, "occlusion": 250.0}


def test_gains_are_paired_per_seed_and_judged_over_seeds():
    # AJAHR 10 mm better than HMR2-style on amputees at seed 0 and 20 mm at seed 1; level on
    # non-amputees at one seed, 4 mm worse at the other.
    study = {
        0: {
            "ajahr": _evaluation("ajahr", _figures(200, 210), bpac=True),
            "hmr2": _evaluation("hmr2", _figures(210, 210)),
        },
        1: {
            "ajahr": _evaluation("ajahr", _figures(190, 214), bpac=True),
            "hmr2": _evaluation("hmr2", _figures(210, 210)),
        },
    }
    facts = summarise(study)
    assert facts["seeds"] == [0, 1] and facts["variants"] == ["ajahr", "hmr2"]
    ajahr = facts["models"]["ajahr"]
    assert ajahr["amputee"]["mpjpe"]["mean"] == 195.0
    assert ajahr["amputee"]["mpjpe"]["std"] == pytest.approx(math.sqrt(50.0))
    assert (ajahr["amputee"]["mpjpe"]["min"], ajahr["amputee"]["mpjpe"]["max"]) == (190.0, 200.0)
    assert ajahr["bpac_amputee_class_accuracy"]["detected_keypoints"]["mean"] == pytest.approx(0.1)
    assert ajahr["bpac_balanced_class_accuracy_over_chance"]["detected_keypoints"]["mean"] == 2.5
    assert "bpac_amputee_class_accuracy" not in facts["models"]["hmr2"]
    amputee = facts["gains"]["amputee_over_hmr2"]
    assert amputee["per_seed_mm"] == {"0": pytest.approx(10.0), "1": pytest.approx(20.0)}
    assert amputee["mean_mm"] == pytest.approx(15.0)
    # Each seed's gain clears the +-1 mm per-sample spread, but two seeds give a wide t interval.
    assert (amputee["seeds_better"], amputee["seeds_worse"]) == (2, 0)
    assert amputee["ci95_mm"] == pytest.approx(12.7062047 * 5.0, rel=1e-6)
    non_amputee = facts["gains"]["non_amputee_over_hmr2"]
    assert non_amputee["mean_mm"] == pytest.approx(-2.0)
    assert (non_amputee["seeds_better"], non_amputee["seeds_worse"]) == (0, 1)
    assert facts["findings"] == {"beats_baselines_on_amputee": False, "level_on_non_amputee": True}
    # "Level" over two seeds says little; the markdown gives the per-seed count beside it.
    markdown = study_markdown(facts, profile="cpu")
    assert "level with them on non-amputees: **yes**" in markdown
    assert "at 0 of 2 seeds on amputees and at 1 of 2 on non-amputees" in markdown
    assert "| AJAHR | 0.900 +- 0.000 | 0.100 +- 0.000 | 11.000 +- 0.000 | 2.500 +- 0.000 |" in markdown
    # Evaluations written before the balanced check existed leave its cells empty.
    for seed in study.values():
        del seed["ajahr"].metrics["checks"]
    assert "| AJAHR | 0.900 +- 0.000 | 0.100 +- 0.000 | - | - |" in study_markdown(summarise(study), "cpu")
    assert facts["mean_pose_mpjpe"]["amputee"] == 300.0


def test_a_gain_steady_over_seeds_counts_as_beating():
    seeds = {
        s: {
            "ajahr": _evaluation("ajahr", _figures(200 + 0.1 * s, 210), bpac=True),
            "tokenhmr": _evaluation("tokenhmr", _figures(220, 209)),
        }
        for s in range(4)
    }
    findings = summarise(seeds)["findings"]
    assert findings["beats_baselines_on_amputee"] is True
    assert findings["level_on_non_amputee"] is False  # 1 mm worse at every seed, no spread


# --- the study, end to end on a tiny dataset ---------------------------------------------------


def test_the_study_trains_each_pair_once_and_retrains_what_changed(
    a3d_tiny, tiny_tokenizers, body_model, tmp_path
):
    study = SeedStudyParams(seeds=[0, 1], variants=["ajahr", "hmr2"], work_dir=tmp_path / "runs")
    kwargs = dict(
        dataset_dir=a3d_tiny,
        tokenizer_dir=tiny_tokenizers,
        detector_path=None,
        prior_dir=None,
        body_model=body_model,
        work_dir=study.work_dir,
        progress=False,
    )
    runs = run_seed_study(tiny_ajahr(train={"steps": 2}), study, **kwargs)
    assert [(r.seed, r.variant, r.trained) for r in runs] == [
        (0, "ajahr", True), (0, "hmr2", True), (1, "ajahr", True), (1, "hmr2", True),
    ]  # fmt: skip
    first = json.loads((study.work_dir / "seed_1" / "ajahr" / "metrics.json").read_text())
    other_seed = json.loads((study.work_dir / "seed_0" / "ajahr" / "metrics.json").read_text())
    assert first["test"] != other_seed["test"]  # the seed reaches the weights

    again = run_seed_study(tiny_ajahr(train={"steps": 2}), study, **kwargs)
    assert not any(r.trained for r in again)

    # A damaged checkpoint is no finished run: that pair alone retrains, the file is kept aside.
    damaged = study.work_dir / "seed_0" / "ajahr" / "checkpoint.pt"
    damaged.write_bytes(b"damaged")
    repaired = run_seed_study(tiny_ajahr(train={"steps": 2}), study, **kwargs)
    assert [(r.seed, r.variant) for r in repaired if r.trained] == [(0, "ajahr")]
    assert (damaged.parent / "checkpoint.unreadable.pt").read_bytes() == b"damaged"

    # Another study reuses a pipeline run of the same fingerprint (here: seed 1's) instead of training.
    second = SeedStudyParams(seeds=[1, 2], variants=["hmr2"], work_dir=tmp_path / "second")
    pipeline = study.work_dir / "seed_1"
    adopted = run_seed_study(
        tiny_ajahr(train={"steps": 2}),
        second,
        **{**kwargs, "work_dir": second.work_dir},
        pipeline_dirs=(pipeline, pipeline),
    )
    assert [(r.seed, r.trained) for r in adopted] == [(1, False), (2, True)]
    copied = second.work_dir / "seed_1" / "hmr2"
    for name in ("checkpoint.pt", "metrics.json", "predictions.npz"):
        assert (copied / name).read_bytes() == (pipeline / "hmr2" / name).read_bytes()

    # Three steps instead of two: every pair retrains; the two-step checkpoints are set aside.
    changed = run_seed_study(tiny_ajahr(train={"steps": 3}), study, **kwargs)
    assert all(r.trained for r in changed)
    assert len(list((study.work_dir / "seed_0" / "hmr2").glob("checkpoint.settings-*.pt"))) == 1

    facts = summarise(load_study(study.work_dir, study.seeds, study.variants))
    write_study(facts, tmp_path / "out", profile="cpu")
    assert json.loads((tmp_path / "out" / "seed_study.json").read_text()) == json.loads(json.dumps(facts))
    markdown = (tmp_path / "out" / "seed_study.md").read_text()
    assert "AJAHR" in markdown and "amputee over hmr2" in markdown
    assert (tmp_path / "out" / "seed_study.png").read_bytes()[:4] == b"\x89PNG"


def test_an_unknown_variant_is_named_before_any_training(tiny_tokenizers, body_model, tmp_path):
    study = SeedStudyParams(seeds=[0, 1], variants=["ajahr", "bedlam"], work_dir=tmp_path)
    with pytest.raises(ValueError, match=r"seed_study.variants: \['bedlam'\]"):
        run_seed_study(
            tiny_ajahr(),
            study,
            dataset_dir=tmp_path,
            tokenizer_dir=tiny_tokenizers,
            detector_path=None,
            prior_dir=None,
            body_model=body_model,
            work_dir=tmp_path,
        )
    assert not any(tmp_path.iterdir())


def test_the_command_refuses_a_study_of_one_seed_naming_the_field(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from ajahr_model.cli import app

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"seed_study": {"seeds": [0], "variants": ["ajahr", "hmr2"]}}))
    result = CliRunner().invoke(app, ["seed-study", "--params", str(params), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "seed_study" in result.output and "seeds" in result.output
    assert not (tmp_path / "models").exists()
