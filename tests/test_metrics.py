"""RecSys Challenge 2018 metrics against hand-computed values.

Track ids are strings whose first letter is the artist ("a2" is by artist "a"); "x…" are fillers
whose artist "x" is never in a ground truth. Positions in the comments are 1-based. `ndcg` is the
organisers' (discount log2(i + 1), IDCG over min(|G|, 500)); `ndcg_rules` the rules page's text
(discount log2(i) after the first, IDCG over the hits).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mpdrec.metrics.recsys2018 import PlaylistMetrics, per_playlist_scores, playlist_metrics, score_recommendations


def score(recommended: list[str], truth: list[str], **kwargs) -> PlaylistMetrics:
    return playlist_metrics(recommended, [t[0] for t in recommended], truth, [t[0] for t in truth], **kwargs)


def fillers(n: int) -> list[str]:
    return [f"x{i}" for i in range(n)]


def test_perfect_ranking():
    m = score(["a1", "b1", "c1", "x1", "y1"], ["a1", "b1", "c1"])
    assert m.r_precision == 1.0  # 3 track hits in the first |G| = 3, / 3
    assert m.ndcg == pytest.approx(1.0, abs=1e-15)  # DCG = IDCG = 1/log2(2) + 1/log2(3) + 1/log2(4)
    assert m.ndcg_rules == pytest.approx(1.0, abs=1e-15)  # DCG = IDCG = 1 + 1/log2(2) + 1/log2(3)
    assert m.clicks == 0.0


def test_no_hit_at_all():
    assert score(["x1", "y1", "z1"], ["a1", "b1"]) == PlaylistMetrics(0.0, 0.0, 51.0, 0.0)


def test_no_track_hit_but_artist_credit():
    m = score(["a2", "b2", "c1"], ["a1", "b1"])
    assert m.r_precision == 0.25  # window a2, b2: artists a and b are G's, 0.25 * 2 / |G| = 0.5 / 2
    assert (m.ndcg, m.clicks, m.ndcg_rules) == (0.0, 51.0, 0.0)  # artists do not count as hits anywhere else


@pytest.mark.parametrize("position, clicks", [(1, 0.0), (10, 0.0), (11, 1.0), (20, 1.0), (21, 2.0), (500, 49.0)])
def test_clicks_is_the_page_of_the_first_hit(position, clicks):
    recommended = fillers(position - 1) + ["a1"] + fillers(600)[position:]
    assert score(recommended, ["a1"]).clicks == clicks  # floor((position - 1) / 10)


def test_hit_at_position_11():
    m = score(fillers(10) + ["a1"], ["a1", "b1"])
    # organisers': DCG 1/log2(12), IDCG over |G| = 2: 1 + 1/log2(3)
    assert m.ndcg == pytest.approx((1 / math.log2(12)) / (1 + 1 / math.log2(3)), abs=1e-15)
    assert m.ndcg_rules == pytest.approx(1 / math.log2(11), abs=1e-15)  # DCG 1/log2(11), IDCG (one hit) 1
    assert m.r_precision == 0.0  # the hit lies outside the first |G| = 2


def test_organisers_idcg_runs_to_g_the_rules_idcg_to_the_hits():
    m = score(["x1", "a1", "y1", "b1"], ["a1", "b1", "c1", "d1"])
    # organisers': DCG = 1/log2(3) + 1/log2(5); IDCG over |G| = 4: 1 + 1/log2(3) + 1/log2(4) + 1/log2(5)
    assert m.ndcg == pytest.approx(
        (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 0.5 + 1 / math.log2(5)), abs=1e-15
    )
    # rules: DCG = 1/log2(2) + 1/log2(4) = 1.5; |G ∩ R| = 2 so IDCG = 1 + 1/log2(2) = 2
    assert m.ndcg_rules == 0.75
    assert m.r_precision == 0.5  # 2 track hits in the first 4, fillers give no artist credit: 2 / 4
    assert m.clicks == 0.0


def test_artist_partial_credit_counts_distinct_artists_of_g():
    m = score(["a1", "a3", "a4", "b2", "c1", "x1"], ["a1", "a2", "b1", "c1"])
    # window (first |G| = 4): a1 track hit; misses a3, a4, b2 -> distinct G artists {a, b}
    # (a counts although a1 matched, and only once): (1 + 0.25 * 2) / 4 = 0.375; c1 lies outside
    assert m.r_precision == 0.375
    # hits at 1 and 5; organisers' IDCG over |G| = 4
    assert m.ndcg == pytest.approx((1 + 1 / math.log2(6)) / (1 + 1 / math.log2(3) + 0.5 + 1 / math.log2(5)), abs=1e-15)
    assert m.ndcg_rules == pytest.approx((1 + 1 / math.log2(5)) / 2, abs=1e-15)  # 1.4307 / 2
    assert m.clicks == 0.0


def test_artist_credit_stays_zero_for_other_artists_and_needs_a_miss():
    assert score(["a1", "b1"], ["a1", "b1"]).r_precision == 1.0  # two track hits, no 0.25 on top
    assert score(["x1", "y2"], ["a1", "b1"]).r_precision == 0.0


def test_duplicates_are_not_double_counted():
    m = score(["a1", "a1", "a1", "b1"], ["a1", "b1", "c1"])
    # deduplicated list: a1, b1; window of 3 holds 2 hits: 2 / 3 (counting copies would give 3 / 3)
    assert m.r_precision == pytest.approx(2 / 3, abs=1e-15)
    # hits at 1 and 2 of |G| = 3: organisers' DCG 1 + 1/log2(3) over IDCG 1 + 1/log2(3) + 1/log2(4)
    assert m.ndcg == pytest.approx((1 + 1 / math.log2(3)) / (1.5 + 1 / math.log2(3)), abs=1e-15)
    assert m.ndcg_rules == 1.0  # rules: DCG = 1 + 1/log2(2) = 2 = IDCG for 2 hits
    # copies also do not push later tracks down: 15 x1 then a1 is x1, a1 -> first hit at 2, page 0
    assert score(["x1"] * 15 + ["a1"], ["a1"]).clicks == 0.0


def test_duplicate_keeps_the_artist_of_its_first_occurrence():
    m = playlist_metrics(["x1", "x1", "z1"], ["x", "a", "z"], ["a1", "b1"], ["a", "b"])
    assert m.r_precision == 0.0  # x1 is by "x" (first row); the window x1, z1 gets no credit


def test_fewer_than_500_recommendations():
    m = score(["x1", "a1", "y1"], ["a1"])
    assert (m.r_precision, m.clicks) == (0.0, 0.0)  # window of 1 is x1; hit at 2 is page 0
    assert m.ndcg == pytest.approx(1 / math.log2(3), abs=1e-15)  # hit at 2: DCG 1/log2(3), IDCG (|G| = 1) 1
    assert m.ndcg_rules == 1.0  # DCG 1/log2(2) = 1, IDCG for one hit = 1
    assert score(["x1", "y1"], ["a1"]).clicks == 51.0  # a short list without a hit still scores 51


def test_g_larger_than_the_list_divides_by_g():
    m = score(["a1", "b1"], [f"{c}1" for c in "abcdefghij"])
    assert m.r_precision == 0.2  # 2 hits / |G| = 10, not / |R| = 2
    # hits at 1, 2 of |G| = 10: the organisers' IDCG runs over 10 positions
    assert m.ndcg == pytest.approx((1 + 1 / math.log2(3)) / sum(1 / math.log2(i + 1) for i in range(1, 11)), abs=1e-15)
    assert m.ndcg_rules == 1.0  # rules: DCG = 2 = IDCG for 2 hits
    assert m.clicks == 0.0


def test_organisers_idcg_stops_at_500_positions():
    truth = [f"t{i}" for i in range(600)]
    m = score(truth, truth)
    assert m.ndcg == pytest.approx(1.0, abs=1e-12)  # 500 hits in 500 places: DCG = IDCG over min(600, 500)
    assert m.r_precision == pytest.approx(500 / 600, abs=1e-15)


def test_recommendations_beyond_500_are_ignored():
    assert score(fillers(500) + ["a1"], ["a1"]) == PlaylistMetrics(0.0, 0.0, 51.0, 0.0)
    # the cut comes before deduplication: a1 at 501 stays out although the copy x0 at 500 is dropped
    assert score(fillers(499) + ["x0", "a1"], ["a1"]).clicks == 51.0
    assert score(fillers(10) + ["a1"], ["a1"], max_recommendations=10).clicks == 2.0  # 10 // 10 + 1


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="artist"):
        playlist_metrics(["a1"], [], ["a1"], ["a"])
    with pytest.raises(ValueError, match="empty"):
        playlist_metrics(["a1"], ["a"], [], [])


def frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """pid 1 perfect, pid 2 without recommendations, pid 3 artist credit and a late hit."""
    recs = pd.DataFrame(
        [(3, 2, "e1"), (1, 1, "b1"), (3, 0, "x1"), (1, 0, "a1"), (3, 1, "d2")], columns=["pid", "rank", "track"]
    )  # rows deliberately out of rank order
    truth = pd.DataFrame([(1, "a1"), (1, "b1"), (2, "c1"), (3, "d1"), (3, "e1")], columns=["pid", "track"])
    categories = pd.DataFrame({"pid": [1, 2, 3], "category": [1, 1, 2]})
    return recs.assign(artist=recs.track.str[0]), truth.assign(artist=truth.track.str[0]), categories


P3_NDCG = 0.5 / (1 + 1 / math.log2(3))  # pid 3: x1, d2, e1 -> hit at 3: DCG 1/log2(4); IDCG over |G| = 2
P3_NDCG_RULES = 1 / math.log2(3)  # rules: DCG 1/log2(3) = 0.6309, IDCG for one hit = 1


def test_per_playlist_scores_one_row_per_truth_pid():
    recs, truth, _ = frames()
    scores = per_playlist_scores(recs, truth)
    assert list(scores.columns) == ["pid", "r_precision", "ndcg", "clicks", "ndcg_rules"]
    assert scores.pid.tolist() == [1, 2, 3]
    assert scores.r_precision.tolist() == [1.0, 0.0, 0.125]  # pid 3: window x1, d2 -> 0.25 for d / 2
    assert scores.ndcg.tolist() == pytest.approx([1.0, 0.0, P3_NDCG], abs=1e-15)
    assert scores.ndcg_rules.tolist() == pytest.approx([1.0, 0.0, P3_NDCG_RULES], abs=1e-15)
    assert scores.clicks.tolist() == [0.0, 51.0, 0.0]  # pid 2 has no recommendations at all


def test_score_recommendations_overall_and_by_category():
    recs, truth, categories = frames()
    result = score_recommendations(recs, truth, categories)
    assert result["num_playlists"] == 3
    assert result["overall"] == pytest.approx(
        {
            "r_precision": (1 + 0 + 0.125) / 3,
            "ndcg": (1 + 0 + P3_NDCG) / 3,
            "clicks": (0 + 51 + 0) / 3,
            "ndcg_rules": (1 + 0 + P3_NDCG_RULES) / 3,
        },
        abs=1e-15,
    )
    assert list(result["by_category"]) == ["1", "2"]
    assert result["by_category"]["1"] == {
        "r_precision": 0.5,
        "ndcg": 0.5,
        "clicks": 25.5,
        "ndcg_rules": 0.5,
        "num_playlists": 2,
    }
    assert result["by_category"]["2"] == pytest.approx(
        {"r_precision": 0.125, "ndcg": P3_NDCG, "clicks": 0.0, "ndcg_rules": P3_NDCG_RULES, "num_playlists": 1},
        abs=1e-15,
    )
    assert all(type(v) is float for v in result["overall"].values())
    assert "by_category" not in score_recommendations(recs, truth)


def test_unknown_pids_in_recs_raise_naming_five():
    recs, truth, _ = frames()
    extra = pd.DataFrame({"pid": range(10, 17), "rank": 0, "track": "a1", "artist": "a"})
    with pytest.raises(ValueError, match=r"7 pid\(s\) not in truth, e\.g\. \[10, 11, 12, 13, 14\]"):
        score_recommendations(pd.concat([recs, extra]), truth)


def test_truth_pid_without_category_raises():
    recs, truth, categories = frames()
    with pytest.raises(ValueError, match=r"no category, e\.g\. \[3\]"):
        score_recommendations(recs, truth, categories[categories.pid != 3])


def test_ndcg_agrees_with_a_plain_reading_of_the_organisers_module():
    """Random lists against the metrics module's definition read literally: truncate to k, dedup,
    DCG = sum rel_i / log2(i + 1), IDCG = the DCG of G itself over min(k, |G|) positions."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        truth = [f"a{i}" for i in rng.choice(60, size=rng.integers(1, 40), replace=False)]
        recs = [f"a{i}" for i in rng.integers(0, 80, size=rng.integers(0, 120))]
        k = int(rng.choice([10, 50, 500]))
        unique = list(dict.fromkeys(recs[:k]))
        dcg = sum(float(r in set(truth)) / math.log2(1 + i) for i, r in enumerate(unique, start=1))
        idcg = sum(1 / math.log2(1 + i) for i in range(1, min(k, len(set(truth))) + 1))
        assert score(recs, truth, max_recommendations=k).ndcg == pytest.approx(dcg / idcg, abs=1e-12)
