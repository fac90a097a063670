"""The evaluation report: every trained model side by side, as the paper's Tables 2 and 3.

Reads ``<evaluations>/<variant>/{metrics.json, predictions.npz}`` (written by the training
stages) and writes, in the output folder: ``report.md`` and ``report.html`` (the same tables and
pictures), ``metrics.json`` (the summary that ``dvc metrics show`` reads), ``confusion.png``
(BPAC-Net's class confusion on the test parts), ``per_class.png`` (MPJPE per amputation class and
model) and ``overlays.png`` (image, ground-truth mesh and each model's mesh, one row per class).
Plots are drawn here with matplotlib and the A3D renderer; nothing needs a network.
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from pydantic import BaseModel, ConfigDict  # noqa: E402
from tabulate import tabulate  # noqa: E402

from a3d_data.amputation.table import AMPUTATION_CLASSES, NON_AMPUTEE, NUM_CLASSES  # noqa: E402
from a3d_data.atomic import atomic_path  # noqa: E402
from a3d_data.body_model.model import BodyModel  # noqa: E402
from a3d_data.synthesis.schema import CROP_SIZE, FOCAL_LENGTH  # noqa: E402
from ajahr_model.evaluation.evaluate import SEVERAL_LIMBS, TEST_PARTS  # noqa: E402
from ajahr_model.evaluation.metrics import confusion_matrix  # noqa: E402

log = logging.getLogger(__name__)

MODEL_TITLES = {
    "ajahr": "AJAHR",
    "hmr2": "HMR2-style (direct 6D)",
    "tokenhmr": "TokenHMR-style (one tokenizer)",
    "single_amputee_tokenizer": "AJAHR, amputee tokenizer only",
    "no_second_cross_attention": "AJAHR, no 2nd cross-attention",
    "mean_pose": "mean-pose predictor",
}
PART_TITLES = {"amputee": "A3D amputee", "non_amputee": "A3D non-amputee", "occlusion": "A3D occlusion"}
CLASS_NAMES = [c.name for c in AMPUTATION_CLASSES]


class ReportParams(BaseModel):
    """Section ``report`` of params.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # Renderer of the overlays: auto (OpenGL/EGL when available, else the torch rasterizer).
    render_backend: Literal["auto", "opengl", "torch"] = "auto"


class ReportInputError(ValueError):
    """A model's evaluation files are missing or unreadable (names the file)."""


@dataclass(frozen=True)
class Evaluation:
    variant: str
    metrics: dict[str, Any]
    table: dict[str, np.ndarray]

    @property
    def title(self) -> str:
        return MODEL_TITLES.get(self.variant, self.variant)

    @property
    def has_bpac(self) -> bool:
        return "bpac" in self.metrics


def load_evaluations(folder: Path, variants: list[str]) -> list[Evaluation]:
    evaluations = []
    for variant in variants:
        metrics_path, table_path = folder / variant / "metrics.json", folder / variant / "predictions.npz"
        try:
            metrics = json.loads(metrics_path.read_text())
            with np.load(table_path, allow_pickle=False) as npz:
                table = {name: npz[name] for name in npz.files}
        except (OSError, ValueError) as err:
            raise ReportInputError(
                f"{folder / variant}: cannot read metrics.json / predictions.npz of {variant!r} ({err}); "
                f"train it first (dvc repro train_model@{variant})"
            ) from err
        evaluations.append(Evaluation(variant, metrics, table))
    if not evaluations:
        raise ReportInputError("no models to report (ajahr.trained_variants is empty)")
    return evaluations


# --- tables ------------------------------------------------------------------------------------


def mesh_table(evaluations: list[Evaluation]) -> pd.DataFrame:
    """Rows: model (and protocol); columns: MVE / MPJPE / PA-MPJPE per test part (mm)."""
    rows = []

    def add(name: str, protocol: str, source: Evaluation) -> None:
        row: dict[str, Any] = {"model": name}
        for part in TEST_PARTS:
            figures = source.metrics["test"][part][protocol]
            for metric in ("mve", "mpjpe", "pa_mpjpe"):
                row[(PART_TITLES[part], metric.upper().replace("_", "-"))] = figures[metric]
        rows.append(row)

    for ev in evaluations:
        add(ev.title, "gt_labels", ev)
    for ev in evaluations:
        if ev.has_bpac:
            add(f"{ev.title}, BPAC-Net's labels", "predicted_labels", ev)
    add(MODEL_TITLES["mean_pose"], "mean_pose", evaluations[0])
    row = {"model": "mean training skeleton (joints only)"}
    for part in TEST_PARTS:
        figures = evaluations[0].metrics["test"][part]["mean_joints"]
        for metric in ("mve", "mpjpe", "pa_mpjpe"):
            row[(PART_TITLES[part], metric.upper().replace("_", "-"))] = figures.get(metric, float("nan"))
    rows.append(row)
    frame = pd.DataFrame(rows).set_index("model")
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame


def bpac_table(evaluations: list[Evaluation]) -> pd.DataFrame:
    rows = []
    for ev in evaluations:
        if not ev.has_bpac:
            continue
        for source in ("detected_keypoints", "true_keypoints"):
            for part in ("amputee", "occlusion", "non_amputee"):
                figures = ev.metrics["bpac"][part][source]
                rows.append(
                    {
                        "model": ev.title,
                        "keypoints": source.replace("_", " "),
                        "test part": PART_TITLES[part],
                        **{k: figures["class"][k] for k in ("accuracy", "precision", "recall", "f1")},
                        "amputee-or-not accuracy": figures["binary"]["accuracy"],
                    }
                )
    return pd.DataFrame(rows)


def per_class_table(evaluations: list[Evaluation]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            ev.title: {name: ev.metrics["per_class"][name]["mpjpe"] for name in CLASS_NAMES}
            for ev in evaluations
        }
    )


def summary(evaluations: list[Evaluation]) -> dict[str, Any]:
    """The report's metrics JSON: figures per model and part, and the paper's three questions."""
    out: dict[str, Any] = {"models": {}}
    for ev in evaluations:
        entry = {part: ev.metrics["test"][part]["gt_labels"] for part in TEST_PARTS}
        if ev.has_bpac:
            entry["bpac"] = {
                part: ev.metrics["bpac"][part]["detected_keypoints"]["class"]
                for part in ("amputee", "occlusion")
            }
        out["models"][ev.variant] = entry
    out["models"]["mean_pose"] = {
        part: evaluations[0].metrics["test"][part]["mean_pose"] for part in TEST_PARTS
    }
    by_name = {ev.variant: ev for ev in evaluations}
    baselines = [v for v in ("hmr2", "tokenhmr") if v in by_name]
    if "ajahr" in by_name and baselines:
        findings: dict[str, Any] = {}
        beats, level = [], []
        for v in baselines:
            for part in ("amputee", "non_amputee"):
                gain, half_width = paired_gain(by_name["ajahr"], by_name[v], part)
                findings[f"{part}_mpjpe_gain_over_{v}_mm"] = gain
                findings[f"{part}_mpjpe_gain_over_{v}_ci95_mm"] = half_width
                if part == "amputee":
                    beats.append(gain - half_width > 0)
                else:
                    level.append(gain + half_width >= 0)
        # Beating: AJAHR's MPJPE lower than each baseline's beyond the 95% interval of the paired
        # per-sample differences; level: not worse beyond it.
        findings["beats_baselines_on_amputee"] = all(beats)
        findings["level_on_non_amputee"] = all(level)
        out["findings"] = findings
    return out


def paired_gain(ajahr: Evaluation, baseline: Evaluation, part: str) -> tuple[float, float]:
    """Mean per-sample MPJPE gain (mm) of AJAHR over ``baseline`` on ``part`` (positive: AJAHR
    better) and the half width of its 95% interval (1.96 standard errors of the paired
    differences); the two models are matched sample by sample by key."""
    rows: list[dict[str, float]] = []
    for ev in (ajahr, baseline):
        mask = ev.table["part"] == part
        rows.append(
            dict(zip(ev.table["key"][mask].tolist(), ev.table["gt_labels_mpjpe"][mask].tolist(), strict=True))
        )
    keys = sorted(set(rows[0]) & set(rows[1]))
    if not keys:
        raise ReportInputError(f"{ajahr.variant} and {baseline.variant} share no {part} test sample")
    differences = np.array([rows[1][k] - rows[0][k] for k in keys])
    half_width = 1.96 * differences.std(ddof=1) / np.sqrt(len(keys)) if len(keys) > 1 else float("inf")
    return float(differences.mean()), float(half_width)


def _markdown(frame: pd.DataFrame, digits: int = 1, index: bool = True) -> str:
    flat = frame.copy()
    if isinstance(flat.columns, pd.MultiIndex):
        flat.columns = [" ".join(c) for c in flat.columns]
    return tabulate(flat, headers="keys", tablefmt="github", floatfmt=f".{digits}f", showindex=index)


# --- pictures ----------------------------------------------------------------------------------


def plot_confusion(evaluation: Evaluation, output: Path) -> None:
    """BPAC-Net's class confusion (rows true, columns predicted; row-normalised), amputee +
    non-amputee test parts and the occlusion part, with the detector's and the true keypoints."""
    table = evaluation.table
    labels = [*CLASS_NAMES, "several limbs"]
    fig, axes = plt.subplots(2, 2, figsize=(15, 13))
    for row, (suffix, source) in enumerate(
        (("", "detector keypoints"), ("_true_keypoints", "true keypoints"))
    ):
        for col, (parts, title) in enumerate(
            ((("amputee", "non_amputee"), "amputee + non-amputee test"), (("occlusion",), "occlusion set"))
        ):
            mask = np.isin(table["part"], parts)
            counts = np.array(
                confusion_matrix(
                    torch.from_numpy(table[f"predicted_class{suffix}"][mask]),
                    torch.from_numpy(table["class_index"][mask]),
                    NUM_CLASSES + 1,
                )
            )[:NUM_CLASSES]
            rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
            ax = axes[row, col]
            ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
            for i in range(rates.shape[0]):
                for j in range(rates.shape[1]):
                    if counts[i, j]:
                        ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=6,
                                color="white" if rates[i, j] > 0.5 else "black")  # fmt: skip
            ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
            ax.set_yticks(range(NUM_CLASSES), CLASS_NAMES, fontsize=7)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            ax.set_title(f"{evaluation.title}: {title}, {source}", fontsize=9)
    fig.tight_layout()
    _save(fig, output)


def plot_per_class(evaluations: list[Evaluation], output: Path) -> None:
    frame = per_class_table(evaluations)
    fig, ax = plt.subplots(figsize=(14, 5))
    width = 0.8 / max(len(frame.columns), 1)
    x = np.arange(len(frame.index))
    for i, name in enumerate(frame.columns):
        ax.bar(x + (i - (len(frame.columns) - 1) / 2) * width, frame[name].to_numpy(), width, label=name)
    ax.set_xticks(x, frame.index, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("MPJPE (mm), ground-truth label zeroing")
    ax.set_title("MPJPE per amputation class (A3D test split)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, output)


def _save(fig: plt.Figure, output: Path) -> None:
    with atomic_path(output) as temporary:
        fig.savefig(temporary, format="png", dpi=110)
    plt.close(fig)


def _pick_overlay_rows(table: dict[str, np.ndarray]) -> list[tuple[str, int]]:
    """One test sample per class (amputee part; the non-amputee part for class 12), then one of
    the occlusion set: (row title, row number in the predictions)."""
    picks = []
    for amputation in AMPUTATION_CLASSES:
        part = "non_amputee" if amputation.index == NON_AMPUTEE else "amputee"
        rows = np.flatnonzero((table["part"] == part) & (table["class_index"] == amputation.index))
        if len(rows):
            picks.append((amputation.name, int(rows[0])))
    rows = np.flatnonzero(table["part"] == "occlusion")
    if len(rows):
        picks.append(("occlusion set", int(rows[0])))
    return picks


def draw_overlays(
    evaluations: list[Evaluation],
    dataset_dir: Path,
    body_model: BodyModel,
    output: Path,
    render_backend: str = "auto",
) -> None:
    """A grid: per class one test crop, then the ground-truth mesh and each model's mesh (the
    ground-truth-label protocol) drawn over it."""
    from a3d_data.render import Lights, create_renderer
    from ajahr_model.data.a3d import A3DDataset, index_samples

    renderer = create_renderer(render_backend, "cpu")  # type: ignore[arg-type]
    reference = evaluations[0].table
    picks = _pick_overlay_rows(reference)
    dataset = A3DDataset(index_samples(dataset_dir, "test", list(TEST_PARTS)))
    by_key = {ref.key: i for i, ref in enumerate(dataset.refs)}
    faces = body_model.faces_tensor.long()
    columns = ["image", "ground truth", *[ev.title for ev in evaluations]]
    fig, axes = plt.subplots(len(picks), len(columns), figsize=(2.1 * len(columns), 2.2 * len(picks)))
    axes = np.atleast_2d(axes)
    for r, (title, row) in enumerate(picks):
        key = str(reference["key"][row])
        image, _ = dataset.load(by_key[key])
        labels = dataset.all_labels(by_key[key])
        crop = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy())[None]
        gt = body_model.forward_rotmats(
            torch.from_numpy(labels["rotmats"]).float()[None],
            betas=torch.from_numpy(labels["betas"]).float()[None],
        )
        offset = torch.from_numpy(labels["joints3d_smpl"][0]).float() - gt.joints[0, 0]
        meshes = [(gt.vertices[0] + offset, float(labels["focal"]))]
        for ev in evaluations:
            where = np.flatnonzero(ev.table["key"] == key)
            if not len(where):
                raise ReportInputError(f"{ev.variant}: predictions.npz has no row for test sample {key}")
            i = int(where[0])
            posed = body_model.forward_rotmats(
                torch.from_numpy(ev.table["rotmats"][i].astype(np.float32))[None],
                betas=torch.from_numpy(ev.table["betas"][i])[None],
            )
            meshes.append((posed.vertices[0] + torch.from_numpy(ev.table["cam_t"][i]), FOCAL_LENGTH))
        panels = [crop[0].numpy()]
        for vertices, focal in meshes:
            rendered = renderer.render(
                vertices[None].float(),
                faces,
                torch.tensor([[0.75, 0.55, 0.45]]).expand(1, vertices.shape[0], 3),
                torch.tensor([focal]),
                torch.tensor([[CROP_SIZE / 2, CROP_SIZE / 2]]),
                CROP_SIZE,
                Lights.headlight(1),
                background=crop,
            )
            panels.append(rendered.rgb[0].numpy())
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=7)
            if c == 0:
                ax.set_ylabel(title, fontsize=7)
    fig.suptitle(
        "A3D test crops: ground truth and each model's mesh (ground-truth label zeroing)", fontsize=9
    )
    fig.tight_layout()
    _save(fig, output)


# --- the report --------------------------------------------------------------------------------

PICTURES = {
    "per_class.png": "MPJPE per amputation class (chart)",
    "confusion.png": "BPAC-Net confusion matrices",
    "overlays.png": "Qualitative overlays",
}


def write_report(
    evaluations: list[Evaluation],
    dataset_dir: Path,
    body_model: BodyModel,
    output_dir: Path,
    render_backend: str = "auto",
    profile: str = "",
) -> dict[str, Any]:
    output_dir.mkdir(parents=True, exist_ok=True)
    meshes = mesh_table(evaluations)
    bpac = bpac_table(evaluations)
    per_class = per_class_table(evaluations)
    facts = summary(evaluations)
    plot_per_class(evaluations, output_dir / "per_class.png")
    with_bpac = [ev for ev in evaluations if ev.has_bpac]
    if with_bpac:
        plot_confusion(with_bpac[0], output_dir / "confusion.png")
    else:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no model with BPAC-Net was trained", ha="center")
        _save(fig, output_dir / "confusion.png")
    draw_overlays(evaluations, dataset_dir, body_model, output_dir / "overlays.png", render_backend)

    samples = {part: evaluations[0].metrics["test"][part]["samples"] for part in TEST_PARTS}
    lines = [
        "# AJAHR evaluation on A3D (test split)",
        "",
        f"Profile `{profile}`; test samples per part: "
        + ", ".join(f"{PART_TITLES[p]} {n}" for p, n in samples.items())
        + ". Errors in mm; the 24 SMPL joints, pelvis = mean of the hips; amputated joints of the "
        "prediction zeroed with the ground-truth label (the paper's protocol) unless the row says "
        "BPAC-Net's labels. BPAC-Net sees the keypoint detector's keypoints.",
        "",
        "## Mesh recovery (the analog of the paper's Tables 2 and 3)",
        "",
        _markdown(meshes),
        "",
        "## BPAC-Net (13-way class: accuracy, weighted precision / recall / F1)",
        "",
        _markdown(bpac, 3, index=False) if len(bpac) else "No model with BPAC-Net was trained.",
        "",
        "## MPJPE per amputation class",
        "",
        _markdown(per_class),
        "",
        "## Findings",
        "",
        "Gains are baseline MPJPE minus AJAHR's (positive: AJAHR better), with the half width of the "
        "95% interval of the paired per-sample differences.",
        "",
        *[
            f"- {k}: {v:.1f}" if isinstance(v, float) else f"- {k}: {v}"
            for k, v in facts.get("findings", {}).items()
        ],
        "",
        *[f"## {title}\n\n![{title}]({name})\n" for name, title in PICTURES.items()],
    ]
    with atomic_path(output_dir / "report.md") as temporary:
        temporary.write_text("\n".join(lines) + "\n")
    body = [
        "<h1>AJAHR evaluation on A3D (test split)</h1>",
        f"<p>{html.escape(lines[2])}</p>",
        "<h2>Mesh recovery (the analog of the paper's Tables 2 and 3)</h2>",
        meshes.to_html(float_format=lambda v: f"{v:.1f}"),
        "<h2>BPAC-Net</h2>",
        bpac.to_html(index=False, float_format=lambda v: f"{v:.3f}") if len(bpac) else "<p>none</p>",
        "<h2>MPJPE per amputation class</h2>",
        per_class.to_html(float_format=lambda v: f"{v:.1f}"),
        "<h2>Findings</h2><ul>",
        *[f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in facts.get("findings", {}).items()],
        "</ul>",
        *[
            f'<h2>{title}</h2><img src="{name}" alt="{title}" style="max-width:100%">'
            for name, title in PICTURES.items()
        ],
    ]
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>AJAHR evaluation</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )
    with atomic_path(output_dir / "report.html") as temporary:
        temporary.write_text(page)
    with atomic_path(output_dir / "metrics.json") as temporary:
        temporary.write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
    log.info("wrote the report to %s", output_dir)
    return facts


__all__ = ["SEVERAL_LIMBS", "ReportInputError", "load_evaluations", "write_report"]
