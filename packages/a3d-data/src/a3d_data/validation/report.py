"""The validation gate end to end: statistics, suites, and the report (Markdown, HTML, JSON metrics).

The Markdown and HTML reports are rendered from one list of blocks, so they always say the same
thing. ``validation.json`` is flat (one level, numbers and booleans only) so that ``dvc metrics
show`` and ``dvc metrics diff`` can display it.
"""

from __future__ import annotations

import html
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from a3d_data.atomic import atomic_path
from a3d_data.synthesis.schema import PARTS, SPLITS
from a3d_data.validation.params import ValidateA3DParams
from a3d_data.validation.statistics import (
    NON_AMPUTEE_CLASS,
    NUM_AMPUTEE_CLASSES,
    DatasetReadError,
    DatasetStatistics,
    collect_statistics,
)
from a3d_data.validation.suite import ExpectationOutcome, run_suites

log = logging.getLogger(__name__)

REPORT_MARKDOWN = "validation.md"
REPORT_HTML = "validation.html"
REPORT_METRICS = "validation.json"
# Exit codes of main(): the gate passed, the gate failed, the dataset could not be read at all.
EXIT_OK, EXIT_FAILED, EXIT_UNREADABLE = 0, 1, 2


@dataclass(frozen=True)
class ValidationResult:
    """The verdict on one dataset folder.

    ``outcomes``: one per expectation, in suite order; ``metrics``: the flat numbers written to
    validation.json; ``statistics``: the tables the suites tested (for inspection);
    ``seconds``: wall time of the whole validation.
    """

    success: bool
    outcomes: tuple[ExpectationOutcome, ...]
    metrics: dict[str, float | int | bool]
    statistics: DatasetStatistics
    report_dir: Path
    seconds: float

    @property
    def failed_checks(self) -> tuple[str, ...]:
        """Names of the expectations that failed, e.g. ``"index.absent_mask_matches_class"``."""
        return tuple(o.check for o in self.outcomes if not o.success)

    def outcome(self, check: str) -> ExpectationOutcome:
        """The outcome of one named check."""
        for o in self.outcomes:
            if o.check == check:
                return o
        raise KeyError(f"no expectation named {check!r}")


def _checksum_failures(shards: pd.DataFrame) -> int:
    if "sha256" not in shards:
        return len(shards)
    return int((shards["file_exists"] & (shards["sha256"] != shards["sha256_actual"])).sum())


def dataset_metrics(statistics: DatasetStatistics, outcomes: list[ExpectationOutcome]) -> dict[str, Any]:
    """Flat metrics: verdict, counts per split and part, amputee fractions, class shares."""
    index, shards, splits, classes = (
        statistics.index,
        statistics.shards,
        statistics.splits,
        statistics.classes,
    )
    failed = sum(not o.success for o in outcomes)
    metrics: dict[str, Any] = {
        "success": failed == 0,
        "expectations_evaluated": len(outcomes),
        "expectations_failed": failed,
        "samples": len(index),
        "shards": len(shards),
        "shards_checksum_failed": _checksum_failures(shards),
        "shards_missing": int((~shards["file_exists"]).sum()),
        "images_checked": int(shards["images_checked"].sum()),
        "images_failed": int(shards["images_failed"].sum()),
        "labels_failed": int((index["label_problem"] != "").sum()),
        "bytes": int(shards["bytes_actual"].clip(lower=0).sum()),
    }
    for row in splits.to_dict("records"):
        split = row["split"]
        metrics[f"samples_{split}"] = row["num_samples"]
        for part in PARTS:
            metrics[f"samples_{split}_{part}"] = row[f"num_{part}"]
        metrics[f"amputee_fraction_{split}"] = round(row["amputee_fraction"], 6)
        metrics[f"class_balance_max_deviation_{split}"] = round(row["max_class_deviation"], 6)
    for row in classes.to_dict("records"):
        metrics[f"class_share_{row['split']}_{row['class_index']:02d}"] = round(row["share"], 6)
    return {k: v.item() if hasattr(v, "item") else v for k, v in metrics.items()}


# A report is a list of blocks: ("h1"|"h2"|"h3"|"p", text) or ("table", headers, rows).
Block = tuple


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    return str(value)


def _example_table(outcome: ExpectationOutcome) -> Block:
    headers = list(dict.fromkeys(k for e in outcome.examples for k in e))
    return ("table", headers, [[e.get(h, "") for h in headers] for e in outcome.examples])


def _figures(statistics: DatasetStatistics) -> list[Block]:
    from a3d_data.amputation.table import AMPUTATION_CLASSES

    index, splits, classes, shards = (
        statistics.index,
        statistics.splits,
        statistics.classes,
        statistics.shards,
    )
    blocks: list[Block] = [("h2", "Dataset")]
    rows = [
        [
            r["split"],
            r["num_samples"],
            *(r[f"num_{p}"] for p in PARTS),
            r["amputee_fraction"],
            r["max_class_deviation"],
        ]
        for r in splits.to_dict("records")
    ]
    blocks += [
        ("h3", "Samples per split and part"),
        ("table", ["split", "samples", *PARTS, "amputee fraction", "max class deviation"], rows),
    ]
    counts = classes.pivot(index="class_index", columns="split", values="count").reindex(columns=list(SPLITS))
    shares = classes.pivot(index="class_index", columns="split", values="share").reindex(columns=list(SPLITS))
    rows = [
        [
            c,
            AMPUTATION_CLASSES[c].name,
            *(f"{counts.loc[c, s]} ({100 * shares.loc[c, s]:.1f}%)" for s in SPLITS),
        ]
        for c in range(NUM_AMPUTEE_CLASSES)
    ]
    if "class_index" in index and "split" in index:
        non_amputee = [
            int(((index["split"] == s) & (index["class_index"] == NON_AMPUTEE_CLASS)).sum()) for s in SPLITS
        ]
        rows.append([NON_AMPUTEE_CLASS, AMPUTATION_CLASSES[NON_AMPUTEE_CLASS].name, *non_amputee])
    blocks += [
        ("h3", "Samples per class (share of the split's amputee samples)"),
        ("table", ["class", "name", *SPLITS], rows),
    ]
    shard_columns = [
        "shard",
        "split",
        "part",
        "num_samples",
        "rows_in_index",
        "samples_in_tar",
        "file_exists",
        "images_checked",
        "images_failed",
        "labels_ok",
        "tar_problem",
    ]
    shown = [c for c in shard_columns if c in shards]
    checksum = (shards["sha256"] == shards["sha256_actual"]) if "sha256" in shards else False
    rows = [[*r, bool(ok)] for r, ok in zip(shards[shown].values.tolist(), checksum, strict=False)]
    blocks += [("h3", "Shards"), ("table", [*shown, "checksum ok"], rows)]
    failures = statistics.image_failures
    if len(failures):
        blocks += [
            ("h3", "Images that failed to decode"),
            ("table", list(failures.columns), failures.values.tolist()),
        ]
    return blocks


def report_blocks(result: ValidationResult) -> list[Block]:
    """The report's content: verdict, failed expectations with examples, dataset figures, all expectations."""
    outcomes = result.outcomes
    met = sum(o.success for o in outcomes)
    verdict = "PASSED" if result.success else "FAILED"
    m = result.metrics
    blocks: list[Block] = [
        ("h1", f"A3D validation: {verdict}"),
        (
            "p",
            f"{verdict}: {met} of {len(outcomes)} expectations met on {result.statistics.dataset_dir} "
            f"({m['samples']} samples in {m['shards']} shards; {m['images_checked']} images decoded, "
            f"{m['images_failed']} failed; validated in {result.seconds:.1f} s).",
        ),
    ]
    failed = [o for o in outcomes if not o.success]
    if failed:
        blocks.append(("h2", f"Failed expectations ({len(failed)})"))
        for o in failed:
            blocks += [
                ("h3", f"{o.check}: {o.description}"),
                ("p", f"{o.expectation}; observed: {o.observed}"),
            ]
            if o.examples:
                blocks.append(_example_table(o))
    blocks += _figures(result.statistics)
    rows = [["pass" if o.success else "FAIL", o.check, o.description, o.observed] for o in outcomes]
    blocks += [("h2", "All expectations"), ("table", ["result", "check", "description", "observed"], rows)]
    return blocks


def _markdown(blocks: list[Block]) -> str:
    def escape(value: Any) -> str:
        return _cell(value).replace("|", "\\|").replace("\n", " ")

    lines: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "table":
            _, headers, rows = block
            lines += ["| " + " | ".join(escape(h) for h in headers) + " |", "|" + "---|" * len(headers)]
            lines += ["| " + " | ".join(escape(v) for v in row) + " |" for row in rows]
        else:
            prefix = {"h1": "# ", "h2": "## ", "h3": "### ", "p": ""}[kind]
            lines.append(prefix + block[1])
        lines.append("")
    return "\n".join(lines)


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.pass { color: #1a7f37; font-weight: bold; }
td.FAIL { color: #c62828; font-weight: bold; }
h1.PASSED { color: #1a7f37; } h1.FAILED { color: #c62828; }
"""


def _html(blocks: list[Block], verdict: str) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>A3D validation: {verdict}</title><style>{_STYLE}</style></head><body>",
    ]
    for block in blocks:
        kind = block[0]
        if kind == "table":
            _, headers, rows = block
            parts.append(
                "<table><tr>" + "".join(f"<th>{html.escape(_cell(h))}</th>" for h in headers) + "</tr>"
            )
            for row in rows:
                cells = []
                for value in row:
                    text = _cell(value)
                    css = f' class="{text}"' if text in ("pass", "FAIL") else ""
                    cells.append(f"<td{css}>{html.escape(text)}</td>")
                parts.append("<tr>" + "".join(cells) + "</tr>")
            parts.append("</table>")
        else:
            css = f' class="{verdict}"' if kind == "h1" else ""
            parts.append(f"<{kind}{css}>{html.escape(block[1])}</{kind}>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(result: ValidationResult) -> None:
    """Write validation.md, validation.html and validation.json into ``result.report_dir``, atomically."""
    blocks = report_blocks(result)
    verdict = "PASSED" if result.success else "FAILED"
    texts = {
        REPORT_MARKDOWN: _markdown(blocks),
        REPORT_HTML: _html(blocks, verdict),
        REPORT_METRICS: json.dumps(result.metrics, indent=2, sort_keys=True) + "\n",
    }
    for name, text in texts.items():
        with atomic_path(result.report_dir / name) as temporary:
            temporary.write_text(text, encoding="utf-8")


def validate_dataset(dataset_dir: Path, params: ValidateA3DParams, report_dir: Path) -> ValidationResult:
    """Validate the A3D dataset folder ``dataset_dir`` and write the report into ``report_dir``.

    Returns the verdict with every expectation's outcome. Raises
    :class:`~a3d_data.validation.statistics.DatasetReadError` (and writes no report) when
    index.parquet or shards.parquet is missing or unreadable.
    """
    started = time.perf_counter()
    statistics = collect_statistics(Path(dataset_dir), params)
    outcomes = run_suites(statistics, params)
    metrics = dataset_metrics(statistics, outcomes)
    result = ValidationResult(
        success=bool(metrics["success"]),
        outcomes=tuple(outcomes),
        metrics=metrics,
        statistics=statistics,
        report_dir=Path(report_dir),
        seconds=time.perf_counter() - started,
    )
    write_report(result)
    level = logging.INFO if result.success else logging.ERROR
    log.log(
        level,
        "A3D validation %s: %d of %d expectations met; report in %s",
        "passed" if result.success else "FAILED",
        len(outcomes) - len(result.failed_checks),
        len(outcomes),
        report_dir,
    )
    for check in result.failed_checks:
        outcome = result.outcome(check)
        log.error("failed %s (%s): %s", check, outcome.description, outcome.observed)
    return result


def main(dataset_dir: Path, params: ValidateA3DParams, report_dir: Path) -> int:
    """Run the gate; the exit code for a CLI: 0 passed, 1 failed, 2 dataset unreadable."""
    try:
        result = validate_dataset(dataset_dir, params, report_dir)
    except DatasetReadError as err:
        log.error("%s", err)
        return EXIT_UNREADABLE
    return EXIT_OK if result.success else EXIT_FAILED
