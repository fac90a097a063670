"""The loss-curve figure of a tokenizer run: training loss terms and held-out errors against steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter  # noqa: E402

from a3d_data.atomic import atomic_path  # noqa: E402

# The weighted loss terms drawn, in the order of the legend.
_TERMS = ("rotmat", "vertices", "joints", "commit", "sixd")


def draw_loss_curve(
    history: list[dict[str, Any]], evaluations: list[dict[str, Any]], title: str, output: Path
) -> Path:
    """Write a two-panel PNG to ``output`` (atomically).

    Parameters
    ----------
    history : training log, one record per logging interval: ``step``, ``loss`` and the
        weighted terms ``w_<term>`` (means over the interval), ``noise``, ``lr``.
    evaluations : held-out records: ``step``, ``normal_mpjpe_mm``, ``normal_mve_mm``,
        ``amputee_mpjpe_mm``, ``amputee_mve_mm``.
    title : the figure title (the tokenizer's name and profile).
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    steps = [record["step"] for record in history]
    left.plot(steps, [record["loss"] for record in history], color="black", lw=1.6, label="total")
    for term in _TERMS:
        values = [record.get(f"w_{term}", 0.0) for record in history]
        if any(v > 0 for v in values):
            left.plot(steps, values, lw=1.0, label=f"{term} (weighted)")
    left.set_yscale("log")
    left.set_xlabel("step")
    left.set_ylabel("training loss (mean per logging interval)")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    if evaluations:
        eval_steps = [record["step"] for record in evaluations]
        styles = {
            "normal_mpjpe_mm": "-o",
            "normal_mve_mm": "--o",
            "amputee_mpjpe_mm": "-s",
            "amputee_mve_mm": "--s",
        }
        for key, style in styles.items():
            right.plot(
                eval_steps, [record[key] for record in evaluations], style, ms=3, label=key.replace("_", " ")
            )
        right.set_yscale("log")
        # Millimetres read better as plain numbers than as powers of ten.
        right.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        right.yaxis.set_major_formatter(ScalarFormatter())
        right.yaxis.set_minor_formatter(NullFormatter())
        right.legend(fontsize=8)
    right.set_xlabel("step")
    right.set_ylabel("held-out error (mm)")
    right.grid(True, which="both", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(output) as temporary:
        fig.savefig(temporary)
    plt.close(fig)
    return output
