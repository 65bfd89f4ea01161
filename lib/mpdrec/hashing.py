"""Counter-based randomness: a value is a pure function of its key, so results do not depend on how
work is split across processes or partitions (the generator and negative sampling rely on it)."""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """Vectorised SplitMix64 finaliser: well-mixed 64-bit outputs for any 64-bit inputs."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash_keys(*keys: np.ndarray | int) -> np.ndarray:
    """One 64-bit hash per row of several integer key columns (broadcast like numpy)."""
    h = np.zeros(np.broadcast(*[np.asarray(k) for k in keys]).shape, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in keys:
            h = splitmix64(h ^ np.asarray(k).astype(np.uint64))
    return h


def uniform(*keys: np.ndarray | int) -> np.ndarray:
    """Uniform floats in [0, 1) from integer keys (53 high bits of the hash)."""
    return (hash_keys(*keys) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
