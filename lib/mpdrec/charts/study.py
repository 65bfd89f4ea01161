"""The charts study as one stage over the run's interactions (jobs/charts_study.py): the matrices,
popularity as the reference, the IMF grid, the five networks on IMF's objective (its best alpha), EPR
on train and validation for each, and the country arithmetic; report.json, report.md and a figure in
`<run_dir>/charts/`."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from pyspark.sql import SparkSession

from mpdrec.charts import arithmetic, imf, matrix, networks
from mpdrec.charts.epr import expected_percentile_rank
from mpdrec.config import Config
from mpdrec.io.fs import HadoopFS
from mpdrec.io.report import write_report
from mpdrec.report_plots import figure, png
from mpdrec.spark import job_step
from mpdrec.upstream import TABLE_INTERACTIONS, run_after

log = logging.getLogger("mpdrec.charts")
STAGE = "charts"


def _markdown(r: dict[str, Any]) -> str:
    lines = [
        "# Country x song streams",
        "",
        f"{r['countries']} countries x {r['songs']} songs; {r['entries']['train']:,} training and "
        f"{r['entries']['validation']:,} validation entries. EPR: 0 = every streamed song first, 0.5 = random.",
        "",
        "| model | EPR train | EPR validation |",
        "|---|---|---|",
    ]
    lines += [f"| {m['model']} | {m['epr_train']:.4f} | {m['epr_validation']:.4f} |" for m in r["models"]]
    lines += [
        "",
        "## IMF grid",
        "",
        "| rank | alpha | lambda | EPR train | EPR validation | seconds |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {g['rank']} | {g['alpha']:g} | {g['reg_param']:g} | {g['epr_train']:.4f} | {g['epr_validation']:.4f} "
        f"| {g['seconds']} |"
        for g in r["grid"]
    ]
    for a in r["arithmetic"]:
        lines += ["", f"## {a['expression']}", ""] + [
            f"{k + 1}. {s['title'] or s['song']} ({s['artist'] or 'unknown'})" for k, s in enumerate(a["songs"])
        ]
    return "\n".join([*lines, "", "![EPR](report_charts_epr.png)", ""])


def _epr_figure(r: dict[str, Any]) -> bytes:
    fig, axes = figure(1, 8)
    ax = axes[0][0]
    names = [m["model"] for m in r["models"]]
    x = np.arange(len(names))
    ax.bar(x - 0.2, [m["epr_train"] for m in r["models"]], 0.4, label="train")
    ax.bar(x + 0.2, [m["epr_validation"] for m in r["models"]], 0.4, label="validation")
    ax.set_xticks(x, names, rotation=30, fontsize=8)
    ax.set_ylabel("expected percentile ranking (lower is better)")
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=0.8)
    ax.legend(fontsize=8)
    return png(fig)


def run_study(spark: SparkSession, cfg: Config, interactions_dir: str, out_dir: str) -> dict[str, Any]:
    c = cfg.charts
    data = matrix.load(spark, interactions_dir, c, cfg.seed)
    popular = np.broadcast_to(data.train.sum(axis=0), data.train.shape)
    models = [
        {
            "model": "popularity",
            "epr_train": expected_percentile_rank(popular, data.train),
            "epr_validation": expected_percentile_rank(popular, data.validation, data.train > 0),
        }
    ]
    with job_step(spark, "charts: IMF grid"):
        grid, best = imf.grid(spark, data, c, cfg.seed)
    chosen = min(grid, key=lambda g: g["epr_validation"])
    models.append(
        {
            "model": f"imf (rank {chosen['rank']}, alpha {chosen['alpha']:g}, lambda {chosen['reg_param']:g})",
            "epr_train": chosen["epr_train"],
            "epr_validation": chosen["epr_validation"],
        }
    )
    for kind in c.networks:
        started = time.perf_counter()
        result = networks.fit_scores(kind, data, chosen["alpha"], c, cfg.seed)
        models.append({"model": kind, **result, "seconds": round(time.perf_counter() - started, 2)})
        log.info("charts %s: EPR train %.4f validation %.4f", kind, result["epr_train"], result["epr_validation"])
    body = {
        "countries": len(data.countries),
        "songs": len(data.songs),
        "entries": {"train": int((data.train > 0).sum()), "validation": int((data.validation > 0).sum())},
        "alpha": chosen["alpha"],
        "grid": grid,
        "models": models,
        "arithmetic": [arithmetic.recommend(e, best, data, c.arithmetic_top) for e in c.arithmetic],
    }
    write_report(HadoopFS(spark), out_dir, body, _markdown(body), {"report_charts_epr.png": _epr_figure(body)})
    return body


def run_charts(spark: SparkSession, cfg: Config, force: bool = False) -> dict[str, Any]:
    return run_after(
        spark,
        cfg,
        STAGE,
        *TABLE_INTERACTIONS,
        ("seed", "charts"),
        lambda interactions, staging: run_study(spark, cfg, interactions, staging),
        force,
    )
