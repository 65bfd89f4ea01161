"""The NCF paper's evaluation protocol, apart from any model (as in the paper's own code): each
evaluated playlist's held-out track is ranked among its sampled negatives; HR@10, NDCG@10, and AUC.
NCF is scored by it in training and ALS after its grid, on the same candidates, so the two compare
like for like.

Ties are broken uniformly at random *in expectation*: the held-out track's rank is equally likely to
be anywhere among the candidates with its score. A model that scores everything alike (or popularity
with its many equal counts) then gets exactly what a random order would, neither the optimistic nor
the pessimistic extreme.
"""
from __future__ import annotations

import numpy as np

K = 10
METRICS = ("hr@10", "ndcg@10", "auc")


def metric_sums(scores: np.ndarray, k: int = K) -> np.ndarray:
    """[sum HR@k, sum NDCG@k, sum AUC, rows] over rows of `scores` (n, 1 + m), column 0 the held-out
    track's score. Sums, so that ranks can add theirs before dividing."""
    scores = np.where(np.isfinite(scores), scores, -np.inf)  # a NaN must not rank first
    pos, neg = scores[:, :1], scores[:, 1:]
    higher = (neg > pos).sum(axis=1)
    ties = (neg == pos).sum(axis=1)
    # the held-out track's rank r (0-based) is uniform over higher .. higher + ties
    gain = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2.0))])  # gain[j] = sum over r < j
    lo, hi = np.minimum(higher, k), np.minimum(higher + ties + 1, k)
    hr = (hi - lo) / (ties + 1)
    ndcg = (gain[hi] - gain[lo]) / (ties + 1)
    auc = ((neg < pos).sum(axis=1) + 0.5 * ties) / neg.shape[1]
    return np.array([hr.sum(), ndcg.sum(), auc.sum(), float(len(scores))])


def summarize(sums: np.ndarray) -> dict[str, float]:
    """Mean metrics from (possibly rank-summed) `metric_sums`."""
    n = max(float(sums[3]), 1.0)
    return {name: float(sums[i]) / n for i, name in enumerate(METRICS)}
