"""Loss curves of a training run, drawn as PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from a3d_data.atomic import atomic_path  # noqa: E402


def plot_history(history: list[dict[str, float]], path: Path, title: str, terms: list[str]) -> None:
    """The total loss and each unweighted term (log scale) against the step, and the throughput."""
    fig, (ax_loss, ax_speed) = plt.subplots(1, 2, figsize=(11, 4))
    if history:
        steps = [row["step"] for row in history]
        ax_loss.plot(steps, [row["loss"] for row in history], label="total (weighted)", color="black", lw=2)
        for term in terms:
            if term in history[0]:
                ax_loss.plot(steps, [row[term] for row in history], label=term, lw=1)
        ax_loss.set_yscale("log")
        ax_speed.plot(steps, [row["images_per_s"] for row in history], color="tab:green")
    ax_loss.set(xlabel="step", ylabel="loss (terms unweighted)", title=title)
    ax_loss.legend(fontsize=7)
    ax_speed.set(xlabel="step", ylabel="images / s", title="training throughput")
    fig.tight_layout()
    with atomic_path(path) as temporary:
        fig.savefig(temporary, format="png", dpi=110)
    plt.close(fig)
