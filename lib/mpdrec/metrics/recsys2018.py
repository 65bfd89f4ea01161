"""The RecSys Challenge 2018 metrics, as the organisers' scorer computed them.

G is a playlist's hidden (ground-truth) tracks as a set; R is its recommended list, cut to the first
`max_recommendations` (500) and then deduplicated keeping each track's first occurrence, so a repeated
track neither scores twice nor pushes later tracks down. Positions below are 1-based.

* R-precision with artist credit: of R[1:|G|], every track in G scores 1, and every *distinct*
  artist of the G tracks that appears among the remaining (unmatched) tracks of R[1:|G|] scores 0.25;
  the sum is divided by |G| (not by |R|, so a short list is penalised).
* NDCG (`ndcg`, the organisers'): DCG = sum_{i=1..|R|} rel_i / log2(i + 1) with binary relevance
  (track in G); IDCG = sum_{i=1..min(|G|, 500)} 1 / log2(i + 1), the DCG of a list that starts with
  every track of G; NDCG = DCG / IDCG. The published leaderboard is on this scale (winner:
  R-precision 0.2241, NDCG 0.3946).
* `ndcg_rules`, the rules page's text: DCG = rel_1 + sum_{i=2..|R|} rel_i / log2(i); IDCG over the
  |G ∩ R| hits alone (1 + sum_{i=2..|G ∩ R|} 1 / log2(i)); 0 without hits. It rewards a list for
  ranking its few hits first whatever it missed, so it runs far above `ndcg` (docs/ranking.md) and
  compares with no published number: kept as a second column only.
* Recommended Songs clicks: floor(((first i with R_i in G) - 1) / 10), the 10-track pages a user
  refreshes before seeing a hit; max_recommendations // 10 + 1 (51 for 500) when R has no hit.

Sources, and where they disagree (the organisers' code wins, since it produced the leaderboard):

* Spotify's metrics module ("Copyright 2017 Spotify AB", C. De Boom, plamere/RecsysChallengeTools
  metrics.py; copy read in irhete/recsys-challenge-2018 metrics.py): `dcg` over the truncated then
  deduplicated list with discount log2(i + 1), `ndcg` = DCG / dcg(G, G, min(500, |G|)). Its clicks
  use the same 0-based index // 10 and max_n_predictions / 10 + 1 for no hit.
* Rules: https://recsys-challenge.spotify.com/rules, metric text as archived for the 2020 AIcrowd
  re-run (https://web.archive.org/web/20201202132814/https://www.aicrowd.com/challenges/
  spotify-million-playlist-dataset-challenge; quoted in github.com/m1fisher/cse258_project
  README.md): the source of `ndcg_rules` and of clicks' 51 when no hit.
* The organisers' artist-credit gist `r_precision_with_artist_fallback` (same irhete file,
  "see https://recsys-challenge.spotify.com"): 0.25 per unmatched track of R[1:|G|] whose artist
  is an artist of G, each such artist credited at most once; divided by |G|. The AIcrowd copy of
  the rules has no artist credit. Chen et al., RecSys '18 (doi:10.1145/3240323.3240342) write it
  as (|S_T ∩ G_T| + 0.25 |S_A ∩ G_A|) / |G_T| (seen only as quoted by others), which leaves open
  whether a track hit also earns its artist's 0.25; in the gist it does not (only misses earn it,
  though an artist one of whose tracks was hit still can, through another track). Winning teams'
  evaluators agree with the gist (layer6ai-labs/RecSys2018 EvaluatorRPrecisionArtist.java, which
  however divides by min(|G|, |R|); tmscarla/spotify-recsys-challenge utils/metrics.py, whose
  IDCG runs to |G|).
* G: the organisers' challenge playlists hold only tracks that occur in the MPD; a validation
  challenge's ground truth (`mpdrec.etl.split`) likewise keeps the hidden tracks that occur in the
  training data.
* Duplicates: the official validator (plamere/RecsysChallengeTools verify_submission.py) rejected
  any submission without exactly 500 unique tracks, so the official scorers never met them; the
  dedup-before-scoring rule above is the metrics module's DCG ("truncated at first, THEN
  deduplication").
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import compress, count

import numpy as np
import pandas as pd

MAX_RECOMMENDATIONS = 500
ARTIST_CREDIT = 0.25
PAGE_SIZE = 10  # tracks per Recommended Songs refresh
METRIC_NAMES = ("r_precision", "ndcg", "clicks", "ndcg_rules")


@dataclass(frozen=True)
class PlaylistMetrics:
    r_precision: float
    ndcg: float  # the organisers' (their metrics module): IDCG over min(|G|, 500) positions
    clicks: float
    ndcg_rules: float  # the rules page's text: IDCG over |G ∩ R|


def playlist_metrics(
    recommended: Sequence[Hashable],
    recommended_artists: Sequence[Hashable],
    truth: Sequence[Hashable],
    truth_artists: Sequence[Hashable],
    max_recommendations: int = MAX_RECOMMENDATIONS,
) -> PlaylistMetrics:
    """The three metrics of one playlist.

    recommended_artists[i] is the artist of recommended[i]; truth_artists[i] the artist of truth[i].
    An empty `recommended` is allowed (it scores 0, 0 and the no-hit clicks); an empty `truth` is
    not, because every metric divides by or searches for |G|.
    """
    if len(recommended) != len(recommended_artists) or len(truth) != len(truth_artists):
        raise ValueError("each track needs exactly one artist")
    if len(truth) == 0:
        raise ValueError("truth is empty: the metrics are undefined without hidden tracks")
    if max_recommendations < 1:
        raise ValueError(f"max_recommendations must be at least 1, got {max_recommendations}")
    tracks, artists = _first_occurrences(recommended[:max_recommendations], recommended_artists[:max_recommendations])
    truth_set = set(truth)
    # 0-based positions of the hits, ascending; compress/count keep the 500-step scan in C
    hit_positions = list(compress(count(), map(truth_set.__contains__, tracks)))
    return PlaylistMetrics(
        r_precision=_r_precision(tracks, artists, truth_set, set(truth_artists), hit_positions),
        ndcg=_ndcg(hit_positions, len(truth_set), max_recommendations),
        clicks=_clicks(hit_positions, max_recommendations),
        ndcg_rules=_ndcg_rules(hit_positions),
    )


def _first_occurrences(
    tracks: Sequence[Hashable], artists: Sequence[Hashable]
) -> tuple[Sequence[Hashable], Sequence[Hashable]]:
    """Drop repeated tracks, keeping the first occurrence and its artist, order preserved."""
    if len(dict.fromkeys(tracks)) == len(tracks):  # the usual case, checked at C speed
        return tracks, artists
    first: dict[Hashable, Hashable] = {}
    for track, artist in zip(tracks, artists):
        first.setdefault(track, artist)
    return list(first), list(first.values())


def _r_precision(
    tracks: Sequence[Hashable],
    artists: Sequence[Hashable],
    truth_set: set[Hashable],
    truth_artist_set: set[Hashable],
    hit_positions: list[int],
) -> float:
    """Track hits in the first |G| plus 0.25 per distinct G artist among that window's misses."""
    window = len(truth_set)
    track_hits = bisect_left(hit_positions, window)
    credited = {
        artist
        for track, artist in zip(tracks[:window], artists[:window])
        if track not in truth_set and artist in truth_artist_set
    }
    return (track_hits + ARTIST_CREDIT * len(credited)) / window


@lru_cache(maxsize=4)
def _discounts(length: int) -> np.ndarray:
    """1 / log2(i + 1) for 1-based i = 1..length: the organisers' DCG discounts, made once per list length."""
    return 1.0 / np.log2(np.arange(2, length + 2))


def _ndcg(hit_positions: list[int], num_truth: int, max_recommendations: int) -> float:
    """The organisers' NDCG: DCG with discount log2(i + 1) over the ideal DCG of min(|G|, k) hits."""
    discounts = _discounts(max_recommendations)
    return float(discounts[hit_positions].sum() / discounts[: min(num_truth, max_recommendations)].sum())


def _rules_dcg(positions: Iterable[int]) -> float:
    """The rules' DCG of hits at these 0-based positions: 1 at the top, 1/log2(i) at 1-based i."""
    return sum(1.0 / math.log2(p + 1) if p else 1.0 for p in positions)


def _ndcg_rules(hit_positions: list[int]) -> float:
    """The rules' NDCG: DCG over the ideal DCG of the same number of hits (|G ∩ R|), 0 without hits."""
    if not hit_positions:
        return 0.0
    return _rules_dcg(hit_positions) / _rules_dcg(range(len(hit_positions)))


def _clicks(hit_positions: list[int], max_recommendations: int) -> float:
    """Refreshes of 10 before the first hit; one more than any list this long allows when none."""
    if not hit_positions:
        return float(max_recommendations // PAGE_SIZE + 1)
    return float(hit_positions[0] // PAGE_SIZE)


def per_playlist_scores(recs: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Columns pid, r_precision, ndcg, clicks, ndcg_rules: one row per pid of truth, sorted by pid.

    recs: pid, rank (0-based; a pid's rows are taken in rank order, ties in row order), track, artist.
    truth: pid, track, artist. A truth pid without recs scores 0, 0, 51; a recs pid outside truth is
    a ValueError, since it means recommendations for playlists this truth cannot judge.
    """
    _require_columns(recs, "recs", ("pid", "rank", "track", "artist"))
    _require_columns(truth, "truth", ("pid", "track", "artist"))
    pids = pd.Index(truth["pid"].drop_duplicates()).sort_values()
    rec_codes = pids.get_indexer(recs["pid"])
    if (rec_codes < 0).any():
        unknown = pd.unique(recs["pid"].to_numpy()[rec_codes < 0])
        raise ValueError(f"recs has {len(unknown)} pid(s) not in truth, e.g. {unknown[:5].tolist()}")
    rec_order = _order(rec_codes, recs["rank"].to_numpy(dtype=np.int64))
    truth_codes = pids.get_indexer(truth["pid"])
    truth_order = _order(truth_codes, np.zeros_like(truth_codes))
    rec_bounds = _group_bounds(rec_codes[rec_order], len(pids))
    truth_bounds = _group_bounds(truth_codes[truth_order], len(pids))
    rec_tracks, rec_artists = (recs[c].to_numpy()[rec_order].tolist() for c in ("track", "artist"))
    truth_tracks, truth_artists = (truth[c].to_numpy()[truth_order].tolist() for c in ("track", "artist"))
    scores = [
        playlist_metrics(rec_tracks[r0:r1], rec_artists[r0:r1], truth_tracks[t0:t1], truth_artists[t0:t1])
        for r0, r1, t0, t1 in zip(rec_bounds, rec_bounds[1:], truth_bounds, truth_bounds[1:])
    ]
    return pd.DataFrame({"pid": pids, **{name: [getattr(s, name) for s in scores] for name in METRIC_NAMES}})


def _order(codes: np.ndarray, ranks: np.ndarray) -> slice | np.ndarray:
    """Row order grouping codes ascending, by rank within a code (ties keep row order).

    Recommendation tables usually arrive already in this order; then the rows are used as they
    are (a slice), which skips a 5M-row sort and the gathers that would follow it.
    """
    low = ranks.min(initial=0)
    key = codes * (ranks.max(initial=0) - low + 1) + (ranks - low)
    if (key[1:] >= key[:-1]).all():
        return slice(None)
    return np.argsort(key, kind="stable")


def _group_bounds(sorted_codes: np.ndarray, num_groups: int) -> list[int]:
    """Start offsets of groups 0..num_groups-1 in codes sorted ascending, plus the end."""
    return np.searchsorted(sorted_codes, np.arange(num_groups + 1)).tolist()


def score_recommendations(recs: pd.DataFrame, truth: pd.DataFrame, categories: pd.DataFrame | None = None) -> dict:
    """Challenge scores: means over every pid of truth, overall and (given categories) per category.

    categories: pid, category (1..10); every truth pid needs exactly one, extra pids are ignored.
    Returns {"num_playlists": n, "overall": {"r_precision", "ndcg", "clicks", "ndcg_rules"},
    "by_category": {"1": {... same keys ..., "num_playlists": k}, ...}} (by_category only with
    categories, keyed by the category number as a string, only categories present), all floats.
    """
    if truth.empty:
        raise ValueError("truth is empty: nothing to score")
    return summarise(per_playlist_scores(recs, truth), categories)


def summarise(scores: pd.DataFrame, categories: pd.DataFrame | None = None) -> dict:
    """`score_recommendations`' summary of per-playlist scores (`per_playlist_scores`' frame)."""
    result: dict = {"num_playlists": len(scores), "overall": _means(scores)}
    if categories is not None:
        result["by_category"] = _by_category(scores, categories)
    return result


def _means(scores: pd.DataFrame) -> dict[str, float]:
    return {name: float(scores[name].mean()) for name in METRIC_NAMES}


def _by_category(scores: pd.DataFrame, categories: pd.DataFrame) -> dict[str, dict]:
    """Per-category means; a truth pid without a category would silently drop out, so it raises."""
    _require_columns(categories, "categories", ("pid", "category"))
    if categories["pid"].duplicated().any():
        raise ValueError("categories lists a pid more than once")
    merged = scores.merge(categories[["pid", "category"]], on="pid", how="left")
    missing = merged.loc[merged["category"].isna(), "pid"]
    if len(missing):
        raise ValueError(f"{len(missing)} truth pid(s) have no category, e.g. {missing.head(5).tolist()}")
    return {
        str(int(category)): {**_means(group), "num_playlists": len(group)}  # type: ignore[arg-type]
        for category, group in merged.groupby("category", sort=True)
    }


def _require_columns(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}")
