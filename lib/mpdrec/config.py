"""Layered, typed configuration: conf/base.yaml < profile < --config files < --set overrides.

`conf/base.yaml` declares every key with its default; a later layer may only set keys that exist
there, and every value is checked against the dataclass field's type. Any mistake raises
ConfigError naming the key and the layer it came from, before a SparkSession is started.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from mpdrec.errors import ConfigError

PROFILES = ("local", "cluster", "dataproc", "emr")
SPARK_CONF = "spark.conf"  # the one free-form section: any Spark setting


@dataclass(frozen=True)
class PathsConfig:
    mpd: list[str]  # slice files: directories, globs or files; local, file://, gs://, s3://
    challenge: str | None  # a challenge_set.json; optional
    run_dir: str  # every output of a run lives under it


@dataclass(frozen=True)
class SynthConfig:
    num_slices: int
    seed: int
    out_dir: str
    challenge_size: int | None  # playlists in challenge_set.json; None: 10 per slice
    workers: int  # processes; 0 = one per core

    def __post_init__(self) -> None:
        _require(self.num_slices >= 1, "synth.num_slices", "must be at least 1")
        _require(self.num_slices <= 1_000, "synth.num_slices", "the MPD has 1,000 slices at most")
        size = self.challenge_size
        _require(
            size is None or (size >= 10 and size % 10 == 0),
            "synth.challenge_size",
            "must be a positive multiple of 10 (ten categories in equal shares)",
        )
        _require(self.workers >= 0, "synth.workers", "must be >= 0")


@dataclass(frozen=True)
class IngestConfig:
    max_quarantine_share: float  # fail when quarantined records / all records exceeds this
    files_per_task: int  # slice files per Spark task; 0 = about four tasks per core

    def __post_init__(self) -> None:
        _require(self.files_per_task >= 0, "ingest.files_per_task", "must be >= 0")
        _require(0.0 <= self.max_quarantine_share <= 1.0, "ingest.max_quarantine_share", "must be within [0, 1]")


@dataclass(frozen=True)
class ValidationConfig:
    per_category: int | None  # held-out MPD playlists per category; None: 1 per 1,000, 10..1,000
    train_per_category: int | None  # blend-training challenge per category; None: 1 per 100, 50..1,000

    def __post_init__(self) -> None:
        for key in ("per_category", "train_per_category"):
            value = getattr(self, key)
            _require(value is None or value >= 1, f"validation.{key}", "must be at least 1 (or null for the default)")


@dataclass(frozen=True)
class InteractionsConfig:
    files: int  # Parquet files of the interactions table; 0 = about four per core

    def __post_init__(self) -> None:
        _require(self.files >= 0, "interactions.files", "must be >= 0")


NEGATIVE_SUBSETS = ("all", "random", "with_track")
NEGATIVE_DRAW_KEYS = ("k", "beta")  # read by the NCF trainer, which draws the negatives, not by the negatives job


@dataclass(frozen=True)
class NegativesConfig:
    k: int  # negatives per positive, drawn afresh every NCF epoch
    beta: float  # negatives drawn from popularity ** beta; 0 = uniform over all tracks
    input: str | None  # an interactions table (playlist_idx, track_idx, ...); None: the run's own
    shards: int  # shards of the training positives, each holding whole playlists; a Horovod rank reads every size-th
    eval_playlists: int  # playlists whose last track is held out for leave-one-out evaluation; 0 = none
    eval_negatives: int  # sampled non-positive tracks each held-out track is ranked against
    subset: str  # all | random | with_track: the playlists sampled from (the NNCF study's data regimes)
    subset_size: int  # random, with_track: this many playlists, drawn by a seeded hash
    subset_track: int | None  # with_track: only playlists holding this track_idx; None: 0, the most popular

    def __post_init__(self) -> None:
        _require(self.subset in NEGATIVE_SUBSETS, "negatives.subset", f"must be one of {', '.join(NEGATIVE_SUBSETS)}")
        _require(self.subset_size >= 1, "negatives.subset_size", "must be at least 1")
        _require(self.subset_track is None or self.subset_track >= 0, "negatives.subset_track", "must be >= 0 or null")
        _require(self.eval_playlists >= 0, "negatives.eval_playlists", "must be >= 0")
        _require(self.eval_negatives >= 1, "negatives.eval_negatives", "must be at least 1")
        _require(self.k >= 1, "negatives.k", "must be at least 1")
        _require(self.beta >= 0, "negatives.beta", "must be >= 0")
        _require(self.shards >= 1, "negatives.shards", "must be at least 1")


SOURCES = ("popularity", "title", "artist", "cooc", "als", "kmeans", "dice", "dae")
NCF_MODELS = ("gmf", "mlp", "neumf", "nncf")
BLEND_METHODS = ("ranker", "gbt", "logistic", "fixed")
RANKER_OBJECTIVES = ("rank:ndcg", "rank:pairwise")


@dataclass(frozen=True)
class CandidatesConfig:
    als: int
    cooc: int
    title: int
    popularity: int
    artist: int
    kmeans: int
    dice: int
    dae: int

    def __post_init__(self) -> None:
        for name in SOURCES:
            _require(1 <= getattr(self, name) <= 5000, f"rank.candidates.{name}", "must be within 1..5000")


@dataclass(frozen=True)
class BlendConfig:
    method: str  # ranker (XGBoost learning to rank) | gbt | logistic: fitted on the blend-training
    # challenge; fixed: reciprocal ranks
    objective: str  # ranker: rank:ndcg (LambdaMART) | rank:pairwise
    trees: int  # ranker and gbt: boosting rounds
    depth: int
    learning_rate: float  # ranker and gbt: shrinkage of each tree
    negatives_per_positive: int  # non-hidden candidates sampled per hidden one for fitting
    ncf_feature: bool  # with rank.ncf_model: final's re-ranker takes the NCF score among its features
    compare_ncf: bool  # with rank.ncf_model: also fit the other blend (final_with_ncf or final_without_ncf)
    compare_dae: bool  # with dae in rank.models: also fit final_without_dae (no DAE feature, no DAE-only rows)

    def __post_init__(self) -> None:
        _require(self.method in BLEND_METHODS, "rank.blend.method", f"must be one of {', '.join(BLEND_METHODS)}")
        _require(
            self.objective in RANKER_OBJECTIVES,
            "rank.blend.objective",
            f"must be one of {', '.join(RANKER_OBJECTIVES)}",
        )
        _require(0.0 < self.learning_rate <= 1.0, "rank.blend.learning_rate", "must be within (0, 1]")
        _require(self.trees >= 1, "rank.blend.trees", "must be at least 1")
        _require(1 <= self.depth <= 30, "rank.blend.depth", "must be within 1..30")
        _require(self.negatives_per_positive >= 1, "rank.blend.negatives_per_positive", "must be at least 1")


@dataclass(frozen=True)
class RankConfig:
    models: list[str]  # single-source rankings to write (popularity, title, artist, cooc, als)
    team_name: str
    team_email: str
    title_min_playlists: int  # a title word is used when at least this many training playlists hold it
    cooc_neighbours: int  # most similar training playlists used per query playlist
    cooc_beta: float  # candidate score / popularity ** beta: 0 favours hits, 1 favours niche tracks
    cooc_max_playlists_per_seed: int  # a seed in more playlists is sampled down to this many (dice too)
    feature_playlists_per_seed: int  # the blend's seed co-occurrence features: the same sampling, to this many
    dice_neighbours: int  # source dice: most similar training playlists by the Dice coefficient
    als_top_n: int  # tracks per playlist from the ALS factors (seeds excluded), before the fallbacks fill
    block_rows: int  # blocked top-N scoring: tracks (and query playlists) per block of the matrix product
    candidates: CandidatesConfig  # per source: top tracks per playlist in the blend's candidate set
    blend: BlendConfig
    ncf_model: str | None  # an ncf/<model> of this run: its score is a blend feature and rank/ncf a submission
    kmeans_clusters: int  # kmeans source: k-means clusters of the NCF model's playlist embeddings
    kmeans_tracks: int  # kmeans source: a cluster's commonest tracks, ordered by the NCF score

    def __post_init__(self) -> None:
        unknown = [m for m in self.models if m not in SOURCES]
        _require(not unknown, "rank.models", f"unknown models {unknown} (known: {sorted(SOURCES)})")
        _require(bool(self.models), "rank.models", "needs at least one model")
        for key in ("team_name", "team_email"):
            value = getattr(self, key)
            _require(
                bool(value) and "," not in value and "\n" not in value,
                f"rank.{key}",
                "must be non-empty, without commas or newlines",
            )
        _require(self.title_min_playlists >= 1, "rank.title_min_playlists", "must be at least 1")
        _require(self.cooc_neighbours >= 1, "rank.cooc_neighbours", "must be at least 1")
        _require(self.cooc_max_playlists_per_seed >= 1, "rank.cooc_max_playlists_per_seed", "must be >= 1")
        _require(self.feature_playlists_per_seed >= 1, "rank.feature_playlists_per_seed", "must be >= 1")
        _require(self.dice_neighbours >= 1, "rank.dice_neighbours", "must be at least 1")
        _require(1 <= self.als_top_n <= 10_000, "rank.als_top_n", "must be within 1..10000")
        _require(self.block_rows >= 1, "rank.block_rows", "must be at least 1")
        _require(
            self.ncf_model in (None, *NCF_MODELS), "rank.ncf_model", f"must be null or one of {', '.join(NCF_MODELS)}"
        )
        _require(
            "kmeans" not in self.models or self.ncf_model is not None,
            "rank.models",
            "kmeans clusters the NCF model's playlist embeddings: set rank.ncf_model too",
        )
        _require(self.kmeans_clusters >= 2, "rank.kmeans_clusters", "must be at least 2")
        _require(1 <= self.kmeans_tracks <= 10_000, "rank.kmeans_tracks", "must be within 1..10000")


ALS_WEIGHTINGS = ("binary", "counts", "log")
ALS_SELECT = ("r_precision", "ndcg", "clicks", "mpr")


@dataclass(frozen=True)
class AlsConfig:
    rank: int  # latent factors
    alpha: float  # confidence c = 1 + alpha * r'
    reg_param: float  # Spark's regParam (scaled inside Spark by each row's number of ratings)
    max_iter: int
    weighting: str  # r' from the interaction weight r: binary (1) | counts (r) | log (log(1 + r / eps))
    eps: float  # the log weighting's scale
    blocks: int  # user and item blocks of Spark's ALS; 0 = from the data (`mpdrec.models.als.blocks`)
    checkpoint_interval: int  # iterations between RDD checkpoints (cuts the lineage); 0 = never
    grid_rank: list[int]  # grid search: ranks tried; empty = [rank]
    grid_alpha: list[float]  # alphas tried; empty = [alpha]
    grid_reg_param: list[float]  # regParams tried; empty = [reg_param]
    select: str  # r_precision | ndcg | clicks | mpr: how the grid's best point is chosen
    leave_one_out: bool  # the chosen point also scored by NCF's leave-one-out protocol, when the run has the set
    holdout_users: int  # table runs: users the grid is scored on (`mpdrec.models.table_holdout`)
    holdout_share: float  # table runs: the share of each held-out user's latest items hidden

    def __post_init__(self) -> None:
        _require(self.rank >= 1, "als.rank", "must be at least 1")
        _require(self.alpha >= 0, "als.alpha", "must be >= 0")
        _require(self.reg_param >= 0, "als.reg_param", "must be >= 0")
        _require(self.max_iter >= 1, "als.max_iter", "must be at least 1")
        _require(self.weighting in ALS_WEIGHTINGS, "als.weighting", f"must be one of {', '.join(ALS_WEIGHTINGS)}")
        _require(self.eps > 0, "als.eps", "must be > 0")
        _require(self.blocks >= 0, "als.blocks", "must be >= 0")
        _require(self.checkpoint_interval >= 0, "als.checkpoint_interval", "must be >= 0")
        _require(all(v >= 1 for v in self.grid_rank), "als.grid_rank", "values must be at least 1")
        _require(all(v >= 0 for v in self.grid_alpha), "als.grid_alpha", "values must be >= 0")
        _require(all(v >= 0 for v in self.grid_reg_param), "als.grid_reg_param", "values must be >= 0")
        _require(self.select in ALS_SELECT, "als.select", f"must be one of {', '.join(ALS_SELECT)}")
        _require(self.holdout_users >= 1, "als.holdout_users", "must be at least 1")
        _require(0 < self.holdout_share < 1, "als.holdout_share", "must be between 0 and 1 (exclusive)")

    def points(self) -> list[dict[str, float]]:
        """The grid's points in a fixed order (rank, then alpha, then reg_param)."""
        ranks = self.grid_rank or [self.rank]
        alphas = self.grid_alpha or [self.alpha]
        regs = self.grid_reg_param or [self.reg_param]
        return [{"rank": r, "alpha": a, "reg_param": g} for r in ranks for a in alphas for g in regs]


NCF_MONITORS = ("hr@10", "ndcg@10", "auc")


@dataclass(frozen=True)
class NcfConfig:
    model: str  # gmf | mlp | neumf | nncf
    factors: int  # GMF latent size (NNCF: its dot stream's)
    layers: list[int]  # MLP tower; layers[0] = playlist + track embeddings together
    l2: float  # L2 penalty on embeddings
    dropout: float  # NNCF's MLP stream
    epochs: int
    batch_size: int  # per rank
    lr: float  # embeddings: row-sparse Adagrad learning rate for one rank
    dense_lr: float  # every other weight (dense layers): Adam learning rate for one rank
    scale_lr: bool  # multiply both learning rates by the number of ranks (the global batch grows with them)
    sparse_as_dense: bool  # Horovod: allreduce embedding gradients as dense tables instead of allgather
    patience: int  # stop after this many epochs without a better `monitor`; 0 = never early
    monitor: str  # hr@10 | ndcg@10 | auc: the metric early stopping and the kept model follow
    pretrained: bool  # neumf: start from this run's trained gmf and mlp (He et al., section 3.4.1)
    num_proc: int  # ranks when launcher = spark
    launcher: str  # horovodrun (or plain python: one rank) | spark (horovod.spark.run)
    train_path: str | None  # positives in shard=<s>/ (negatives drawn) or labelled rows; None: <run_dir>/negatives/data
    eval_path: str | None  # leave-one-out Parquet (playlist_idx, track_idx, negatives); None: the run's

    def __post_init__(self) -> None:
        _require(self.model in NCF_MODELS, "ncf.model", "must be gmf, mlp, neumf or nncf")
        _require(self.factors >= 1, "ncf.factors", "must be at least 1")
        _require(
            len(self.layers) >= 1 and all(u >= 1 for u in self.layers) and self.layers[0] % 2 == 0,
            "ncf.layers",
            "must be positive sizes, the first even (split between playlist and track)",
        )
        _require(self.l2 >= 0, "ncf.l2", "must be >= 0")
        _require(0 <= self.dropout < 1, "ncf.dropout", "must be within [0, 1)")
        _require(self.epochs >= 1, "ncf.epochs", "must be at least 1")
        _require(self.batch_size >= 1, "ncf.batch_size", "must be at least 1")
        _require(self.lr > 0, "ncf.lr", "must be > 0")
        _require(self.dense_lr > 0, "ncf.dense_lr", "must be > 0")
        _require(self.patience >= 0, "ncf.patience", "must be >= 0")
        _require(self.monitor in NCF_MONITORS, "ncf.monitor", f"must be one of {', '.join(NCF_MONITORS)}")
        _require(not self.pretrained or self.model == "neumf", "ncf.pretrained", "applies to ncf.model=neumf only")
        _require(self.num_proc >= 1, "ncf.num_proc", "must be at least 1")
        _require(self.launcher in ("horovodrun", "spark"), "ncf.launcher", "must be horovodrun or spark")


@dataclass(frozen=True)
class DaeConfig:
    hidden: int  # the playlist code's size
    keep: float  # share of a playlist's input tracks kept in training (the rest dropped: the denoising)
    epochs: int
    batch_size: int  # playlists per rank and step
    lr: float  # Adam's learning rate (not scaled with the ranks)
    l2: float  # L2 penalty on the encoder rows a batch reads
    sampled: int  # tracks drawn per step as the softmax's negative columns (beside the batch's own tracks)
    sampling_beta: float  # those draws follow popularity ** beta (with the logQ correction)
    min_playlists: int  # tracks in fewer training playlists are outside the model (never input nor output)
    max_tracks: int  # and at most this many tracks, the most popular: bounds a rank's tables
    title_min_playlists: int  # title words in at least this many training playlists are inputs too; 0 = no titles
    title_only: float  # share of training playlists (with title words) shown by their title alone
    patience: int  # stop after this many epochs without a better `monitor`; 0 = never early
    monitor: str  # hr@10 | ndcg@10 | auc on the leave-one-out set

    def __post_init__(self) -> None:
        for key in ("hidden", "epochs", "batch_size", "sampled", "min_playlists", "max_tracks"):
            _require(getattr(self, key) >= 1, f"dae.{key}", "must be at least 1")
        _require(0 < self.keep <= 1, "dae.keep", "must be within (0, 1]")
        _require(self.title_min_playlists >= 0, "dae.title_min_playlists", "must be >= 0")
        _require(0 <= self.title_only < 1, "dae.title_only", "must be within [0, 1)")
        _require(self.lr > 0, "dae.lr", "must be > 0")
        _require(self.l2 >= 0, "dae.l2", "must be >= 0")
        _require(self.sampling_beta >= 0, "dae.sampling_beta", "must be >= 0")
        _require(self.patience >= 0, "dae.patience", "must be >= 0")
        _require(self.monitor in NCF_MONITORS, "dae.monitor", f"must be one of {', '.join(NCF_MONITORS)}")


TABLE_FORMATS = ("csv", "parquet")
TABLE_COMBINE = ("sum", "mean", "max")


@dataclass(frozen=True)
class CsvConfig:
    sep: str  # field separator
    quote: str  # quote character
    encoding: str  # a Java charset name: UTF-8, ISO-8859-1 (Latin-1), windows-1252
    header: bool  # the first line names the columns; false: `names` does
    names: list[str]  # column names of a file without a header line

    def __post_init__(self) -> None:
        _require(len(self.sep) >= 1, "table.csv.sep", "must be non-empty")
        _require(len(self.quote) == 1, "table.csv.quote", "must be one character")
        _require(
            self.header or bool(self.names),
            "table.csv.names",
            "a file without a header (table.csv.header=false) needs its column names here",
        )


@dataclass(frozen=True)
class TableConfig:
    path: list[str]  # CSV or Parquet files: files, directories (every data file in them) or globs
    format: str  # csv | parquet
    user: str  # column names of the user, the item, and the optional value and time
    item: str
    value: str | None  # None: every row is one interaction worth 1
    time: str | None  # orders a user's interactions (numbers or timestamps); None: by item
    attributes: list[str]  # item attribute columns, kept in interactions/item_ids
    combine: str  # one (user, item) pair in several rows: sum | mean | max of their values
    max_quarantine_share: float  # fail when bad rows / all rows exceeds this
    csv: CsvConfig

    def __post_init__(self) -> None:
        _require(self.format in TABLE_FORMATS, "table.format", f"must be one of {', '.join(TABLE_FORMATS)}")
        _require(self.combine in TABLE_COMBINE, "table.combine", f"must be one of {', '.join(TABLE_COMBINE)}")
        _require(0.0 <= self.max_quarantine_share <= 1.0, "table.max_quarantine_share", "must be within [0, 1]")
        named = [self.user, self.item, self.value, self.time, *self.attributes]
        used = [c for c in named if c is not None]
        _require(len(set(used)) == len(used), "table", f"a column is mapped twice: {used}")

    def columns(self) -> dict[str, str]:
        """Output column -> input column, for the mapped columns that are set."""
        roles = {"user": self.user, "item": self.item, "value": self.value, "time": self.time}
        return {k: v for k, v in roles.items() if v is not None} | {a: a for a in self.attributes}


EXPLICIT_MODELS = ("jaccard", "als", "dot", "deep")
EXPLICIT_TARGETS = ("original", "adjusted", "binary")
EXPLICIT_LOSSES = ("mse", "mae")


@dataclass(frozen=True)
class ExplicitConfig:
    implicit_value: float | None  # a rating meaning "interacted, not rated" (Book-Crossing: 0), left out
    split: list[float]  # train / validation / test shares, drawn per (user, item) from the seed
    threshold: float  # "recommend" = an original rating >= threshold
    sigmoid_a: list[float]  # adjusted target 1 / (1 + exp((a - x) * b)) * 9 + 1: inflections tried
    sigmoid_b: list[float]  # steepnesses tried
    models: list[str]  # jaccard | als | dot | deep
    targets: list[str]  # original | adjusted | binary
    losses: list[str]  # the networks' losses on the original and adjusted targets (binary: cross-entropy)
    jaccard_max_raters: int  # an item rated by more users is sampled down to this many for similarities
    als_rank: int
    als_reg_param: float
    als_max_iter: int
    factors: int  # the networks' embedding size
    hidden: list[int]  # the deep network's layers (a skip connection around all but the first)
    dropout: float  # the deep network's dropout
    epochs: int  # most epochs; the weights of the best validation loss are kept
    patience: int  # epochs without a better validation loss before stopping
    batch_size: int
    lr: float  # Adam

    def __post_init__(self) -> None:
        _require(
            len(self.split) == 3 and all(s > 0 for s in self.split) and abs(sum(self.split) - 1) < 1e-9,
            "explicit.split",
            "must be three positive shares summing to 1",
        )
        for key, known in (("models", EXPLICIT_MODELS), ("targets", EXPLICIT_TARGETS), ("losses", EXPLICIT_LOSSES)):
            values = getattr(self, key)
            _require(
                bool(values) and all(v in known for v in values),
                f"explicit.{key}",
                f"must be a non-empty list of {', '.join(known)}",
            )
        _require(bool(self.sigmoid_a) and bool(self.sigmoid_b), "explicit.sigmoid_a", "the grid needs a and b values")
        _require(all(b > 0 for b in self.sigmoid_b), "explicit.sigmoid_b", "steepness must be > 0")
        _require(self.jaccard_max_raters >= 2, "explicit.jaccard_max_raters", "must be at least 2")
        for key in ("als_rank", "als_max_iter", "factors", "epochs", "batch_size"):
            _require(getattr(self, key) >= 1, f"explicit.{key}", "must be at least 1")
        _require(bool(self.hidden) and all(h >= 1 for h in self.hidden), "explicit.hidden", "must be positive sizes")
        _require(0 <= self.dropout < 1, "explicit.dropout", "must be within [0, 1)")
        _require(self.patience >= 0, "explicit.patience", "must be >= 0")
        _require(self.lr > 0 and self.als_reg_param >= 0, "explicit.lr", "must be > 0 (als_reg_param >= 0)")


@dataclass(frozen=True)
class SynthBooksConfig:
    users: int  # raters (Book-Crossing: 105,283 in the ratings file)
    books: int  # ISBNs (340,556)
    ratings: int  # rows (1,149,780), zeros included
    zero_share: float  # implicit rows, rating 0 (0.62 in the real file)
    bad_rows: int  # malformed lines mixed in (each of a real kind), for the bad-row path
    seed: int
    out_dir: str  # BX-Book-Ratings.csv + _manifest.json (a local directory)

    def __post_init__(self) -> None:
        _require(self.users >= 2 and self.books >= 2, "synth_books.users", "users and books must be at least 2")
        _require(self.ratings >= 1, "synth_books.ratings", "must be at least 1")
        _require(0 <= self.zero_share < 1, "synth_books.zero_share", "must be within [0, 1)")
        _require(self.bad_rows >= 0, "synth_books.bad_rows", "must be >= 0")


CHARTS_NETWORKS = ("dot", "bias", "mlp", "text", "artist")


@dataclass(frozen=True)
class ChartsConfig:
    exclude: list[str]  # users of the table that are not countries (the charts' "global")
    title: str  # the item attribute holding the song title (for the text network)
    artist: str  # the item attribute holding the artist (for the artist network)
    top_songs: int  # songs kept, by total streams
    eps: float  # r' = log((1 + r) / eps)
    min_songs: int  # a country with more songs than this gets validation_share of them held out
    validation_share: float
    grid_rank: list[int]
    grid_alpha: list[float]
    grid_reg_param: list[float]
    max_iter: int
    networks: list[str]  # dot | bias | mlp | text | artist
    factors: int
    hidden: list[int]  # the MLP's ReLU layers (batch norm each, dropout after the first)
    dropout: float
    title_tokens: int  # title words the text network reads (longer titles are cut)
    text_units: int  # the LSTM's size and its ReLU layer's
    epochs: int
    batch_size: int
    lr: float
    arithmetic: list[str]  # country-vector expressions such as "se * no - us": songs recommended for them
    arithmetic_top: int

    def __post_init__(self) -> None:
        _require(self.top_songs >= 2, "charts.top_songs", "must be at least 2")
        _require(self.eps > 0, "charts.eps", "must be > 0")
        _require(0 < self.validation_share < 1, "charts.validation_share", "must be within (0, 1)")
        _require(self.min_songs >= 1, "charts.min_songs", "must be at least 1")
        _require(
            bool(self.grid_rank) and bool(self.grid_alpha) and bool(self.grid_reg_param),
            "charts.grid_rank",
            "the grid needs rank, alpha and reg_param values",
        )
        _require(
            all(n in CHARTS_NETWORKS for n in self.networks),
            "charts.networks",
            f"must be a list of {', '.join(CHARTS_NETWORKS)}",
        )
        _require(len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden), "charts.hidden", "must be positive sizes")
        _require(0 <= self.dropout < 1, "charts.dropout", "must be within [0, 1)")
        for key in ("max_iter", "factors", "title_tokens", "text_units", "epochs", "batch_size", "arithmetic_top"):
            _require(getattr(self, key) >= 1, f"charts.{key}", "must be at least 1")
        _require(self.lr > 0, "charts.lr", "must be > 0")


@dataclass(frozen=True)
class SynthChartsConfig:
    countries: int  # regions besides "global"
    songs: int
    artists: int
    days: int  # daily top-200 charts per region
    bad_rows: int  # malformed lines mixed in, for the bad-row path
    seed: int
    out_dir: str  # one <region>.csv per region + _manifest.json (a local directory)

    def __post_init__(self) -> None:
        _require(2 <= self.countries <= 60, "synth_charts.countries", "must be within 2..60")
        _require(self.songs >= 200 and self.artists >= 1, "synth_charts.songs", "needs at least 200 songs (a chart)")
        _require(self.days >= 1 and self.bad_rows >= 0, "synth_charts.days", "days >= 1, bad_rows >= 0")


@dataclass(frozen=True)
class DiceConfig:
    held_out_share: float  # MPD playlists held out (seeded by pid); the others are the bank
    neighbours: int  # most similar bank playlists per held-out playlist
    recommendations: int  # tracks recommended per held-out playlist
    max_playlists_per_track: int  # a track in more bank playlists is sampled down for the similarity join

    def __post_init__(self) -> None:
        _require(0 < self.held_out_share < 1, "dice.held_out_share", "must be within (0, 1)")
        for key in ("neighbours", "recommendations", "max_playlists_per_track"):
            _require(getattr(self, key) >= 1, f"dice.{key}", "must be at least 1")


@dataclass(frozen=True)
class FollowersConfig:
    test_share: float  # playlists held out for the error (seeded by pid)
    log_target: bool  # fit log(1 + followers); errors are reported on followers and on the log scale
    lasso_reg: float  # the lasso's regParam (L1 only)
    gbt_trees: int
    gbt_depth: int
    top_artists: int  # the most common artist, one-hot over this many commonest (the rest: other)

    def __post_init__(self) -> None:
        _require(0 < self.test_share < 1, "followers.test_share", "must be within (0, 1)")
        _require(self.lasso_reg >= 0, "followers.lasso_reg", "must be >= 0")
        for key in ("gbt_trees", "gbt_depth", "top_artists"):
            _require(getattr(self, key) >= 1, f"followers.{key}", "must be at least 1")


@dataclass(frozen=True)
class SparkConfig:
    master: str | None  # None: leave it to spark-submit / the cluster
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    seed: int
    paths: PathsConfig
    synth: SynthConfig
    ingest: IngestConfig
    validation: ValidationConfig
    interactions: InteractionsConfig
    negatives: NegativesConfig
    rank: RankConfig
    als: AlsConfig
    ncf: NcfConfig
    dae: DaeConfig
    table: TableConfig
    explicit: ExplicitConfig
    synth_books: SynthBooksConfig
    charts: ChartsConfig
    synth_charts: SynthChartsConfig
    dice: DiceConfig
    followers: FollowersConfig
    spark: SparkConfig

    def __post_init__(self) -> None:
        """Keys of different sections that must agree, checked before any job does any work."""
        _require(
            self.rank.ncf_model in (None, self.ncf.model),
            "rank.ncf_model",
            f"is {self.rank.ncf_model} but ncf.model is {self.ncf.model}: the rank stage scores with the "
            f"model jobs/train_ncf.py trains (ncf.model); set both to the same model, or rank.ncf_model "
            f"to null for no NCF score",
        )

    def section_digest(self, *sections: str) -> str:
        """Stable digest of some sections: a stage's outputs depend on these and nothing else."""
        return stable_digest({s: _plain(getattr(self, s)) for s in sections})

    def as_dict(self) -> dict[str, Any]:
        return _plain(self)


def stable_digest(payload: Any) -> str:
    """Short digest of a JSON-able value, independent of key order."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _plain(obj: Any) -> Any:
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) and not isinstance(obj, type) else obj


def _require(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(f"config key '{key}': {problem}")


@dataclass(frozen=True)
class SetValue:
    """A `--set` value as typed, read once the key's type is known (`_coerce`): a string key takes
    the text as it is (`,`, `#`, `yes`, `10`: YAML would make them an error, null, true and 10);
    other keys take it as YAML (`10`, `true`, `[a, b]`). Quotes are YAML's either way (`'","'` is
    `,`); an empty value is null (it clears a key)."""

    text: str

    def resolve(self, tp: Any, key: str) -> Any:
        if not self.text.strip():
            return None
        try:
            value = yaml.safe_load(self.text)
        except yaml.YAMLError as exc:
            if _is_text_type(tp):
                return self.text
            raise ConfigError(f"--set '{key}={self.text}': value is not valid YAML ({exc})") from exc
        if _is_text_type(tp) and not isinstance(value, str) and not (value is None and _is_optional(tp)):
            return self.text
        return value

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return repr(self.text)


def _is_optional(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def _is_text_type(tp: Any) -> bool:
    """str or str | None: a key whose value is text."""
    return tp is str or (_is_optional(tp) and [a for a in typing.get_args(tp) if a is not type(None)] == [str])


def parse_set(items: Iterable[str]) -> dict[str, Any]:
    """`a.b=value` strings to a nested dict of SetValue leaves (read by the key's type when the config
    is built); `spark.conf.<key>=value` sets one Spark key, dots and all."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set '{item}': expected dotted.key=value")
        node = out
        conf_key = key.removeprefix(f"{SPARK_CONF}.") if key.startswith(f"{SPARK_CONF}.") else None
        parts = SPARK_CONF.split(".") + [conf_key] if conf_key else key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set '{item}': '{part}' is set twice as a value and a section")
        node[parts[-1]] = SetValue(raw)
    return out


def _merge(base: dict[str, Any], layer: Mapping[str, Any], origin: str, prefix: str = "") -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            known = ", ".join(sorted(f"{prefix}{k}" for k in base))
            raise ConfigError(f"unknown config key '{dotted}' in {origin} (known here: {known})")
        free_form = dotted == SPARK_CONF
        if isinstance(base[key], dict) and not free_form:
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key '{dotted}' in {origin}: expected a section, got {value!r}")
            _merge(base[key], value, origin, dotted + ".")
        elif free_form:
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key '{dotted}' in {origin}: expected a mapping")
            base[key] = {**base[key], **value}
        else:
            base[key] = value


def _coerce(value: Any, tp: Any, key: str) -> Any:
    if isinstance(value, SetValue):
        value = value.resolve(tp, key)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):  # a single item, or a comma-separated list from --set
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"config key '{key}': expected a list, got {value!r}")
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}': expected a mapping, got {value!r}")
        return {
            str(k): _coerce(v, str, f"{key}.{k}")
            if isinstance(v, SetValue)
            else str(v).lower()
            if isinstance(v, bool)
            else str(v)
            for k, v in value.items()
        }
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{key}': expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{key}': expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{key}': expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if value is None or isinstance(value, (dict, list, bool)):
            raise ConfigError(f"config key '{key}': expected a string, got {value!r}")
        return str(value)
    raise TypeError(f"unsupported config type {tp} for {key}")


def _build(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        if f.name not in data:
            raise ConfigError(f"config key '{key}' is missing from conf/base.yaml")
        tp = hints[f.name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            kwargs[f.name] = _build(tp, data[f.name], key + ".")
        else:
            kwargs[f.name] = _coerce(data[f.name], tp, key)
    return cls(**kwargs)


def _read_yaml(path: Path | Traversable) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping")
    return data


def load_config(
    conf_dir: Path | Traversable,
    profile: str = "local",
    files: Iterable[str | Path] = (),
    overrides: Iterable[str] = (),
) -> Config:
    """Merge the layers and return the typed config (raises ConfigError on any mistake)."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile '{profile}' (choose from {', '.join(PROFILES)})")
    merged = _read_yaml(conf_dir / "base.yaml")
    profile_file = conf_dir / f"{profile}.yaml"
    _merge(merged, _read_yaml(profile_file), str(profile_file))
    for f in files:
        _merge(merged, _read_yaml(Path(f)), str(f))
    _merge(merged, parse_set(overrides), "--set")
    return _build(Config, merged)
