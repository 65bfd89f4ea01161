"""Stage 6: rank every query playlist with each single source and with the two-stage blend; write and
validate the submissions for the validation challenge and, when given, the real challenge.

Each source's ranked list is computed once per challenge and serves both its own submission (with
its fallbacks) and the blend's candidate set (`mpdrec.rank.candidates`). The blend's re-ranker is
fitted on the validation challenge's "fit" playlists (`mpdrec.rank.blend`) and applied to every
query, the real challenge's included; the rest of the sources' lists (beyond their candidates)
fill what the candidates leave short of 500.

Outputs (`<run_dir>/rank/<model>/` for each of rank.models, `ncf` with rank.ncf_model, and `final`,
the blend): submission.csv
(validation challenge) and challenge_submission.csv (real challenge), each with a `*_recommendations`
Parquet copy with scores; `final/blend_model` (the fitted Spark ML pipeline, when one was fitted).
The manifest holds per-step timings, the candidates' recall by source and the blend's weights.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mpdrec.config import Config
from mpdrec.etl.slice_tables import process_file
from mpdrec.etl.stages import upstream
from mpdrec.evaluation import blend_split_pids, hidden_track_ids
from mpdrec.io.fs import HadoopFS
from mpdrec.io.paths import join, to_uri
from mpdrec.io.stage import fingerprint, run_stage
from mpdrec.models import als, cooc, popularity, title
from mpdrec.models.data import Queries, RankingData
from mpdrec.rank.assemble import FINAL, SUBMISSION_SIZE, after_candidates, assemble, fill_after
from mpdrec.rank.blend import Blend, fit_blend, labelled, with_features
from mpdrec.rank import kmeans
from mpdrec.rank.candidates import candidate_recall, candidate_table, ranked_list
from mpdrec.rank.ncf_scores import NcfModel
from mpdrec.rank.publish import Publisher
from mpdrec.spark import job_step

log = logging.getLogger("mpdrec.rank")
FALLBACKS = {"popularity": [], "title": ["popularity"], "cooc": ["title", "popularity"],
             "als": ["title", "popularity"], "kmeans": ["title", "popularity"]}
# beyond the blend's candidates, the sources' full lists fill the 500 in their usual order of quality
# on the validation challenge (report.md: ALS > cooc > title > popularity; kmeans, when ranked, last
# but popularity)
FINAL_FILL = ("als", "cooc", "title", "kmeans", "popularity")


def _sources(spark: SparkSession, cfg: Config, ncf: NcfModel | None, clusters: DataFrame | None
             ) -> dict[str, Callable[[RankingData, Queries], DataFrame]]:
    """Every source as (data, queries) -> (pid, track_idx, score); `clusters` (kmeans.fit_clusters)
    when rank.models has kmeans."""
    r, n = cfg.rank, SUBMISSION_SIZE
    als_dir = join(to_uri(cfg.paths.run_dir), "als")
    return {
        "als": lambda d, q: als.recommend(als.Factors.load(spark, als_dir), q, r.als_top_n, r.block_rows),
        "popularity": lambda d, q: popularity.recommend(d, q, n),
        "title": lambda d, q: title.recommend(d, q, n, r.title_min_playlists),
        "cooc": lambda d, q: cooc.recommend(d, q, n, r.cooc_neighbours, r.cooc_beta,
                                            r.cooc_max_playlists_per_seed, cfg.seed),
        "kmeans": lambda d, q: kmeans.recommend(d, q, ncf, clusters, r.kmeans_tracks),
    }


def _queries(spark: SparkSession, data: RankingData, tables_dir: str) -> tuple[Queries, dict[int, set[str]]]:
    """The queries, and each playlist's seed URIs (what the submission validator checks against)."""
    seeds: dict[int, set[str]] = {
        r.pid: set() for r in spark.read.parquet(join(tables_dir, "challenge_playlists")).select("pid").collect()}
    for r in spark.read.parquet(join(tables_dir, "challenge_tracks")).select("pid", "track_uri").collect():
        seeds[r.pid].add(r.track_uri)
    return Queries.load(spark, data, tables_dir), seeds


@dataclass(frozen=True)
class Validation:
    """What the blend is fitted on and its candidates' recall measured against: the hidden tracks
    as (pid, track_idx), and the "fit" and "eval" playlists (all of them in both when the run has
    no blend split)."""
    truth: DataFrame
    fit: DataFrame
    eval: DataFrame

    @classmethod
    def load(cls, spark: SparkSession, run_dir: str, data: RankingData) -> "Validation":
        truth = hidden_track_ids(spark, run_dir, data.track_ids)
        everyone = truth.select("pid").distinct()
        fit, held = (blend_split_pids(spark, run_dir, s) for s in ("fit", "eval"))
        return cls(truth.cache(), everyone if fit is None else fit, everyone if held is None else held)


class _Step:
    """Times the steps of one challenge's ranking and names their Spark jobs."""

    def __init__(self, spark: SparkSession, challenge: str) -> None:
        self.spark, self.challenge, self.seconds = spark, challenge, []

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.time()
        with job_step(self.spark, f"rank {self.challenge}: {name}"):
            yield
        self.seconds.append([name, round(time.time() - started, 2)])  # a list: JSON keeps the order
        log.info("rank %s: %s in %.1fs", self.challenge, name, self.seconds[-1][1])


def _rank_challenge(spark: SparkSession, cfg: Config, data: RankingData, tables_dir: str, staging: str,
                    name: str, blend: Blend | None, validation: Validation | None,
                    ncf: NcfModel | None, sources: dict[str, Callable[[RankingData, Queries], DataFrame]]
                    ) -> tuple[dict[str, Any], Blend]:
    """Every single-source submission, the NCF model's (with `ncf`: the candidates ordered by its
    score) and the blend's (`final`). With `validation`, the blend is fitted here on its "fit"
    playlists; otherwise `blend` (fitted on the validation challenge) ranks."""
    queries, seeds = _queries(spark, data, tables_dir)
    step = _Step(spark, name)
    with Publisher() as publisher:
        report, blend = _rank_lists(cfg, data, queries, staging, blend, validation, ncf, sources,
                                    _Submit(publisher, data, seeds, staging, name, cfg), step)
        with step("submissions written and validated"):
            out = {m: {**info, "file": f"rank/{m}/{name}.csv"} for m, info in publisher.results().items()}
    return {"models": out, "candidates": report, "seconds": step.seconds}, blend


@dataclass(frozen=True)
class _Submit:
    """Hands a ranking to the publisher (written and validated in the background: `mpdrec.rank.publish`)."""
    publisher: Publisher
    data: RankingData
    seeds: dict[int, set[str]]
    staging: str
    name: str
    cfg: Config

    def __call__(self, model: str, ranked: DataFrame) -> None:
        self.publisher.submit(model, ranked, self.data, self.seeds, join(self.staging, model), self.name,
                              self.cfg.rank.team_name, self.cfg.rank.team_email)


def _rank_lists(cfg: Config, data: RankingData, queries: Queries, staging: str, blend: Blend | None,
                validation: Validation | None, ncf: NcfModel | None,
                sources: dict[str, Callable[[RankingData, Queries], DataFrame]], submit: _Submit, step: _Step
                ) -> tuple[dict[str, Any], Blend]:
    """The lists, candidates, NCF scores and blend of one challenge, each ranking handed to `submit`."""
    models = cfg.rank.models
    lists: dict[str, DataFrame] = {}
    for source in sorted({*models, *(f for m in models for f in FALLBACKS[m]), "popularity"}):
        with step(f"{source} ranked lists"):
            lists[source] = ranked_list(sources[source](data, queries), queries, SUBMISSION_SIZE).persist()
            lists[source].count()
    for model in models:
        with step(f"{model} submission"):
            submit(model, assemble([(m, lists[m]) for m in [model, *FALLBACKS[model]]], queries))
    depth = {s: getattr(cfg.rank.candidates, s) for s in models}
    # the NCF scores are computed with the features, so that the rows are cached once
    with step("candidates and features" + (f" with {ncf.name} scores" if ncf is not None else "")):
        candidates = candidate_table(lists, depth).persist()
        rows = with_features(candidates, queries, data, depth)
        rows = (rows if ncf is None else ncf.scores(rows, queries)).persist()
        report: dict[str, Any] = {"rows": rows.count(), "depth": depth}
    with step("fill after the candidates"):
        # a source's top `depth` tracks are candidates, scored (by the blend, by NCF) ahead of any
        # fill: only the rest of its list can fill
        fill = fill_after(candidates, [(s, lists[s].where(F.col("rank") >= depth.get(s, 0)))
                                       for s in FINAL_FILL if s in lists], queries).persist()
        fill.count()
    if ncf is not None:
        with step("ncf submission"):
            submit("ncf", after_candidates("ncf", rows.select("pid", "track_idx", F.col("ncf_score").alias("score")),
                                           fill))
    if validation is not None:
        with step("candidate recall"):
            report["recall"] = candidate_recall(candidates.join(validation.eval, "pid", "left_semi"),
                                                validation.truth.join(validation.eval, "pid", "left_semi"), models)
        with step("blend fit"):
            blend = _fit(rows, validation, cfg, ncf is not None, join(staging, FINAL, "blend_model"))
    if blend is None:
        raise ValueError("a challenge without validation labels needs the blend fitted on the validation one")
    with step("final submission"):
        submit(FINAL, after_candidates(FINAL, blend.score(rows), fill))
    for df in [*lists.values(), candidates, rows, fill, queries.playlists, queries.seeds]:
        df.unpersist()
    return report, blend


def _fit(rows: DataFrame, validation: Validation, cfg: Config, ncf: bool, model_uri: str) -> Blend:
    """The blend fitted on the "fit" playlists' candidates; a fitted Spark ML pipeline is saved."""
    fit_rows = labelled(rows.join(validation.fit, "pid", "left_semi"), validation.truth)
    blend = fit_blend(fit_rows, cfg.rank.models, cfg.rank.blend, cfg.seed, ncf=ncf)
    if blend.model is not None:
        blend.model.write().overwrite().save(model_uri)
    return blend


def run_rank(spark: SparkSession, cfg: Config, force: bool = False) -> dict[str, Any]:
    fs, run_dir = HadoopFS(spark), to_uri(cfg.paths.run_dir)
    inputs = [upstream(fs, run_dir, s, j) for s, j in [("ingest", "jobs/ingest_mpd.py"),
                                                        ("validation", "jobs/build_interactions.py"),
                                                        ("interactions", "jobs/build_interactions.py")]]
    if "als" in cfg.rank.models:
        inputs.append(upstream(fs, run_dir, "als", "jobs/train_als.py"))
    if cfg.rank.ncf_model:
        inputs.append(upstream(fs, run_dir, f"ncf/{cfg.rank.ncf_model}", "jobs/train_ncf.py"))
    fp = fingerprint(inputs, cfg.section_digest("seed", "rank"))

    def build(staging: str) -> dict[str, Any]:
        data = RankingData.load(spark, join(run_dir, "interactions"))
        validation = Validation.load(spark, run_dir, data)
        ncf = NcfModel.load(fs, run_dir, cfg.rank.ncf_model, data.num_tracks) if cfg.rank.ncf_model else None
        clusters = (kmeans.fit_clusters(spark, data, ncf, cfg.rank.kmeans_clusters, cfg.seed).cache()
                    if ncf is not None and "kmeans" in cfg.rank.models else None)
        sources = _sources(spark, cfg, ncf, clusters)
        # the validation challenge goes through the same parser as the real one
        tables = join(staging, "validation_queries")
        process_file(join(run_dir, "validation", "challenge_set.json"), "challenge", tables)
        body: dict[str, Any] = {}
        body["submission"], blend = _rank_challenge(spark, cfg, data, tables, staging, "submission", None, validation,
                                                     ncf, sources)
        fs.delete(tables)
        if fs.exists(join(run_dir, "ingest", "challenge_playlists")):
            body["challenge_submission"], _ = _rank_challenge(spark, cfg, data, join(run_dir, "ingest"), staging,
                                                              "challenge_submission", blend, None, ncf, sources)
        body["blend"] = blend.info
        validation.truth.unpersist()
        if clusters is not None:
            clusters.unpersist()
        return body

    return run_stage(fs, run_dir, "rank", fp, build, force=force)
