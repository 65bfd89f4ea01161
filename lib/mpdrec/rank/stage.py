"""Stage 6: rank every query playlist with each single source and with the two-stage blend; write and
validate the submissions for the validation challenge and, when given, the real challenge.

Each source's ranked list is computed once per challenge and serves both its own submission (with
its fallbacks) and the blend's candidate set (`mpdrec.rank.candidates`). The blend's re-ranker is
fitted on the blend-training challenge (held out like the validation challenge, ranked by every
source the same way: `mpdrec.rank.blend`) and applied to every query of the validation challenge
(all of which the report scores) and the real challenge; the rest of the sources' lists (beyond
their candidates) fill what the candidates leave short of 500. Title-only playlists keep the title
source's list (`_final`).

Outputs (`<run_dir>/rank/<model>/` for each of rank.models, `ncf` with rank.ncf_model, and `final`,
the blend): submission.csv (validation challenge) and challenge_submission.csv (real challenge),
each with a `*_recommendations` Parquet copy with scores; `final/blend_model` (the fitted Spark ML
pipeline, when one was fitted). With an NCF model, its score is a feature of final's re-ranker when
rank.blend.ncf_feature is set, and rank.blend.compare_ncf fits the other blend on the same rows:
`final_with_ncf` (or `final_without_ncf`), validation challenge only, what the report compares
final with to show what the NCF score adds. With the autoencoder among rank.models (`dae`),
rank.blend.compare_dae fits `final_without_dae` likewise (`mpdrec.rank.blend.Blend`). The manifest
holds per-step timings, the candidates' recall by source and the blends' weights.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mpdrec.config import SOURCES, Config
from mpdrec.errors import ConfigError
from mpdrec.etl.slice_tables import process_file
from mpdrec.io.fs import HadoopFS
from mpdrec.io.paths import join, to_uri
from mpdrec.io.stage import fingerprint, run_stage
from mpdrec.lists.assemble import (
    FINAL,
    SUBMISSION_SIZE,
    WITH_NCF,
    WITHOUT_DAE,
    after_candidates,
    assemble,
    blend_variants,
    fill_after,
)
from mpdrec.lists.inputs import Queries, RankingData
from mpdrec.lists.scoring import challenge_dir, hidden_track_ids
from mpdrec.models import als, artist, cooc, popularity, title
from mpdrec.rank import kmeans
from mpdrec.rank.blend import (
    FACTOR_SOURCES,
    Blend,
    blend_scores,
    fit_blend,
    fit_sample,
    labelled,
    with_features,
)
from mpdrec.rank.candidates import candidate_recall, candidate_table, ranked_list
from mpdrec.rank.feature_rows import FeatureRows
from mpdrec.rank.ncf_scores import NcfModel
from mpdrec.rank.publish import Publisher
from mpdrec.spark import job_step
from mpdrec.upstream import INGEST, INTERACTIONS, VALIDATION, upstream

log = logging.getLogger("mpdrec.rank")
T = TypeVar("T")
FALLBACKS = {
    "popularity": [],
    "title": ["popularity"],
    "artist": ["title", "popularity"],
    "cooc": ["title", "popularity"],
    "als": ["title", "popularity"],
    "kmeans": ["title", "popularity"],
    "dice": ["title", "popularity"],
    "dae": ["title", "popularity"],
}
# beyond the blend's candidates, the sources' full lists fill the 500 in their usual order of quality
# on the validation challenge (report.md: ALS > cooc > artist > title > popularity; kmeans, when
# ranked, last but popularity; dice, a narrower neighbourhood than cooc's, after it; the autoencoder,
# when ranked, beside ALS)
FINAL_FILL = ("als", "dae", "cooc", "dice", "artist", "title", "kmeans", "popularity")


def _given(value: T | None) -> T:
    """The NCF model or the clusters, which the kmeans source needs (the config check sees to it)."""
    if value is None:
        raise ConfigError("rank source 'kmeans' needs rank.ncf_model and its trained embeddings")
    return value


def _sources(
    spark: SparkSession, cfg: Config, ncf: NcfModel | None, clusters: DataFrame | None
) -> dict[str, Callable[[RankingData, Queries], DataFrame]]:
    """Every source as (data, queries) -> (pid, track_idx, score), each as deep as a submission or
    its candidates need (`list_depth`); `clusters` (kmeans.fit_clusters) when rank.models has kmeans."""
    r = cfg.rank
    run_dir = to_uri(cfg.paths.run_dir)
    n = {s: list_depth(cfg, s) for s in SOURCES}
    return {
        "als": lambda d, q: als.recommend(
            als.Factors.load(spark, join(run_dir, "als")), q, max(r.als_top_n, n["als"]), r.block_rows
        ),
        "dae": lambda d, q: als.recommend(als.Factors.load(spark, join(run_dir, "dae")), q, n["dae"], r.block_rows),
        "popularity": lambda d, q: popularity.recommend(d, q, n["popularity"]),
        "title": lambda d, q: title.recommend(d, q, n["title"], r.title_min_playlists),
        "artist": lambda d, q: artist.recommend(d, q, n["artist"]),
        "cooc": lambda d, q: cooc.recommend(
            d, q, n["cooc"], r.cooc_neighbours, r.cooc_beta, r.cooc_max_playlists_per_seed, cfg.seed
        ),
        "kmeans": lambda d, q: kmeans.recommend(d, q, _given(ncf), _given(clusters), r.kmeans_tracks),
        "dice": lambda d, q: cooc.recommend(
            d, q, n["dice"], r.dice_neighbours, 0.0, r.cooc_max_playlists_per_seed, cfg.seed, dice=True
        ),
    }


def list_depth(cfg: Config, source: str) -> int:
    """How many tracks per playlist a source's ranked list keeps: a submission's 500, or its
    candidate depth where the blend re-ranks more (the winning systems re-ranked thousands)."""
    return max(SUBMISSION_SIZE, getattr(cfg.rank.candidates, source) if source in cfg.rank.models else 0)


def _queries(spark: SparkSession, data: RankingData, tables_dir: str) -> tuple[Queries, dict[int, set[str]]]:
    """The queries, and each playlist's seed URIs (what the submission validator checks against)."""
    seeds: dict[int, set[str]] = {
        r.pid: set() for r in spark.read.parquet(join(tables_dir, "challenge_playlists")).select("pid").collect()
    }
    for r in spark.read.parquet(join(tables_dir, "challenge_tracks")).select("pid", "track_uri").collect():
        seeds[r.pid].add(r.track_uri)
    return Queries.load(spark, data, tables_dir), seeds


class _Step:
    """Times the steps of one challenge's ranking and names their Spark jobs."""

    def __init__(self, spark: SparkSession, challenge: str) -> None:
        self.spark, self.challenge = spark, challenge
        self.seconds: list[list[Any]] = []

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.time()
        with job_step(self.spark, f"rank {self.challenge}: {name}"):
            yield
        self.seconds.append([name, round(time.time() - started, 2)])  # a list: JSON keeps the order
        log.info("rank %s: %s in %.1fs", self.challenge, name, self.seconds[-1][1])


def _rank_challenge(
    spark: SparkSession,
    cfg: Config,
    data: RankingData,
    tables_dir: str,
    staging: str,
    name: str,
    blends: dict[str, Blend],
    truth: DataFrame | None,
    ncf: NcfModel | None,
    sources: dict[str, Callable[[RankingData, Queries], DataFrame]],
) -> dict[str, Any]:
    """Every single-source submission, the NCF model's (with `ncf`: the candidates ordered by its
    score) and the blend's (`final`); with `truth` (the validation challenge's hidden tracks as pid,
    track_idx), the candidates' recall and the other `blends`' submissions."""
    queries, seeds = _queries(spark, data, tables_dir)
    step = _Step(spark, name)
    with Publisher() as publisher:
        report = _rank_lists(
            cfg, data, queries, blends, truth, ncf, sources, _Submit(publisher, data, seeds, staging, name, cfg), step
        )
        with step("submissions written and validated"):
            out = {m: {**info, "file": f"rank/{m}/{name}.csv"} for m, info in publisher.results().items()}
    return {"models": out, "candidates": report, "seconds": step.seconds}


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
        self.publisher.submit(
            model,
            ranked,
            self.data,
            self.seeds,
            join(self.staging, model),
            self.name,
            self.cfg.rank.team_name,
            self.cfg.rank.team_email,
        )


def _ranked_lists(
    cfg: Config,
    data: RankingData,
    queries: Queries,
    names: set[str],
    sources: dict[str, Callable[[RankingData, Queries], DataFrame]],
    step: _Step,
) -> dict[str, DataFrame]:
    """Each named source's ranked list of the queries (persisted: its submission and the candidates
    read it)."""
    lists: dict[str, DataFrame] = {}
    for source in sorted(names):
        with step(f"{source} ranked lists"):
            lists[source] = ranked_list(sources[source](data, queries), queries, list_depth(cfg, source)).persist()
            lists[source].count()
    return lists


def _candidate_scores(
    cfg: Config,
    data: RankingData,
    queries: Queries,
    lists: dict[str, DataFrame],
    ncf: NcfModel | None,
    blends: dict[str, Blend],
    step: _Step,
) -> tuple[DataFrame, DataFrame]:
    """The candidate table and, for the rows that can make a submission, each of `blends`' score
    and the NCF model's (`blend_scores`), both persisted: the feature rows are computed once, their
    seed features, NCF score and blend scores in one Arrow pass, and never cached."""
    with step("candidates, features and blend scores" + _scored_by(ncf)):
        candidates = candidate_table(lists, _depth(cfg)).persist()
        candidates.count()  # built before the pass is planned: Spark then sees its order (no sort of the wide rows)
        rows = _features(cfg, data, queries, candidates, ncf)
        scores = blend_scores(rows, blends, SUBMISSION_SIZE, ("ncf_score",) if ncf is not None else ()).persist()
        scores.count()
    return candidates, scores


def _scored_by(ncf: NcfModel | None) -> str:
    """The features step's name ends with the NCF model whose scores it adds."""
    return f" with {ncf.name} scores" if ncf is not None else ""


def _depth(cfg: Config) -> dict[str, int]:
    """Each source's candidates per playlist."""
    return {s: getattr(cfg.rank.candidates, s) for s in cfg.rank.models}


def _features(
    cfg: Config, data: RankingData, queries: Queries, candidates: DataFrame, ncf: NcfModel | None
) -> FeatureRows:
    """`candidates` with every blend feature, the NCF score among them with `ncf`, the last ones
    computed in the pass that reads them."""
    spark, run_dir = data.interactions.sparkSession, to_uri(cfg.paths.run_dir)
    factors = {s: als.Factors.load(spark, join(run_dir, s)) for s in FACTOR_SOURCES if s in cfg.rank.models}
    rows = with_features(candidates, queries, data, _depth(cfg), cfg.rank.feature_playlists_per_seed, cfg.seed, factors)
    return rows if ncf is None else ncf.with_scores(rows, queries, candidates.select("track_idx"), data.broadcast)


def _rank_lists(
    cfg: Config,
    data: RankingData,
    queries: Queries,
    blends: dict[str, Blend],
    truth: DataFrame | None,
    ncf: NcfModel | None,
    sources: dict[str, Callable[[RankingData, Queries], DataFrame]],
    submit: _Submit,
    step: _Step,
) -> dict[str, Any]:
    """The lists, candidates, NCF scores and blend of one challenge, each ranking handed to `submit`."""
    models = cfg.rank.models
    lists = _ranked_lists(
        cfg, data, queries, {*models, *(f for m in models for f in FALLBACKS[m]), "popularity"}, sources, step
    )
    for model in models:
        with step(f"{model} submission"):
            submit(model, assemble([(m, lists[m]) for m in [model, *FALLBACKS[model]]], queries))
    scored = {name: blend for name, blend in blends.items() if name == FINAL or truth is not None}
    candidates, scores = _candidate_scores(cfg, data, queries, lists, ncf, scored, step)
    depth = _depth(cfg)
    report: dict[str, Any] = {"rows": candidates.count(), "depth": depth}
    with step("fill after the candidates"):
        # a source's top `depth` tracks are candidates, scored (by the blend, by NCF) ahead of any
        # fill: only the rest of its list can fill
        fill = fill_after(
            candidates,
            [(s, lists[s].where(F.col("rank") >= depth.get(s, 0))) for s in FINAL_FILL if s in lists],
            queries,
        ).persist()
        fill.count()
    if ncf is not None:
        with step("ncf submission"):
            submit("ncf", after_candidates("ncf", _score_column(scores, "ncf_score"), fill))
    if truth is not None:
        with step("candidate recall"):
            report["recall"] = candidate_recall(candidates, truth, models)
    for name in scored:
        with step(f"{name} submission"):
            submit(name, _final(after_candidates(name, _score_column(scores, name), fill), lists, queries))
    for df in [*lists.values(), candidates, scores, fill, queries.playlists, queries.seeds]:
        df.unpersist()
    data.release()
    return report


def _score_column(scores: DataFrame, name: str) -> DataFrame:
    """pid, track_idx, score: one of `_candidate_scores`' scores."""
    return scores.select("pid", "track_idx", F.col(name).alias("score"))


def _final(blended: DataFrame, lists: dict[str, DataFrame], queries: Queries) -> DataFrame:
    """The blend's ranking, but for the playlists without seeds (title only) the title source's list
    then popularity's, as the title submission has them: all their candidates come from those two
    sources, and the blend, fitted mostly on playlists with seeds, ordered them worse than the title
    source did on the real sample and on the synthetic data alike (docs/quality.md)."""
    if "title" not in lists:
        return blended
    seedless = F.broadcast(queries.playlists.select("pid").join(queries.seeds, "pid", "left_anti"))
    by_title = assemble([(m, lists[m].join(seedless, "pid", "left_semi")) for m in ("title", "popularity")], queries)
    return blended.join(seedless, "pid", "left_anti").unionByName(by_title)


def _train_blends(
    spark: SparkSession,
    cfg: Config,
    data: RankingData,
    run_dir: str,
    staging: str,
    ncf: NcfModel | None,
    sources: dict[str, Callable[[RankingData, Queries], DataFrame]],
) -> tuple[dict[str, Blend], list[list[Any]]]:
    """The blend fitted on the blend-training challenge's candidates (ranked by every source exactly
    as the validation challenge is), a fitted Spark ML pipeline saved under final/blend_model (and
    the NCF variant's under its own name: `blend_variants`); and the steps' seconds."""
    tables = join(staging, "train_queries")
    held_out = challenge_dir(run_dir, "train")
    process_file(join(held_out, "challenge_set.json"), "challenge", tables)
    queries = Queries.load(spark, data, tables)
    step = _Step(spark, "blend training")
    lists = _ranked_lists(cfg, data, queries, set(cfg.rank.models), sources, step)
    with step("candidates, fit sample and features" + _scored_by(ncf)):
        candidates = candidate_table(lists, _depth(cfg)).persist()
        candidates.count()  # as in `_candidate_scores`
        fit = fit_sample(
            labelled(candidates, hidden_track_ids(spark, held_out, data.track_ids)),
            cfg.rank.blend.negatives_per_positive,
            cfg.seed,
        )
        fit = replace(fit, rows=_features(cfg, data, queries, fit.rows, ncf).to_frame().persist())
        fit.rows.count()
    final_ncf = ncf is not None and cfg.rank.blend.ncf_feature
    variants: dict[str, tuple[bool, str | None]] = {FINAL: (final_ncf, None)}  # (with the NCF score, without)
    for name in blend_variants(cfg.rank):
        variants[name] = (final_ncf, "dae") if name == WITHOUT_DAE else (name == WITH_NCF, None)
    blends = {}
    for name, (with_ncf, without) in variants.items():
        with step(f"{name} blend fit"):
            blends[name] = fit_blend(fit, cfg.rank.models, cfg.rank.blend, cfg.seed, ncf=with_ncf, without=without)
            model = blends[name].model
            if model is not None:
                model.write().overwrite().save(join(staging, name, "blend_model"))
    for df in [*lists.values(), candidates, fit.rows, queries.playlists, queries.seeds]:
        df.unpersist()
    data.release()
    HadoopFS(spark).delete(tables)
    return blends, step.seconds


def rank_upstream(cfg: Config) -> list[tuple[str, str]]:
    """The stages the rank stage reads (stage, the job that writes it)."""
    return [
        INGEST,
        VALIDATION,
        INTERACTIONS,
        *([("als", "jobs/train_als.py")] if "als" in cfg.rank.models else []),
        *([(f"ncf/{cfg.rank.ncf_model}", "jobs/train_ncf.py")] if cfg.rank.ncf_model else []),
        *([("dae", "jobs/train_dae.py")] if "dae" in cfg.rank.models else []),
    ]


def run_rank(spark: SparkSession, cfg: Config, force: bool = False) -> dict[str, Any]:
    fs, run_dir = HadoopFS(spark), to_uri(cfg.paths.run_dir)
    inputs = [upstream(fs, run_dir, s, j) for s, j in rank_upstream(cfg)]
    fp = fingerprint(inputs, cfg.section_digest("seed", "rank"))

    def build(staging: str) -> dict[str, Any]:
        data = RankingData.load(spark, join(run_dir, "interactions"))
        ncf = NcfModel.load(fs, run_dir, cfg.rank.ncf_model, data.num_tracks) if cfg.rank.ncf_model else None
        clusters = (
            kmeans.fit_clusters(spark, data, ncf, cfg.rank.kmeans_clusters, cfg.seed).cache()
            if ncf is not None and "kmeans" in cfg.rank.models
            else None
        )
        sources = _sources(spark, cfg, ncf, clusters)
        blends, train_seconds = _train_blends(spark, cfg, data, run_dir, staging, ncf, sources)
        # the validation challenge goes through the same parser as the real one
        tables = join(staging, "validation_queries")
        process_file(join(run_dir, "validation", "challenge_set.json"), "challenge", tables)
        truth = hidden_track_ids(spark, challenge_dir(run_dir, "validation"), data.track_ids).cache()
        body: dict[str, Any] = {"blend_training": {"seconds": train_seconds}}
        body["submission"] = _rank_challenge(
            spark, cfg, data, tables, staging, "submission", blends, truth, ncf, sources
        )
        fs.delete(tables)
        truth.unpersist()
        if fs.exists(join(run_dir, "ingest", "challenge_playlists")):
            body["challenge_submission"] = _rank_challenge(
                spark, cfg, data, join(run_dir, "ingest"), staging, "challenge_submission", blends, None, ncf, sources
            )
        body["blend"] = blends[FINAL].info
        body["blend_variants"] = {name: b.info for name, b in blends.items() if name != FINAL}
        if clusters is not None:
            clusters.unpersist()
        return body

    return run_stage(fs, run_dir, "rank", fp, build, force=force)
