"""Stage two of the two-stage ranking: features per (playlist, candidate) and the re-ranker.

The re-ranker learns from the blend-training challenge's candidates (label 1 when the candidate is
one of the playlist's hidden tracks) and is applied unchanged to the validation challenge (where the
report scores it) and to the real challenge. Methods:
* `ranker`: learning to rank, XGBoost's Spark estimator (`xgboost.spark.SparkXGBRanker`, distributed
  over Spark tasks in barrier mode) with a listwise objective grouped by playlist (`rank:ndcg`,
  LambdaMART, or `rank:pairwise`): it optimises each playlist's order, which is what the metrics
  score, where a classifier optimises every row's label alone. The winning team's second stage was
  XGBoost with a pairwise objective.
* `gbt`, `logistic`: Spark ML classifiers (pointwise).
* `fixed`, and wherever nothing can be fitted (no hidden track among the candidates): a
  reciprocal-rank sum over the sources, a fixed-weight blend that needs no labels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import GBTClassifier, LogisticRegression
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, StructField

from mpdrec.config import BlendConfig
from mpdrec.lists.inputs import Queries, RankingData
from mpdrec.models import als
from mpdrec.rank.feature_rows import Columns, FeatureRows
from mpdrec.rank.seed_features import SEED_FEATURES, KnownDot, with_factor_dot, with_seed_cooc
from mpdrec.sorted_groups import top_per_group
from mpdrec.spark import fit_partitions, fixed_layout

RRF_K = 60  # reciprocal-rank fusion's usual constant: rank r adds 1 / (60 + r)
QUERY_FEATURES = ["num_seeds", "has_title", "category", "title_support"]
TRACK_FEATURES = ["popularity", "artist_share", "sources_hit"]
FACTOR_SOURCES = ("als", "dae")  # sources whose factors score every candidate: `<source>_dot`
APART = ("dae",)  # sources left out of `sources_hit`, so that a blend without one has exactly its features
LOWEST = -1e30  # a blend's score of the rows it leaves out (`Blend.without`): below every other candidate's


def feature_names(sources: list[str], ncf: bool = False) -> list[str]:
    """The re-ranker's inputs, in order: each source's score, rank and relative score, the NCF
    model's score of the candidate (with `ncf`: rank.blend.ncf_feature, or the NCF blend variant),
    the candidate against the seeds (`mpdrec.rank.seed_features`; `als_dot` and `dae_dot` when ALS
    and the autoencoder are sources), then the rest."""
    return (
        [f"{s}_{k}" for s in sorted(sources) for k in ("score", "rank", "rel")]
        + (["ncf_score"] if ncf else [])
        + SEED_FEATURES
        + [f"{s}_dot" for s in FACTOR_SOURCES if s in sources]
        + QUERY_FEATURES
        + TRACK_FEATURES
    )


def with_features(
    candidates: DataFrame,
    queries: Queries,
    data: RankingData,
    depth: dict[str, int],
    max_per_seed: int,
    seed: int,
    factors: dict[str, als.Factors] | None = None,
) -> FeatureRows:
    """The candidate table (with its ncf_score or label, when it carries one) plus every
    feature column, the seed features computed in the pass that reads them (no nulls: a source
    that did not propose a track gives it score and relative score 0 and rank = its depth, one
    past its last). The seed features sample each seed's playlists down to `max_per_seed` (seeded
    by `seed`); `factors` (ALS's, the autoencoder's: by source) give `als_dot` and `dae_dot`.

    Per query: seeds shown, whether it has a title, its challenge category, and how many training
    playlists have exactly its normalised title (log; the title source also reads its words). Per candidate:
    log popularity, the share of the playlist's seeds by the same artist, and how many sources
    proposed it (but those in APART)."""
    tracks = data.track_ids.select(
        "track_idx", F.log1p("playlist_count").alias("popularity"), F.xxhash64("artist_uri").alias("artist")
    )
    titles = (
        data.playlist_ids.where((F.length("name_norm") > 0) & (F.col("num_tracks") > 0))
        .groupBy("name_norm")
        .agg(F.log1p(F.count("*")).alias("title_support"))
    )
    num_seeds = queries.seeds.groupBy("pid").agg(F.count("*").alias("num_seeds"))
    per_query = (
        queries.playlists.join(titles, "name_norm", "left")
        .join(num_seeds, "pid", "left")
        .select(
            "pid",
            F.coalesce("num_seeds", F.lit(0)).alias("num_seeds"),
            (F.coalesce(F.length("name_norm"), F.lit(0)) > 0).cast("int").alias("has_title"),
            F.coalesce("category", F.lit(0)).alias("category"),
            F.coalesce("title_support", F.lit(0.0)).alias("title_support"),
        )
    )
    seed_artists = (
        queries.seeds.join(tracks.select("track_idx", "artist"), "track_idx")
        .groupBy("pid", "artist")
        .agg(F.count("*").alias("artist_seeds"))
    )
    names = sorted(depth)
    filled = [F.coalesce(f"{s}_{k}", F.lit(0.0)).alias(f"{s}_{k}") for s in names for k in ("score", "rel")] + [
        F.coalesce(f"{s}_rank", F.lit(depth[s])).alias(f"{s}_rank") for s in names
    ]
    hit = sum((F.col(f"{s}_rank").isNotNull().cast("int") for s in names if s not in APART), F.lit(0))
    extra = [c for c in candidates.columns if c in ("ncf_score", "label")]
    # every table joined is broadcast (at most the catalogue's tracks, 2.3M rows for the full MPD): the
    # candidates, millions of rows, are never shuffled here
    rows = (
        candidates.select("pid", "track_idx", *filled, *extra, hit.alias("sources_hit"))
        .join(F.broadcast(tracks), "track_idx")
        .join(F.broadcast(per_query), "pid")
        .join(F.broadcast(seed_artists), ["pid", "artist"], "left")
        .withColumn("artist_share", F.coalesce("artist_seeds", F.lit(0)) / F.greatest("num_seeds", F.lit(1)))
        .drop("artist", "artist_seeds")
    )
    features = FeatureRows(rows)
    for name, source_factors in sorted((factors or {}).items()):
        # a source's own candidates carry the dot as their score: it is computed for the others only
        features = with_factor_dot(
            features,
            queries,
            source_factors,
            data.broadcast,
            candidates.where(F.col(f"{name}_rank").isNull()) if name in depth else candidates,
            KnownDot(f"{name}_score", f"{name}_rank", depth[name]) if name in depth else None,
            column=f"{name}_dot",
        )
    return with_seed_cooc(features, queries, data, max_per_seed, seed)


def labelled(rows: DataFrame, truth: DataFrame) -> DataFrame:
    """`rows` with label 1.0 where (pid, track_idx) is a hidden track, else 0.0. The hidden tracks
    (a validation challenge's, well under a million rows) are broadcast: `rows` are not shuffled."""
    hidden = truth.select("pid", "track_idx", F.lit(1.0).alias("label"))
    return rows.join(F.broadcast(hidden), ["pid", "track_idx"], "left").fillna(0.0, ["label"])


@dataclass(frozen=True)
class Blend:
    """A fitted re-ranker (`model`), or the fixed reciprocal-rank blend (`model` None). `without`: a
    source of APART whose features the blend has not, and whose rows that no other source proposed
    it scores LOWEST (final_without_dae: the blend as it would be without that source). Those rows
    then rank after every other candidate and before the fill: the same list as without the source
    wherever the other sources propose 500 tracks or more (their depths add up to thousands)."""

    sources: list[str]
    model: PipelineModel | None
    info: dict[str, Any]
    without: str | None = None

    def score(self, rows: FeatureRows | DataFrame, keep: int | None = None) -> DataFrame:
        """pid, track_idx, score (higher is better) for rows carrying the features; `keep` as in
        `blend_scores`."""
        return blend_scores(rows, {"score": self}, keep)


@dataclass(frozen=True)
class FitRows:
    """What a re-ranker is fitted on: every positive of the labelled candidates and a seeded sample
    of the negatives (`negative_share` of them, by a hash of (pid, track_idx)), and the counts
    before sampling."""

    rows: DataFrame
    positives: int
    negatives: int
    negative_share: float

    @property
    def expected_rows(self) -> int:
        """The sample's size as the counts predict it: what the fit's partition layout follows."""
        return round(self.positives + self.negative_share * self.negatives)


def fit_sample(rows: DataFrame, negatives_per_positive: int, seed: int) -> FitRows:
    """Every positive of labelled `rows` and about `negatives_per_positive` negatives each.

    Made from the candidates before their features, since no feature of a row depends on the
    others': the blend-training challenge's features are then computed for the sample alone (at 100
    slices a small share of the candidates: docs/ranking.md) and the model is the one fitted from
    all rows' features."""
    counts = {r.label: r["count"] for r in rows.groupBy("label").count().collect()}
    positives, negatives = int(counts.get(1.0, 0)), int(counts.get(0.0, 0))
    share = min(1.0, negatives_per_positive * positives / max(negatives, 1))
    bucket = (F.abs(F.xxhash64(F.lit(seed), "pid", "track_idx")) % 1_000_000) / 1_000_000.0
    return FitRows(rows.where((F.col("label") == 1.0) | (bucket < share)), positives, negatives, share)


def fit_blend(
    fit: FitRows, sources: list[str], cfg: BlendConfig, seed: int, ncf: bool = False, without: str | None = None
) -> Blend:
    """Fit on the sampled feature rows (`fit_sample`) so that the same config fits the same model:
    they are laid out by (pid, track_idx) alone (`fixed_layout`; the ranker's `_by_playlist`).
    `without` (one of APART): fitted without that source's features and rows (`Blend`)."""
    if without is not None:
        assert without in APART, without
        sources = [s for s in sources if s != without]
        fit = replace(fit, rows=fit.rows.where(F.col("sources_hit") > 0))
    info: dict[str, Any] = {"method": cfg.method, "fit_positives": fit.positives}
    if cfg.method == "fixed" or fit.positives == 0:
        info.update(method="fixed", reason="configured" if cfg.method == "fixed" else "no labelled fit rows")
        return Blend(sources, None, info, without)
    # cached: the estimator reads its input more than once (row counts, split candidates, then training)
    sample = (
        _by_playlist(fit.rows, fit.expected_rows)
        if cfg.method == "ranker"
        else fixed_layout(fit.rows, ["pid", "track_idx"], fit.expected_rows)
    ).persist()
    names = feature_names(sources, ncf)
    try:
        if cfg.method == "ranker":
            model = Pipeline(stages=[_ranker(cfg, names, seed, sample)]).fit(sample)
        else:
            learner = (
                GBTClassifier(maxIter=cfg.trees, maxDepth=cfg.depth, stepSize=cfg.learning_rate, seed=seed)
                if cfg.method == "gbt"
                else LogisticRegression(maxIter=200, regParam=1e-4)
            )
            model = Pipeline(stages=[VectorAssembler(inputCols=names, outputCol="features"), learner]).fit(sample)
    finally:
        sample.unpersist()
    info.update(negative_share=round(fit.negative_share, 6), **_weights(cfg.method, model.stages[-1], names))
    return Blend(sources, model, info, without)


def _by_playlist(rows: DataFrame, expected_rows: int) -> DataFrame:
    """The ranker's fit rows: one partition per XGBoost worker (as many as `fixed_layout` would
    make, at most one per task slot: barrier mode needs them all at once), whole playlists hashed
    by pid, each partition sorted by (pid, track_idx), a layout that depends on the rows alone.

    Given any other number of partitions, xgboost.spark repartitions by range of pid, whose bounds
    Spark samples with a seed made from the RDD's id (how many RDDs the session made before), then
    sorts by pid alone. LambdaMART's first gradients (every score tied) and the quantile sketches
    follow the rows' order, so the same rows fitted different models after an unrelated change
    upstream."""
    slots = rows.sparkSession.sparkContext.defaultParallelism
    workers = min(fit_partitions(expected_rows), slots)
    return rows.repartition(workers, "pid").sortWithinPartitions("pid", "track_idx")


def _ranker(cfg: BlendConfig, names: list[str], seed: int, sample: DataFrame) -> Any:
    """XGBoost's learning-to-rank estimator over the feature columns, queries grouped by pid.

    The features go in as plain numeric columns, not an assembled vector: VectorAssembler writes a
    row with many zeros as a sparse vector, whose absent entries XGBoost reads as missing, so the
    same value would mean two things. One worker per partition of the sample (`_by_playlist`).
    Imported here: xgboost.spark builds scikit-learn estimators on import, which no other method
    or job needs."""
    from xgboost.spark import SparkXGBRanker

    return SparkXGBRanker(
        features_col=names,
        label_col="label",
        qid_col="pid",
        num_workers=sample.rdd.getNumPartitions(),
        objective=cfg.objective,
        n_estimators=cfg.trees,
        max_depth=cfg.depth,
        learning_rate=cfg.learning_rate,
        random_state=seed,
        tree_method="hist",
    )


@dataclass(frozen=True)
class _RankerScorer:
    """The fitted ranker's booster (its raw model) on float32 matrices of its feature columns, as
    xgboost.spark's transform casts them: the same values, without its pandas frames."""

    inputs: list[str]
    model: bytes

    def bind(self) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        import xgboost

        booster = xgboost.Booster(params={"nthread": 1}, model_file=bytearray(self.model))  # a task per core

        def score(cols: dict[str, np.ndarray]) -> np.ndarray:
            if not len(cols["pid"]):
                return np.zeros(0)
            matrix = np.column_stack([cols[n].astype(np.float32) for n in self.inputs])
            return booster.inplace_predict(matrix, missing=np.nan, validate_features=False).astype(np.float64)

        return score


@dataclass(frozen=True)
class _RrfScorer:
    """The fixed blend: each source's 1 / (RRF_K + rank), summed in the sources' order as Spark would."""

    inputs: list[str]

    def bind(self) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        def score(cols: dict[str, np.ndarray]) -> np.ndarray:
            total = np.zeros(len(cols["pid"]))
            for rank in self.inputs:
                total = total + 1.0 / (RRF_K + cols[rank])
            return total

        return score


def _scorer(blend: Blend) -> _RankerScorer | _RrfScorer | None:
    """How the Arrow pass scores `blend`; None for the Spark ML classifiers, scored in the JVM."""
    if blend.model is None:
        return _RrfScorer([f"{s}_rank" for s in blend.sources])
    if blend.info["method"] == "ranker":
        fitted: Any = blend.model.stages[-1]  # xgboost.spark's SparkXGBRankerModel
        return _RankerScorer(list(fitted.getOrDefault(fitted.features_cols)), fitted.get_booster().save_raw("ubj"))
    return None


def blend_scores(
    rows: FeatureRows | DataFrame, blends: dict[str, Blend], keep: int | None = None, carried: tuple[str, ...] = ()
) -> DataFrame:
    """pid, track_idx, a score column per blend (higher is better; named as in `blends`) and the
    `carried` score columns of `rows` (the NCF model's, say), for rows carrying the features.

    Every blend is scored in the Arrow pass that computes the rows' last features (`FeatureRows`;
    the Spark ML classifiers, scored by their `transform` in the JVM, after a pass of their own):
    the feature rows are read once however many blends score them, so they need no cache. With
    `keep`, only the rows among their Arrow batch's playlist's `keep` best by at least one of the
    scores (score descending, then track_idx): a superset of every playlist's `keep` best by each
    score however its rows fall into batches and partitions, so a ranking cut at `keep` is exact,
    and far fewer rows for the window that ranks them to sort."""
    rows = FeatureRows.of(rows)
    scorers = {name: _scorer(blend) for name, blend in blends.items()}
    apart = [name for name, blend in blends.items() if blend.without is not None]
    in_jvm = [name for name, scorer in scorers.items() if scorer is None]
    if in_jvm:
        frame = rows.to_frame()
        for name in in_jvm:
            model = blends[name].model
            assert model is not None, name  # a classifier's blend: scorers are None only for those
            probability = vector_to_array(F.col("probability"))[1].cast("double")
            frame = model.transform(frame).select(*frame.columns, probability.alias(name))
        rows = FeatureRows(frame)
    in_python = {name: scorer for name, scorer in scorers.items() if scorer is not None}
    if not rows.steps:  # nothing left to compute: only what the scores read crosses to Python
        inputs = sorted(
            {c for s in in_python.values() for c in s.inputs} | {*in_jvm, *carried, *(["sources_hit"] if apart else [])}
        )
        rows = FeatureRows(rows.frame.select("pid", "track_idx", *inputs))
    outputs = [*blends, *carried]
    fields = [
        rows.field("pid"),
        rows.field("track_idx"),
        *(StructField(n, DoubleType()) for n in blends),
        *(rows.field(c) for c in carried),
    ]

    def bind() -> Callable[[Columns], Columns]:
        bound = {name: scorer.bind() for name, scorer in in_python.items()}

        def score(cols: Columns) -> Columns:
            out = {**{n: cols[n] for n in [*in_jvm, *carried]}, **{n: f(cols) for n, f in bound.items()}}
            for n in apart:  # sources_hit counts no source of APART: 0 where only one of them proposed the row
                out[n] = np.where(cols["sources_hit"] > 0, out[n], LOWEST)
            kept = _kept(cols, [out[n] for n in outputs], keep)
            return {n: v[kept] for n, v in {"pid": cols["pid"], "track_idx": cols["track_idx"], **out}.items()}

        return score

    return rows.map(bind, fields)


def _kept(cols: Columns, scores: list[np.ndarray], keep: int | None) -> np.ndarray:
    """Which rows of a batch are among their playlist's `keep` best by one of `scores` at least
    (all rows without `keep`)."""
    if keep is None:
        return np.ones(len(cols["pid"]), bool)
    kept = np.zeros(len(cols["pid"]), bool)
    for values in scores:
        kept[top_per_group(cols["pid"], values, cols["track_idx"], keep)] = True
    return kept


def _weights(method: str, fitted: Any, names: list[str]) -> dict[str, dict[str, float]]:
    """The fitted model's feature weights for the report: importances (trees: Spark's, normalised;
    XGBoost's total gain, normalised to sum to 1) or coefficients (logistic)."""
    if method == "ranker":
        gain = fitted.get_booster().get_score(importance_type="total_gain")
        total = sum(gain.values()) or 1.0
        return {"feature_importances": {n: round(gain.get(n, 0.0) / total, 5) for n in names}}
    kind, weights = (
        ("feature_importances", fitted.featureImportances) if method == "gbt" else ("coefficients", fitted.coefficients)
    )
    return {kind: dict(zip(names, (round(float(w), 5) for w in weights)))}
