"""Stage 7: score each model's validation submission with the official metrics; write the report.

The submission CSV itself is scored (what would be uploaded), against `validation/ground_truth`,
overall and per challenge category. Tracks and artists are compared as 64-bit hashes of their URIs,
so 10,000 x 500 recommendations fit comfortably in the driver's memory.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mpdrec import report_plots
from mpdrec.categories import CATEGORIES
from mpdrec.config import NCF_MODELS
from mpdrec.io.arrow_fs import write_bytes
from mpdrec.io.fs import HadoopFS
from mpdrec.io.paths import MANIFEST, join, to_uri
from mpdrec.metrics.recsys2018 import score_recommendations

log = logging.getLogger("mpdrec.evaluate")
METRICS = ("r_precision", "ndcg", "clicks")


def submission_rows(spark: SparkSession, uri: str) -> DataFrame:
    """pid, rank, track_uri of a submission CSV (header and comment lines skipped)."""
    lines = spark.read.text(uri).where(~F.col("value").startswith("team_info") & ~F.col("value").startswith("#")
                                       & (F.length(F.trim("value")) > 0))
    parts = lines.select(F.split(F.regexp_replace("value", r"\s", ""), ",").alias("p"))
    return parts.select(F.col("p")[0].cast("long").alias("pid"),
                        F.posexplode(F.slice("p", 2, 1_000_000)).alias("rank", "track_uri"))


def _hashed(df: DataFrame) -> DataFrame:
    """pid, [rank,] track, artist: URIs as 64-bit hashes; an unknown artist is 0 (never a real
    artist's hash in practice), so the column stays int64 and artist credit keeps working."""
    return df.select("pid", *(["rank"] if "rank" in df.columns else []),
                     F.xxhash64("track_uri").alias("track"),
                     F.coalesce(F.when(F.col("artist_uri").isNotNull(), F.xxhash64("artist_uri")),
                                F.lit(0).cast("long")).alias("artist"))


def blend_split_pids(spark: SparkSession, run_dir: str, split: str) -> DataFrame | None:
    """pid of the validation playlists in `split` ("fit" | "eval"), or None when the run has no
    validation/blend_split."""
    uri = join(run_dir, "validation", "blend_split")
    if not HadoopFS(spark).exists(uri):
        return None
    return spark.read.parquet(uri).where(F.col("split") == split).select("pid")


def hidden_track_ids(spark: SparkSession, run_dir: str, track_ids: DataFrame) -> DataFrame:
    """pid, track_idx of every hidden validation track: what the blend and ALS's MPR are measured
    against by index rather than by URI."""
    return (spark.read.parquet(join(run_dir, "validation", "ground_truth")).select("pid", "track_uri")
            .join(track_ids.select("track_uri", "track_idx"), "track_uri").select("pid", "track_idx"))


@dataclass(frozen=True)
class ValidationTruth:
    """The validation challenge's hidden tracks and categories, loaded once for many scorings."""
    truth: pd.DataFrame  # pid, track, artist (hashed)
    categories: pd.DataFrame  # pid, category
    track_ids: DataFrame  # track_idx, track_uri, artist_uri

    @classmethod
    def load(cls, spark: SparkSession, run_dir: str, split: str | None = None) -> "ValidationTruth":
        """`split` "fit" or "eval": only that part of validation/blend_split; all playlists when the
        run has no split (one built before it existed) or the part is empty (blend_fit_share 0)."""
        truth = spark.read.parquet(join(run_dir, "validation", "ground_truth"))
        categories = spark.read.parquet(join(run_dir, "validation", "categories")).select("pid", "category")
        part = blend_split_pids(spark, run_dir, split) if split else None
        if part is not None and part.first() is None:
            log.warning("validation/blend_split has no %r playlists: scoring on all of them", split)
        elif part is not None:
            truth, categories = truth.join(part, "pid", "left_semi"), categories.join(part, "pid", "left_semi")
        truth, categories = _hashed(truth).toPandas(), categories.toPandas()
        track_ids = spark.read.parquet(join(run_dir, "interactions", "track_ids")).select(
            "track_idx", "track_uri", "artist_uri")
        return cls(truth, categories, track_ids)

    def score_submission(self, spark: SparkSession, uri: str) -> dict[str, Any]:
        """Scores of a submission CSV (what would be uploaded)."""
        recs = submission_rows(spark, uri).join(self.track_ids.drop("track_idx"), "track_uri", "left")
        return self._score(recs)

    def score_ranking(self, ranked: DataFrame) -> dict[str, Any]:
        """Scores of a ranking (pid, rank, track_idx) before it is written, e.g. a grid-search point."""
        return self._score(ranked.select("pid", "rank", "track_idx").join(self.track_ids, "track_idx"))

    def _score(self, recs: DataFrame) -> dict[str, Any]:
        """The official metrics over this truth's playlists (a split's share of the challenge)."""
        hashed = _hashed(recs).toPandas()
        return score_recommendations(hashed[hashed["pid"].isin(self.categories["pid"])], self.truth, self.categories)


def markdown(report: dict[str, Any]) -> str:
    """report.md: overall table, then one table per metric with a column per category."""
    models = report["models"]
    v, scored = report["validation"], report["scored_playlists"]
    part = ("all of them" if scored == v["playlists"] else
            f"scored on the {scored} \"eval\" playlists (validation/blend_split); the blend was fitted on the others")
    out = ["# mpdrec report", "", f"Validation challenge: {v['playlists']} playlists, {v['per_category']} per "
           f"category, {part}. Clicks: lower is better.", "",
           "## Overall", "", "| model | R-precision | NDCG | clicks |", "| --- | --- | --- | --- |"]
    for name, m in models.items():
        o = m["overall"]
        out.append(f"| {name} | {o['r_precision']:.4f} | {o['ndcg']:.4f} | {o['clicks']:.2f} |")
    for metric in METRICS:
        out += ["", f"## {metric} by category", "",
                "| model | " + " | ".join(f"{c.id}: {c.label}" for c in CATEGORIES) + " |",
                "| --- " * (len(CATEGORIES) + 1) + "|"]
        for name, m in models.items():
            cells = [m["by_category"].get(str(c.id), {}).get(metric) for c in CATEGORIES]
            out.append(f"| {name} | " + " | ".join("" if v is None else f"{v:.4f}" for v in cells) + " |")
    out += ["", "## Figures", ""] + [f"![{name}]({name})" for name in report.get("figures", [])]
    if "rank" in report:
        out += _rank_sections(report["rank"])
    out += ["", "## Stage timings", "", "| stage | seconds |", "| --- | --- |"]
    out += [f"| {stage} | {seconds:.1f} |" for stage, seconds in report.get("stage_seconds", [])]
    if "config" in report:
        out += ["", "## Configuration", "", "```json", json.dumps(report["config"], indent=1, sort_keys=True), "```"]
    return "\n".join(out) + "\n"


def _rank_sections(rank: dict[str, Any]) -> list[str]:
    """report.md: the candidate set's recall by source, the blend's weights, the ranking's steps."""
    c, blend = rank["candidates"], rank["blend"]
    out = ["", "## Candidates", "", f"{c['rows']:,} (playlist, track) candidates; per source its top "
           + ", ".join(f"{k} {v}" for k, v in c["depth"].items()) + ". Recall: the share of the \"eval\" "
           "playlists' hidden tracks among them (what any re-ranking can reach).", "",
           "| source | recall |", "| --- | --- |"]
    out += [f"| {k} | {v:.4f} |" for k, v in c.get("recall", {}).items()]
    out += ["", "## Blend", "", f"Method: {blend['method']}" + (f" ({blend['reason']})" if "reason" in blend else "")
            + f"; fitted on {blend['fit_positives']:,} hidden tracks among the \"fit\" playlists' candidates.", ""]
    weights = blend.get("feature_importances") or blend.get("coefficients") or {}
    if weights:
        kind = "importance" if "feature_importances" in blend else "coefficient"
        out += [f"| feature | {kind} |", "| --- | --- |"]
        out += [f"| {k} | {v:.4f} |" for k, v in sorted(weights.items(), key=lambda kv: -abs(kv[1]))]
    out += ["", "## Ranking steps (validation challenge)", "", "| step | seconds |", "| --- | --- |"]
    out += [f"| {k} | {v:.1f} |" for k, v in rank["seconds"]]
    return out


STAGES = ("ingest", "validation", "interactions", "negatives", "als", *(f"ncf/{m}" for m in NCF_MODELS), "rank")


def _stage_seconds(fs: HadoopFS, run_dir: str) -> list[list[Any]]:
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
    histories = {m: json.loads(fs.read_text(join(run_dir, "ncf", m, "history.json"))) for m in NCF_MODELS
                 if fs.exists(join(run_dir, "ncf", m, "history.json"))}
    if histories:
        figures["report_ncf.png"] = report_plots.ncf_curves(histories)
    return figures


def evaluate(spark: SparkSession, run_dir_path: str, models: list[str],
             config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score rank/<model>/submission.csv for each model; write report.json, report.md and the
    report_*.png figures beside them. `config`: the run's configuration, recorded in the report."""
    fs, run_dir = HadoopFS(spark), to_uri(run_dir_path)
    validation = json.loads(fs.read_text(join(run_dir, "validation", "_manifest.json")))
    scorer = ValidationTruth.load(spark, run_dir, "eval")
    scored = int(scorer.categories["pid"].nunique())
    report: dict[str, Any] = {"validation": {k: validation[k] for k in ("playlists", "per_category", "by_category")},
                              "scored_playlists": scored, "models": {}}
    rank = json.loads(fs.read_text(join(run_dir, "rank", MANIFEST)))
    if "blend" in rank:  # a rank stage of this version: the two-stage ranking's own numbers
        report["rank"] = {"candidates": rank["submission"]["candidates"], "blend": rank["blend"],
                          "seconds": rank["submission"]["seconds"]}
    for model in models:
        uri = join(run_dir, "rank", model, "submission.csv")
        report["models"][model] = scorer.score_submission(spark, uri)
        log.info("evaluate: %s %s", model, report["models"][model]["overall"])
    report["stage_seconds"] = _stage_seconds(fs, run_dir)
    if config is not None:
        report["config"] = config
    figures = _figures(fs, run_dir, report)
    for name, png in figures.items():
        write_bytes(join(run_dir, name), png)
    report["figures"] = sorted(figures)
    fs.write_text(join(run_dir, "report.json"), json.dumps(report, indent=2, sort_keys=True))
    fs.write_text(join(run_dir, "report.md"), markdown(report))
    return report
