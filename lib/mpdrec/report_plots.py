"""The report's figures: metrics by category per model, the candidates' recall by source, and the
NCF models' training curves. Each is PNG bytes, so the caller writes it wherever the run lives."""

from __future__ import annotations

import io
from typing import Any

from mpdrec.categories import CATEGORIES


def png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def figure(columns: int, width: float, height: float = 4) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, columns, figsize=(width, height), squeeze=False)


def by_category(models: dict[str, dict[str, Any]]) -> bytes:
    """R-precision and NDCG per challenge category as a dot plot: the categories are named rows (not
    points of a series, so no line joins them), each model a marker on every row, `final` the largest."""
    fig, axes = figure(2, 14, height=0.45 * len(CATEGORIES) + 1.5)
    rows = range(len(CATEGORIES))
    labels = [f"{c.id}: {c.label}" for c in CATEGORIES]
    markers = "oDs^v<>pPX*h"
    for ax, metric in zip(axes[0], ("r_precision", "ndcg")):
        for i, (name, m) in enumerate(models.items()):
            values = [m["by_category"].get(str(c.id), {}).get(metric, float("nan")) for c in CATEGORIES]
            final = name == "final"
            ax.scatter(
                values,
                rows,
                label=name,
                marker=markers[i % len(markers)],
                s=70 if final else 28,
                zorder=3 if final else 2,
                edgecolors="black" if final else "none",
            )
        ax.set_yticks(list(rows), labels)
        ax.invert_yaxis()  # category 1 on top, as in the report's table
        ax.grid(axis="y", color="0.9", zorder=0)
        ax.set(title=f"{metric} by challenge category", xlabel=metric)
    axes[0][1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return png(fig)


def recall_by_source(recall: dict[str, float]) -> bytes:
    """The share of hidden tracks each source's candidates reach, and their union."""
    fig, axes = figure(1, 6)
    ax = axes[0][0]
    ax.bar(list(recall), list(recall.values()), color=["C0"] * (len(recall) - 1) + ["C3"])
    ax.set(title="candidate recall of the hidden tracks", ylabel="recall", ylim=(0, 1))
    return png(fig)


def ncf_curves(histories: dict[str, list[dict[str, Any]]]) -> bytes:
    """Training loss and leave-one-out HR@10 per epoch, one line per NCF model."""
    fig, axes = figure(2, 11)
    loss, hr = axes[0]
    for name, history in histories.items():
        epochs = [h["epoch"] for h in history]
        loss.plot(epochs, [h["loss"] for h in history], marker="o", label=name)
        hr.plot(epochs, [h["hr@10"] for h in history], marker="o", label=name)
    loss.set(title="NCF training loss", xlabel="epoch")
    hr.set(title="NCF leave-one-out HR@10", xlabel="epoch", ylim=(0, 1))
    for ax in (loss, hr):
        ax.legend(fontsize=8)
    return png(fig)


def als_holdout(grid: list[dict[str, Any]], popularity: dict[str, float]) -> bytes:
    """A table run's ALS grid: each point's R-precision and NDCG on the held-out users, popularity's
    on the same users as a dashed line."""
    fig, axes = figure(2, 11)
    labels = [f"r{g['point']['rank']} a{g['point']['alpha']:g} l{g['point']['reg_param']:g}" for g in grid]
    for ax, metric in zip(axes[0], ("r_precision", "ndcg")):
        ax.bar(range(len(grid)), [g[metric] for g in grid], color="C0", label="als")
        ax.axhline(popularity[metric], color="C3", linestyle="--", label="popularity")
        ax.set_xticks(range(len(grid)), labels, rotation=45, ha="right", fontsize=7)
        ax.set(title=f"{metric} on the held-out users, per ALS grid point")
        ax.legend(fontsize=8)
    return png(fig)
