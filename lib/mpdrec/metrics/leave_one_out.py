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


def balanced(positives: np.ndarray, negatives: np.ndarray) -> dict[str, float]:
    """The NNCF study's balanced test: each evaluated playlist's held-out track (a positive) and its first
    sampled negative. Accuracy and the confusion matrix at probability 0.5 (logit 0); ROC AUC over every
    positive-negative pair (ties count a half). A model trained on 1:k negatives leans to "no" at 0.5,
    which the confusion matrix shows and the AUC does not depend on."""
    pos, neg = np.asarray(positives, np.float64), np.asarray(negatives, np.float64)
    tp, tn = int(np.sum(pos >= 0)), int(np.sum(neg < 0))
    values, inverse, counts = np.unique(np.concatenate([pos, neg]), return_inverse=True, return_counts=True)
    mid_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based average ranks of tied values
    pos_ranks = mid_rank[inverse[: len(pos)]].sum()
    pairs = len(pos) * len(neg)
    auc = (pos_ranks - len(pos) * (len(pos) + 1) / 2.0) / pairs if pairs else float("nan")
    return {
        "accuracy": (tp + tn) / max(len(pos) + len(neg), 1),
        "roc_auc": float(auc),
        "true_positive": tp,
        "false_negative": len(pos) - tp,
        "true_negative": tn,
        "false_positive": len(neg) - tn,
        "pairs": len(pos),
    }
