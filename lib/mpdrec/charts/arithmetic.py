"""Country arithmetic: songs recommended for a combination of country vectors from IMF's factors.

An expression is country codes joined by `*` (element-wise product, binding first), `+` and `-`:
"se * no - us" is (se x no) - us. Its vector scores every song by the dot product with the song
factors; the top songs are listed with title and artist.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from mpdrec.charts.imf import Factors
from mpdrec.charts.matrix import ChartsData
from mpdrec.errors import InputError

_TOKEN = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*|[*+-])")


def vector(expression: str, factors: Factors, countries: list[str]) -> np.ndarray:
    """The expression's country vector (raises InputError naming an unknown country or bad syntax)."""
    tokens, at = [], 0
    while at < len(expression.rstrip()):
        m = _TOKEN.match(expression, at)
        if not m:
            raise InputError(f"charts.arithmetic: cannot read {expression!r} at {expression[at:]!r}")
        tokens.append(m.group(1))
        at = m.end()
    if (
        not tokens
        or len(tokens) % 2 == 0
        or any(t in "*+-" for t in tokens[::2])
        or any(t not in "*+-" for t in tokens[1::2])
    ):
        raise InputError(f"charts.arithmetic: {expression!r} is not countries joined by *, + and -")
    index = {c: i for i, c in enumerate(countries)}
    unknown = [t for t in tokens[::2] if t not in index]
    if unknown:
        raise InputError(
            f"charts.arithmetic: {unknown} in {expression!r} are not countries of the table "
            f"(known: {', '.join(countries)})"
        )
    total, term, sign = np.zeros(factors.countries.shape[1]), factors.countries[index[tokens[0]]].copy(), 1.0
    for op, name in zip(tokens[1::2], tokens[2::2]):
        if op == "*":
            term = term * factors.countries[index[name]]
        else:
            total, term, sign = total + sign * term, factors.countries[index[name]].copy(), 1.0 if op == "+" else -1.0
    return total + sign * term


def recommend(expression: str, factors: Factors, data: ChartsData, top: int) -> dict[str, Any]:
    scores = factors.songs @ vector(expression, factors, data.countries)
    best = np.argsort(-scores, kind="stable")[:top]
    return {
        "expression": expression,
        "songs": [
            {"song": data.songs[j], "title": data.titles[j], "artist": data.artists[j], "score": float(scores[j])}
            for j in best
        ],
    }
