"""The seed study: the evaluated models trained again at several seeds, and AJAHR's gain over each
baseline measured against how much the seed alone moves a model.

One training run per model says little when the seed moves a model's test MPJPE more than the
gap between models (on the cpu profile: 14 mm for AJAHR between seeds 0 and 1, against gaps of
3-22 mm). The study trains every ``variants`` x ``seeds`` pair by the same code as the pipeline
(``train_ajahr``: only ``train.seed`` changes; data, tokenizers and detector stay the ones given)
into ``<work_dir>/seed_<n>/<variant>/`` and writes, in the output folder:

- ``seed_study.json``: per model and test part the mean, standard deviation, minimum and maximum
  over seeds of MPJPE / PA-MPJPE / MVE (ground-truth label zeroing), every seed's figures, and
  AJAHR's MPJPE gain over each baseline (positive: AJAHR better) with a 95% Student-t interval
  over the seeds;
- ``seed_study.md``: the same as tables;
- ``seed_study.png``: each model's MPJPE per seed and test part, and the gains with their intervals.

A finished pair (complete checkpoint of the same fingerprint, its metrics written) is not
retrained; an interrupted one resumes from its checkpoint; one trained from other settings or
code is set aside by the training loop and retrained. Nothing is deleted.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field, field_validator  # noqa: E402
from scipy import stats  # noqa: E402

from a3d_data.atomic import atomic_path  # noqa: E402
from ajahr_model.evaluation.evaluate import TEST_PARTS  # noqa: E402
from ajahr_model.evaluation.report import (  # noqa: E402
    MODEL_TITLES,
    PART_TITLES,
    Evaluation,
    load_evaluations,
    paired_gain,
)
from ajahr_model.training.params import AJAHRSection, AJAHRSettings  # noqa: E402

log = logging.getLogger(__name__)

METRICS = ("mpjpe", "pa_mpjpe", "mve")
METRIC_TITLES = {"mpjpe": "MPJPE", "pa_mpjpe": "PA-MPJPE", "mve": "MVE"}
GAIN_PARTS = ("amputee", "non_amputee")


class SeedStudyParams(BaseModel):
    """Section ``seed_study`` of params.yaml (``make seed-study``; not a stage of ``dvc repro``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # train.seed of each run; at least two, so that a spread exists.
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3], min_length=2)
    # Entries of ajahr.variants; AJAHR's gains need 'ajahr' and a baseline among them.
    variants: list[str] = Field(default_factory=lambda: ["ajahr", "hmr2", "tokenhmr"], min_length=1)
    work_dir: Path = Path("models/seed_study")
    output: Path = Path("reports/seed_study")

    @field_validator("seeds", "variants")
    @classmethod
    def _unique(cls, values: list[Any]) -> list[Any]:
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {repeated}")
        return values


def seeded(settings: AJAHRSettings, seed: int) -> AJAHRSettings:
    """``settings`` with ``train.seed`` replaced (re-validated, so the result is a normal settings)."""
    dumped = settings.model_dump(mode="json")
    dumped["train"]["seed"] = seed
    return AJAHRSettings.model_validate(dumped)


@dataclass(frozen=True)
class StudyRun:
    seed: int
    variant: str
    folder: Path
    trained: bool  # False: found finished and kept


def _finished(checkpoint: Path, evaluation_dir: Path, settings: AJAHRSettings, expected_fp: str) -> bool:
    """A finished run: ``checkpoint`` complete and of ``expected_fp``, its evaluation written."""
    from ajahr_model.training.loop import TrainingCheckpointError, read_training_checkpoint

    metrics = evaluation_dir / "metrics.json"
    if not (checkpoint.exists() and metrics.exists() and (evaluation_dir / "predictions.npz").exists()):
        return False
    try:
        state = read_training_checkpoint(checkpoint)
        steps_evaluated = json.loads(metrics.read_text())["train"]["steps"]
    except (TrainingCheckpointError, OSError, ValueError, KeyError):
        return False
    return (
        state.get("settings_fp") == expected_fp
        and state.get("step") == settings.train.steps
        and steps_evaluated == settings.train.steps
    )


def _adopt(pipeline: tuple[Path, Path], folder: Path) -> None:
    """Copy the pipeline's run (checkpoint and loss curve; metrics and predictions) into ``folder``."""
    checkpoint_dir, evaluation_dir = pipeline
    files = [checkpoint_dir / "checkpoint.pt", checkpoint_dir / "loss_curve.png"]
    files += [evaluation_dir / "metrics.json", evaluation_dir / "predictions.npz"]
    for source in files:
        if source.exists():
            with atomic_path(folder / source.name) as temporary:
                shutil.copyfile(source, temporary)


def run_seed_study(
    section: AJAHRSection,
    study: SeedStudyParams,
    *,
    dataset_dir: Path,
    tokenizer_dir: Path,
    detector_path: Path | None,
    prior_dir: Path | None,
    body_model: Any,
    work_dir: Path,
    pipeline_dirs: tuple[Path, Path] | None = None,
    progress: bool = True,
) -> list[StudyRun]:
    """Train and evaluate every (seed, variant) pair of ``study`` that is not finished yet.

    ``pipeline_dirs``: the pipeline's folders of checkpoints and of evaluations (``models``,
    ``models/evaluation``): a run there of the same fingerprint (same settings and seed, same
    code, tokenizers and detector) is copied in rather than trained again."""
    from ajahr_model.training.ajahr import (
        ajahr_training_data_fingerprint,
        ajahr_weights_fingerprint,
        train_ajahr,
    )

    unknown = [v for v in study.variants if v not in section.variants]
    if unknown:
        raise ValueError(
            f"seed_study.variants: {unknown} are not under ajahr.variants (have {sorted(section.variants)})"
        )
    runs, total = [], len(study.seeds) * len(study.variants)
    data_fp = ajahr_training_data_fingerprint(dataset_dir)
    for seed in study.seeds:
        for variant in study.variants:
            settings = seeded(section.settings(variant=variant), seed)
            if settings.bpac_imagenet_weights or settings.init_weights:
                raise ValueError(
                    "seed_study: ajahr.bpac_imagenet_weights or init_weights is set; the study trains "
                    "from scratch"
                )
            folder = work_dir / f"seed_{seed}" / variant
            n = len(runs) + 1
            expected = ajahr_weights_fingerprint(
                settings, tokenizer_dir, detector_path, None, data_fp, body_model
            )
            if _finished(folder / "checkpoint.pt", folder, settings, expected):
                log.info("seed study %d/%d: seed %d, %s: finished earlier, kept", n, total, seed, variant)
                runs.append(StudyRun(seed, variant, folder, trained=False))
                continue
            if pipeline_dirs is not None:
                pipeline = (pipeline_dirs[0] / variant, pipeline_dirs[1] / variant)
                if _finished(pipeline[0] / "checkpoint.pt", pipeline[1], settings, expected):
                    _adopt(pipeline, folder)
                    log.info(
                        "seed study %d/%d: seed %d, %s: the pipeline's run, copied", n, total, seed, variant
                    )
                    runs.append(StudyRun(seed, variant, folder, trained=False))
                    continue
            log.info("seed study %d/%d: seed %d, %s: training into %s", n, total, seed, variant, folder)
            result = train_ajahr(
                settings,
                dataset_dir,
                tokenizer_dir,
                detector_path,
                body_model,
                folder,
                progress=progress,
                variant=variant,
                prior_path=prior_dir,
            )
            if not result.complete:
                raise RuntimeError(f"seed study: seed {seed}, {variant} stopped at step {result.step}")
            runs.append(StudyRun(seed, variant, folder, trained=True))
    return runs


# --- the figures over seeds ---------------------------------------------------------------------


def _spread(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if len(array) > 1 else float("nan"),
        "min": float(array.min()),
        "max": float(array.max()),
    }


def seed_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean of ``values`` (one per seed) and the half width of its Student-t interval."""
    array = np.asarray(values, dtype=float)
    if len(array) < 2:
        return float(array.mean()), float("inf")
    quantile = stats.t.ppf(0.5 + confidence / 2, df=len(array) - 1)
    return float(array.mean()), float(quantile * array.std(ddof=1) / np.sqrt(len(array)))


def summarise(evaluations: dict[int, dict[str, Evaluation]]) -> dict[str, Any]:
    """The study's figures from ``{seed: {variant: Evaluation}}`` (every seed the same variants)."""
    seeds = sorted(evaluations)
    variants = list(evaluations[seeds[0]])
    out: dict[str, Any] = {"seeds": seeds, "variants": variants, "models": {}, "per_seed": {}}
    for variant in variants:
        entry: dict[str, Any] = {}
        for part in TEST_PARTS:
            entry[part] = {
                metric: _spread(
                    [evaluations[s][variant].metrics["test"][part]["gt_labels"][metric] for s in seeds]
                )
                for metric in METRICS
            }
        first = evaluations[seeds[0]][variant]
        if first.has_bpac:
            entry["bpac_amputee_class_accuracy"] = {
                source: _spread(
                    [
                        evaluations[s][variant].metrics["bpac"]["amputee"][source]["class"]["accuracy"]
                        for s in seeds
                    ]
                )
                for source in ("true_keypoints", "detected_keypoints")
            }
            # Over amputees and non-amputees, in multiples of chance (evaluations written before
            # this check existed have none).
            balanced = "bpac_balanced_class_accuracy_over_chance ({})"
            checks = [evaluations[s][variant].metrics.get("checks", {}) for s in seeds]
            if all(balanced.format("detected_keypoints") in c for c in checks):
                entry["bpac_balanced_class_accuracy_over_chance"] = {
                    source: _spread([c[balanced.format(source)] for c in checks])
                    for source in ("true_keypoints", "detected_keypoints")
                }
        out["models"][variant] = entry
        out["per_seed"][variant] = {
            str(s): {
                part: evaluations[s][variant].metrics["test"][part]["gt_labels"]["mpjpe"]
                for part in TEST_PARTS
            }
            for s in seeds
        }
    reference = evaluations[seeds[0]][variants[0]].metrics["test"]
    out["mean_pose_mpjpe"] = {part: reference[part]["mean_pose"]["mpjpe"] for part in TEST_PARTS}
    baselines = [v for v in ("hmr2", "tokenhmr") if v in variants]
    if "ajahr" in variants and baselines:
        out["gains"] = {}
        for baseline in baselines:
            for part in GAIN_PARTS:
                per_seed = [
                    paired_gain(evaluations[s]["ajahr"], evaluations[s][baseline], part) for s in seeds
                ]
                gains = [gain for gain, _ in per_seed]
                mean, half = seed_interval(gains)
                out["gains"][f"{part}_over_{baseline}"] = {
                    "mean_mm": mean,
                    "ci95_mm": half,
                    "std_mm": float(np.std(gains, ddof=1)),
                    "per_seed_mm": dict(zip(map(str, seeds), gains, strict=True)),
                    # Seeds where the gain alone clears the per-sample 95% interval, either way.
                    "seeds_better": sum(g - h > 0 for g, h in per_seed),
                    "seeds_worse": sum(g + h < 0 for g, h in per_seed),
                }
        # Beating: the mean gain over seeds positive beyond its 95% interval over seeds; level:
        # not negative beyond it. The interval is over training runs, not over test samples.
        by_part = {
            part: [g for n, g in out["gains"].items() if n.startswith(f"{part}_over_")] for part in GAIN_PARTS
        }
        out["findings"] = {
            "beats_baselines_on_amputee": all(g["mean_mm"] - g["ci95_mm"] > 0 for g in by_part["amputee"]),
            "level_on_non_amputee": all(g["mean_mm"] + g["ci95_mm"] >= 0 for g in by_part["non_amputee"]),
        }
    return out


def load_study(work_dir: Path, seeds: list[int], variants: list[str]) -> dict[int, dict[str, Evaluation]]:
    return {
        seed: {ev.variant: ev for ev in load_evaluations(work_dir / f"seed_{seed}", variants)}
        for seed in seeds
    }


def _title(variant: str) -> str:
    return MODEL_TITLES.get(variant, variant)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def study_markdown(facts: dict[str, Any], profile: str) -> str:
    seeds = facts["seeds"]
    lines = [
        "# Seed study",
        "",
        f"Profile `{profile}`; seeds {', '.join(map(str, seeds))} (`train.seed`; data, tokenizers and "
        "detector fixed). Test split, ground-truth label zeroing, mm: mean +- standard deviation over "
        "seeds [min, max].",
        "",
    ]
    for metric in METRICS:
        lines += [
            f"## {METRIC_TITLES[metric]}",
            "",
            "| model | " + " | ".join(PART_TITLES[p] for p in TEST_PARTS) + " |",
        ]
        lines.append("|---" * (len(TEST_PARTS) + 1) + "|")
        for variant, entry in facts["models"].items():
            cells = [
                f"{e['mean']:.1f} +- {e['std']:.1f} [{e['min']:.1f}, {e['max']:.1f}]"
                for e in (entry[p][metric] for p in TEST_PARTS)
            ]
            lines.append(f"| {_title(variant)} | " + " | ".join(cells) + " |")
        if metric == "mpjpe":
            lines.append(
                "| mean-pose predictor | "
                + " | ".join(f"{facts['mean_pose_mpjpe'][p]:.1f}" for p in TEST_PARTS)
                + " |"
            )
        lines.append("")
    lines += [
        "## MPJPE per seed",
        "",
        "| model | seed | " + " | ".join(PART_TITLES[p] for p in TEST_PARTS) + " |",
    ]
    lines.append("|---" * (len(TEST_PARTS) + 2) + "|")
    for variant, by_seed in facts["per_seed"].items():
        for seed, row in by_seed.items():
            lines.append(
                f"| {_title(variant)} | {seed} | " + " | ".join(f"{row[p]:.1f}" for p in TEST_PARTS) + " |"
            )
    lines.append("")
    if "gains" in facts:
        lines += [
            "## AJAHR's MPJPE gain over each baseline",
            "",
            "Positive: AJAHR better. Mean over seeds +- the half width of its 95% Student-t interval "
            "over seeds; per seed, the paired per-sample gain; better / worse: seeds where the gain "
            "clears the per-sample 95% interval.",
            "",
            "| gain | mean +- 95% | per seed | seeds better / worse |",
            "|---|---|---|---|",
        ]
        for name, gain in facts["gains"].items():
            per_seed = ", ".join(f"{v:+.1f}" for v in gain["per_seed_mm"].values())
            interval = f"{gain['mean_mm']:+.1f} +- {gain['ci95_mm']:.1f}"
            counts = f"{gain['seeds_better']} / {gain['seeds_worse']}"
            lines.append(f"| {name.replace('_', ' ')} | {interval} | {per_seed} | {counts} |")
        beats, level = (
            _yes(facts["findings"][k]) for k in ("beats_baselines_on_amputee", "level_on_non_amputee")
        )
        gains = facts["gains"]
        worse = {
            part: max(g["seeds_worse"] for n, g in gains.items() if n.startswith(f"{part}_over_"))
            for part in GAIN_PARTS
        }
        lines += [
            "",
            f"AJAHR beats both baselines on amputees over seeds: **{beats}**; "
            f"level with them on non-amputees: **{level}**. Level means not worse beyond the 95% "
            f"interval over {len(seeds)} seeds, which few seeds make wide: AJAHR was worse than a "
            f"baseline beyond the per-sample interval at {worse['amputee']} of {len(seeds)} seeds on "
            f"amputees and at {worse['non_amputee']} of {len(seeds)} on non-amputees.",
            "",
        ]
    bpac = {v: e for v, e in facts["models"].items() if "bpac_amputee_class_accuracy" in e}
    if bpac:
        lines += [
            "## BPAC-Net on the test split",
            "",
            "Amputation class on amputees (chance 1/12), and balanced class accuracy over amputees "
            "and non-amputees (mean recall of the 13 classes) in multiples of chance (1/13).",
            "",
            "| model | class, true keypoints | class, detector's keypoints | balanced / chance, true "
            "keypoints | balanced / chance, detector's keypoints |",
            "|---|---|---|---|---|",
        ]
        for variant, entry in bpac.items():
            cells = [
                f"{figures[s]['mean']:.3f} +- {figures[s]['std']:.3f}" if figures else "-"
                for figures in (
                    entry["bpac_amputee_class_accuracy"],
                    entry.get("bpac_balanced_class_accuracy_over_chance"),
                )
                for s in ("true_keypoints", "detected_keypoints")
            ]
            lines.append(f"| {_title(variant)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["![MPJPE per seed](seed_study.png)", ""]
    return "\n".join(lines)


def plot_study(facts: dict[str, Any], output: Path) -> None:
    variants, seeds = facts["variants"], facts["seeds"]
    panels = len(TEST_PARTS) + (1 if "gains" in facts else 0)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4.2))
    colours = plt.get_cmap("tab10")
    for ax, part in zip(axes, TEST_PARTS, strict=False):
        for i, variant in enumerate(variants):
            values = [facts["per_seed"][variant][str(s)][part] for s in seeds]
            ax.scatter(
                np.full(len(values), i) + np.linspace(-0.15, 0.15, len(values)),
                values,
                color=colours(i),
                s=22,
            )
            ax.hlines(np.mean(values), i - 0.3, i + 0.3, color=colours(i), linewidth=2)
        ax.axhline(
            facts["mean_pose_mpjpe"][part], color="grey", linestyle="--", linewidth=1, label="mean pose"
        )
        ax.set_xticks(range(len(variants)), [_title(v).split(" (")[0] for v in variants], rotation=20)
        ax.set_title(f"{PART_TITLES[part]}: MPJPE per seed")
        ax.set_ylabel("mm")
        ax.legend(loc="upper right", fontsize=8)
    if "gains" in facts:
        ax = axes[-1]
        names = list(facts["gains"])
        for i, name in enumerate(names):
            gain = facts["gains"][name]
            ax.errorbar(i, gain["mean_mm"], yerr=gain["ci95_mm"], fmt="o", color="black", capsize=4)
            ax.scatter(
                np.full(len(seeds), i + 0.15), list(gain["per_seed_mm"].values()), color="tab:blue", s=12
            )
        ax.axhline(0.0, color="grey", linewidth=1)
        ax.set_xticks(range(len(names)), [n.replace("_over_", "\nover ") for n in names], fontsize=8)
        ax.set_title("AJAHR's MPJPE gain (95% over seeds)")
        ax.set_ylabel("mm (positive: AJAHR better)")
    fig.suptitle(f"Seed study: seeds {', '.join(map(str, seeds))}")
    fig.tight_layout()
    with atomic_path(output) as temporary:
        fig.savefig(temporary, dpi=110)
    plt.close(fig)


def write_study(facts: dict[str, Any], output_dir: Path, profile: str) -> None:
    with atomic_path(output_dir / "seed_study.json") as temporary:
        temporary.write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
    with atomic_path(output_dir / "seed_study.md") as temporary:
        temporary.write_text(study_markdown(facts, profile))
    plot_study(facts, output_dir / "seed_study.png")
