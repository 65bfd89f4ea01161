"""Stage 7: score each model's validation submission with the official metrics; write the report.

The submission CSV itself is scored (what would be uploaded), against `validation/ground_truth`,
over every playlist of the validation challenge (nothing is fitted or tuned on it: the blend and the
ALS grid use the blend-training challenge), overall and per challenge category, with a paired
bootstrap interval for the final ranking minus the best single model (`mpdrec.lists.scoring`
scores each list).
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import pandas as pd
from pyspark.sql import SparkSession

from mpdrec import report_plots
from mpdrec.categories import CATEGORIES
from mpdrec.config import NCF_MODELS
from mpdrec.io.fs import HadoopFS
from mpdrec.io.paths import MANIFEST, join, to_uri
from mpdrec.io.report import write_report
from mpdrec.io.stage import read_manifest
from mpdrec.lists.scoring import ValidationTruth
from mpdrec.metrics.bootstrap import paired_difference
from mpdrec.metrics.recsys2018 import summarise
from mpdrec.upstream import VALIDATION, upstream

log = logging.getLogger("mpdrec.evaluate")
METRICS = ("r_precision", "ndcg", "clicks", "ndcg_rules")
SCORED = (VALIDATION, ("rank", "jobs/rank_candidates.py"))  # the stages an MPD run's report reads
DEFINITIONS = (
    "R-precision: track hits among the first |G| recommendations, plus 0.25 per distinct hidden "
    "artist among that window's misses, over |G|; NDCG: the organisers' (DCG with discount "
    "log2(i + 1) over the ideal DCG of min(|G|, 500) hits: the leaderboard's scale); clicks: "
    "the 10-track page of the first hit, 51 without one (lower is better); NDCG (rules): the "
    "rules page's text, IDCG over the hits alone (not comparable with the leaderboard)."
)


def compare_with_best_source(
    scores: dict[str, pd.DataFrame], final: str, seed: int, variants: tuple[str, ...] = ()
) -> dict[str, Any]:
    """`final` minus the best other model (never one of the blend `variants`: they are re-rankings,
    not sources), per metric (r_precision, ndcg): the difference of means over the playlists and its
    paired bootstrap 95% interval (`mpdrec.metrics.bootstrap`)."""
    others = [m for m in scores if m != final and m not in variants]
    out: dict[str, Any] = {}
    for metric in ("r_precision", "ndcg"):
        best = max(others, key=lambda m: scores[m][metric].mean())
        out[metric] = {"best_source": best, **compare(scores, final, best, seed, (metric,))[metric]}
    return out


def compare(
    scores: dict[str, pd.DataFrame],
    model: str,
    other: str,
    seed: int,
    metrics: tuple[str, ...] = ("r_precision", "ndcg"),
) -> dict[str, Any]:
    """`model` minus `other` per metric: the difference of means and its paired bootstrap 95% interval."""
    return {
        metric: paired_difference(scores[model][metric].to_numpy(), scores[other][metric].to_numpy(), seed)
        for metric in metrics
    }


def markdown(report: dict[str, Any]) -> str:
    """report.md: overall table, then one table per metric with a column per category."""
    models = report["models"]
    v = report["validation"]
    out = [
        "# mpdrec report",
        "",
        f"Validation challenge: {v['playlists']} playlists, {v['per_category']} per "
        f"category, every one scored (the blend and the ALS grid learn from a separate blend-training "
        f"challenge of {v['train_playlists']} playlists).",
        "",
        DEFINITIONS,
        "",
        "## Overall",
        "",
        "| model | R-precision | NDCG | clicks | NDCG (rules) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, m in models.items():
        o = m["overall"]
        out.append(f"| {name} | {o['r_precision']:.4f} | {o['ndcg']:.4f} | {o['clicks']:.2f} | {o['ndcg_rules']:.4f} |")
    if "final_vs_best" in report:
        out += [
            "",
            "## Final minus the best single model",
            "",
            "| metric | best single model | difference | 95% interval |",
            "| --- | --- | --- | --- |",
        ]
        out += [
            f"| {metric} | {c['best_source']} | {c['difference']:+.4f} | [{c['low']:+.4f}, {c['high']:+.4f}] |"
            for metric, c in report["final_vs_best"].items()
        ]
    for variant, diff in report.get("final_vs_variants", {}).items():
        out += [
            "",
            f"## Final minus {variant}",
            "",
            "The same candidates and fitting rows; only the re-ranker's inputs differ.",
            "",
            "| metric | difference | 95% interval |",
            "| --- | --- | --- |",
        ]
        out += [
            f"| {metric} | {c['difference']:+.4f} | [{c['low']:+.4f}, {c['high']:+.4f}] |" for metric, c in diff.items()
        ]
    if report.get("leave_one_out"):
        out += [
            "",
            "## Leave-one-out (the NCF paper's protocol)",
            "",
            LEAVE_ONE_OUT,
            "",
            "| model | HR@10 | NDCG@10 | AUC |",
            "| --- | --- | --- | --- |",
        ]
        out += [
            f"| {name} | {m['hr@10']:.4f} | {m['ndcg@10']:.4f} | {m['auc']:.4f} |"
            for name, m in report["leave_one_out"].items()
        ]
    for metric in METRICS:
        out += [
            "",
            f"## {metric} by category",
            "",
            "| model | " + " | ".join(f"{c.id}: {c.label}" for c in CATEGORIES) + " |",
            "| --- " * (len(CATEGORIES) + 1) + "|",
        ]
        for name, m in models.items():
            cells = [m["by_category"].get(str(c.id), {}).get(metric) for c in CATEGORIES]
            out.append(f"| {name} | " + " | ".join("" if v is None else f"{v:.4f}" for v in cells) + " |")
    out += _study_sections(report.get("studies", {}))
    out += ["", "## Figures", ""] + [f"![{name}]({name})" for name in report.get("figures", [])]
    if "rank" in report:
        out += _rank_sections(report["rank"])
    return "\n".join(out + timing_and_config_sections(report)) + "\n"


def timing_and_config_sections(report: dict[str, Any]) -> list[str]:
    """report.md's last sections, for an MPD run's report and a table run's: stage timings, configuration."""
    out = ["", "## Stage timings", "", "| stage | seconds |", "| --- | --- |"]
    out += [f"| {stage} | {seconds:.1f} |" for stage, seconds in report.get("stage_seconds", [])]
    if "config" in report:
        out += ["", "## Configuration", "", "```json", json.dumps(report["config"], indent=1, sort_keys=True), "```"]
    return out


def _rank_sections(rank: dict[str, Any]) -> list[str]:
    """report.md: the candidate set's recall by source, the blend's weights, the ranking's steps."""
    c, blend = rank["candidates"], rank["blend"]
    out = [
        "",
        "## Candidates",
        "",
        f"{c['rows']:,} (playlist, track) candidates; per source its top "
        + ", ".join(f"{k} {v}" for k, v in c["depth"].items())
        + ". Recall: the share of the validation "
        "playlists' hidden tracks among them (what any re-ranking can reach).",
        "",
        "| source | recall |",
        "| --- | --- |",
    ]
    out += [f"| {k} | {v:.4f} |" for k, v in c.get("recall", {}).items()]
    out += [
        "",
        "## Blend",
        "",
        f"Method: {blend['method']}"
        + (f" ({blend['reason']})" if "reason" in blend else "")
        + f"; fitted on {blend['fit_positives']:,} hidden tracks among the blend-training challenge's "
        "candidates.",
        "",
    ]
    weights = blend.get("feature_importances") or blend.get("coefficients") or {}
    if weights:
        kind = "importance" if "feature_importances" in blend else "coefficient"
        out += [f"| feature | {kind} |", "| --- | --- |"]
        out += [f"| {k} | {v:.4f} |" for k, v in sorted(weights.items(), key=lambda kv: -abs(kv[1]))]
    out += [
        "",
        "## Ranking steps (the blend-training challenge, then the validation challenge)",
        "",
        "| step | seconds |",
        "| --- | --- |",
    ]
    out += [f"| {k} | {v:.1f} |" for k, v in rank["seconds"]]
    return out


STAGES = (
    "ingest",
    "table",
    "validation",
    "interactions",
    "negatives",
    "als",
    "als_leave_one_out",
    *(f"ncf/{m}" for m in NCF_MODELS),
    "dae",
    "rank",
    "dice",
    "followers",
)
LEAVE_ONE_OUT_DIRS = {"als": "als_leave_one_out", "dae": "dae"}  # a model's scored stage (NCF's: ncf/<model>)
LEAVE_ONE_OUT = (
    "Each evaluated training playlist's last track is held out of the models' training data and "
    "ranked among the same sampled non-positive tracks for every model (HR@10: in the top 10; "
    "NDCG@10: 1 / log2(rank + 2) there; AUC: the share of negatives ranked below it)."
)


def studies(fs: HadoopFS, run_dir: str) -> dict[str, Any]:
    """The headline numbers of the studies this run has: the Dice neighbours' hit rate
    (`jobs/playlist_neighbours.py`), the followers regression (`jobs/predict_followers.py`) and each
    NCF model's balanced test at its best epoch; each study's own report has the rest."""

    def manifest(stage: str) -> dict[str, Any] | None:
        return read_manifest(fs, join(run_dir, stage))

    out: dict[str, Any] = {}
    if (dice := manifest("dice")) is not None:
        out["dice"] = {"held_out": dice["held_out"], "hit_rate": dice["hit_rate"]}
    if (followers := manifest("followers")) is not None:
        out["followers"] = {
            "test": followers["test"],
            "log_target": followers["log_target"],
            "results": followers["results"],
        }
    balanced = {m: b["balanced"]["best"] for m in NCF_MODELS if (b := manifest(f"ncf/{m}")) and "balanced" in b}
    if balanced:
        out["ncf_balanced"] = balanced
    return out


def _study_sections(s: dict[str, Any]) -> list[str]:
    out = ["", "## Studies"] if s else []
    if "dice" in s:
        out += [
            "",
            f"Dice playlist neighbours ([dice/report.md](dice/report.md)): {s['dice']['held_out']:,} held-out "
            "playlists, the hidden first track among 100 recommendations.",
            "",
            "| model | hit rate | 95% interval |",
            "| --- | --- | --- |",
        ]
        out += [
            f"| {m} | {h['mean']:.4f} | [{h['low']:.4f}, {h['high']:.4f}] |" for m, h in s["dice"]["hit_rate"].items()
        ]
    if "followers" in s:
        scale = "log(1 + followers)" if s["followers"]["log_target"] else "followers"
        out += [
            "",
            f"Followers ([followers/report.md](followers/report.md)): {s['followers']['test']:,} held-out "
            f"playlists, error of {scale}.",
            "",
            "| model | RMSE | R^2 |",
            "| --- | --- | --- |",
        ]
        key = "log" if s["followers"]["log_target"] else "followers"
        out += [f"| {m} | {r[key]['rmse']:.4f} | {r[key]['r2']:+.4f} |" for m, r in s["followers"]["results"].items()]
    if "ncf_balanced" in s:
        out += [
            "",
            "The NNCF study's balanced test (each held-out track and one sampled negative), best epoch:",
            "",
            "| model | accuracy | ROC AUC | pairs |",
            "| --- | --- | --- | --- |",
        ]
        out += [
            f"| {m} | {b['accuracy']:.4f} | {b['roc_auc']:.4f} | {b['pairs']:,} |" for m, b in s["ncf_balanced"].items()
        ]
    return out


def leave_one_out_table(fs: HadoopFS, run_dir: str, models: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Popularity, then each of `models` ("als": `als_leave_one_out/`; "dae": `dae/`; an NCF model:
    `ncf/<model>/`)
    that the run has, on the leave-one-out set. Popularity on the same candidates and positives is
    the same number in every manifest; a model whose manifest has another was scored on another set
    (a stale output) and is left out, with a warning, rather than compared."""
    table: dict[str, dict[str, float]] = {}
    for name in models:
        uri = join(run_dir, LEAVE_ONE_OUT_DIRS.get(name, join("ncf", name)), MANIFEST)
        if not fs.exists(uri):
            continue
        m = json.loads(fs.read_text(uri))
        reference = table.setdefault("popularity", m["popularity"])
        if not all(math.isclose(reference[k], m["popularity"][k], rel_tol=1e-9) for k in reference):  # sums by rank
            log.warning(
                "evaluate: %s was scored on another leave-one-out set than %s; left out of the table",
                uri,
                ", ".join(k for k in table if k != "popularity"),
            )
            continue
        table[name] = m["metrics"]
    return table


def stage_seconds(fs: HadoopFS, run_dir: str) -> list[list[Any]]:
    """[stage, seconds] for every finished stage of the run, in pipeline order."""
    out = []
    for stage in STAGES:
        uri = join(run_dir, stage, MANIFEST)
        if fs.exists(uri):
            out.append([stage, json.loads(fs.read_text(uri)).get("seconds_total")])
    return out


def _figures(fs: HadoopFS, run_dir: str, report: dict[str, Any]) -> dict[str, bytes]:
    """report_*.png: metrics by category, candidate recall (when ranked in two stages), NCF curves."""
    figures = {"report_by_category.png": report_plots.by_category(report["models"])}
    recall = report.get("rank", {}).get("candidates", {}).get("recall")
    if recall:
        figures["report_recall.png"] = report_plots.recall_by_source(recall)
    return figures | ncf_figure(fs, run_dir)


def ncf_figure(fs: HadoopFS, run_dir: str) -> dict[str, bytes]:
    """report_ncf.png, the training curves of every NCF model the run trained (none: no figure)."""
    histories = {
        m: json.loads(fs.read_text(join(run_dir, "ncf", m, "history.json")))
        for m in NCF_MODELS
        if fs.exists(join(run_dir, "ncf", m, "history.json"))
    }
    return {"report_ncf.png": report_plots.ncf_curves(histories)} if histories else {}


def evaluate(
    spark: SparkSession,
    run_dir_path: str,
    models: list[str],
    final: str,
    seed: int,
    config: dict[str, Any] | None = None,
    variants: tuple[str, ...] = (),
    leave_one_out: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Score rank/<model>/submission.csv for each model; write report.json, report.md and the
    report_*.png figures beside them. `final`: the model compared with the best of the others (with
    a bootstrap of seed `seed`) and with each of `variants` (other blends among `models`); `config`:
    the run's configuration, recorded in the report; `leave_one_out`: the models whose leave-one-out
    scores the report tabulates (`leave_one_out_table`)."""
    fs, run_dir = HadoopFS(spark), to_uri(run_dir_path)
    for stage, job in SCORED:
        upstream(fs, run_dir, stage, job)
    validation = json.loads(fs.read_text(join(run_dir, "validation", "_manifest.json")))
    scorer = ValidationTruth.load(spark, run_dir)
    report: dict[str, Any] = {
        "validation": {
            **{k: validation[k] for k in ("playlists", "per_category", "by_category")},
            "train_playlists": validation["train"]["playlists"],
        },
        "scored_playlists": int(scorer.categories["pid"].nunique()),
        "models": {},
    }
    rank = json.loads(fs.read_text(join(run_dir, "rank", MANIFEST)))
    if "blend" in rank:  # a rank stage of this version: the two-stage ranking's own numbers
        training = [[f"blend training: {step}", s] for step, s in rank.get("blend_training", {}).get("seconds", [])]
        report["rank"] = {
            "candidates": rank["submission"]["candidates"],
            "blend": rank["blend"],
            "seconds": training + rank["submission"]["seconds"],
        }
    scores = {}
    for model in models:
        scores[model] = scorer.submission_scores(spark, join(run_dir, "rank", model, "submission.csv"))
        report["models"][model] = summarise(scores[model], scorer.categories)
        log.info("evaluate: %s %s", model, report["models"][model]["overall"])
    if final in scores and len(scores) > 1:
        report["final_vs_best"] = compare_with_best_source(scores, final, seed, variants)
        report["final_vs_variants"] = {v: compare(scores, final, v, seed) for v in variants if v in scores}
    report["leave_one_out"] = leave_one_out_table(fs, run_dir, leave_one_out)
    report["studies"] = studies(fs, run_dir)
    report["stage_seconds"] = stage_seconds(fs, run_dir)
    if config is not None:
        report["config"] = config
    figures = _figures(fs, run_dir, report)
    report["figures"] = sorted(figures)
    write_report(fs, run_dir, report, markdown(report), figures)
    return report
