"""A synthetic `BX-Book-Ratings.csv` in the Book-Crossing file's own format, for tests and benchmarks.

The format, as the real file has it: Latin-1 bytes, every field quoted, `;` between fields, a header
`"User-ID";"ISBN";"Book-Rating"`, CRLF line ends, ratings 0..10 where 0 means an implicit interaction,
and ISBNs that are not all ten digits (an `X` check digit, ISBN-13s, lower-case letters, stray
Latin-1 characters). The distributions follow the real file: a few raters and books account for most
rows (long-tailed activity and popularity), about 62% of rows are zeros, and explicit ratings lean
high (mode 8). Explicit ratings come from latent user and book factors plus biases and noise, so a
model has something to learn; how much is this generator's choice, not a fact about the real data.

`bad_rows` malformed lines of the kinds a real export has (a missing field, a rating that is not a
number, an empty user) are mixed in at seeded places, for the bad-row path.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from mpdrec.config import SynthBooksConfig, stable_digest
from mpdrec.io.paths import local_path
from mpdrec.io.stage import fingerprint
from mpdrec.synth.generate import publish_generated

FILE_NAME = "BX-Book-Ratings.csv"
HEADER = '"User-ID";"ISBN";"Book-Rating"'
LATENT = 4  # latent dimensions of the rating model
ODD_ISBN_SHARE = 0.01  # ISBNs with letters or stray characters, as the real file has


def _isbn10(body: np.ndarray) -> list[str]:
    """Ten-character ISBNs: nine digits and the check digit (`X` for 10)."""
    digits = np.stack([(body // 10 ** (8 - k)) % 10 for k in range(9)], axis=1)
    check = (11 - (digits * np.arange(10, 1, -1)).sum(axis=1) % 11) % 11
    return [f"{b:09d}" + ("X" if c == 10 else str(c)) for b, c in zip(body, check)]


def _isbns(rng: np.random.Generator, n: int) -> list[str]:
    """`n` distinct ISBN strings, about 1% of them in the real file's odd forms."""
    out = _isbn10(rng.choice(10**9, size=n, replace=False))
    odd = np.flatnonzero(rng.random(n) < ODD_ISBN_SHARE)
    forms = ("978{}", "{}x", "{}\u00e9", "{}\\", "B00{}")
    for j, i in enumerate(odd):
        form = forms[j % len(forms)]
        base = out[i][:-1] if form == "{}x" else out[i]
        out[i] = form.format(base)
    return out  # distinct: every odd form keeps its distinct nine-digit body


def _ratings(rng: np.random.Generator, cfg: SynthBooksConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, book, rating) rows: distinct pairs, long-tailed activity and popularity."""
    activity = rng.lognormal(0.0, 1.6, cfg.users)
    popularity = 1.0 / np.arange(1, cfg.books + 1) ** 0.75
    rng.shuffle(popularity)
    want = min(cfg.ratings, cfg.users * cfg.books)
    users = rng.choice(cfg.users, size=2 * want, p=activity / activity.sum())
    books = rng.choice(cfg.books, size=2 * want, p=popularity / popularity.sum())
    _, first = np.unique(users.astype(np.int64) * cfg.books + books, return_index=True)
    keep = np.sort(first)[:want]
    users, books = users[keep], books[keep]
    u_vec, b_vec = rng.normal(0, 0.6, (cfg.users, LATENT)), rng.normal(0, 0.6, (cfg.books, LATENT))
    score = (
        7.6
        + rng.normal(0, 0.8, cfg.users)[users]
        + rng.normal(0, 0.8, cfg.books)[books]
        + (u_vec[users] * b_vec[books]).sum(axis=1)
        + rng.normal(0, 1.0, len(users))
    )
    explicit = np.clip(np.rint(score), 1, 10).astype(np.int64)
    # exactly zero_share of the rows are zeros, drawn by a per-user propensity: the real file has
    # users who leave no rating at all and users who rate everything
    propensity = rng.beta(0.6, 0.6, cfg.users)[users] + 1e-6
    zeros = rng.choice(
        len(users), size=round(cfg.zero_share * len(users)), replace=False, p=propensity / propensity.sum()
    )
    explicit[zeros] = 0
    return users, books, explicit


def _bad_lines(rng: np.random.Generator, n: int, isbns: list[str]) -> list[str]:
    kinds = ('"{u}";"{i}"', '"{u}";"{i}";"n/a"', '"";"{i}";"{r}"', '"{u}";"{i}";"{r}";"{r}"')
    return [
        kinds[k % len(kinds)].format(
            u=int(rng.integers(1, 10**5)), i=isbns[int(rng.integers(len(isbns)))], r=int(rng.integers(1, 11))
        )
        for k in range(n)
    ]


def generate_books(cfg: SynthBooksConfig, force: bool = False) -> dict[str, Any]:
    """Write `<out_dir>/BX-Book-Ratings.csv` (+ `_manifest.json`); skipped when its config and the code wrote it."""
    fp = fingerprint([], stable_digest({k: v for k, v in vars(cfg).items() if k != "out_dir"}))
    return publish_generated(
        cfg.out_dir, "synth_books.out_dir", fp, lambda staging: _write_books(cfg, local_path(staging)), force=force
    )


def _write_books(cfg: SynthBooksConfig, out: Path) -> dict[str, Any]:
    started = time.time()
    rng = np.random.default_rng(cfg.seed)
    users, books, rating = _ratings(rng, cfg)
    isbns = _isbns(rng, cfg.books)
    user_ids = rng.choice(np.arange(1, 3 * cfg.users + 1), size=cfg.users, replace=False)
    lines = [f'"{user_ids[u]}";"{isbns[b]}";"{r}"' for u, b, r in zip(users, books, rating)]
    for at, line in zip(np.sort(rng.choice(len(lines) + 1, size=cfg.bad_rows)), _bad_lines(rng, cfg.bad_rows, isbns)):
        lines.insert(int(at), line)
    with open(out / FILE_NAME, "w", encoding="latin-1", newline="") as f:
        f.write(HEADER + "\r\n")
        f.write("\r\n".join(lines) + "\r\n")
    return {
        "file": FILE_NAME,
        "rows": len(lines),
        "bad_rows": cfg.bad_rows,
        "zeros": int((rating == 0).sum()),
        "users": int(len(np.unique(users))),
        "books": int(len(np.unique(books))),
        "seconds": round(time.time() - started, 3),
    }
