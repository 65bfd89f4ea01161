"""Synthetic Spotify daily top-200 charts, in the format of the public chart exports:
`Position,Track Name,Artist,Streams,URL,Date,Region`, UTF-8, one `<region>.csv` per region with every day.

How the charts arise: each song has an artist, a release day, a base popularity (long-tailed) and a
taste vector; each country has a size (streams scale) and a taste vector, and countries come in a
few regional groups that share taste, so that country vectors have structure to recover. A day's
chart in a country is its 200 released songs with the highest popularity x taste affinity x
freshness (plus noise); streams fall with position and scale with the country. The `global` region
charts the countries' summed streams, as the real exports do. Quirks of the real files: titles with
commas and quotes (so CSV quoting), non-ASCII titles and artists, a few rows without title and
artist, and `bad_rows` malformed lines (a field missing, streams that are not a number).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import numpy as np

from mpdrec.config import SynthChartsConfig, stable_digest
from mpdrec.io.paths import local_path
from mpdrec.io.stage import fingerprint
from mpdrec.synth.generate import publish_generated

HEADER = ["Position", "Track Name", "Artist", "Streams", "URL", "Date", "Region"]
CHART = 200
COUNTRIES = (
    "us",
    "gb",
    "ca",
    "au",
    "ie",
    "nz",
    "de",
    "at",
    "ch",
    "nl",
    "be",
    "fr",
    "es",
    "it",
    "pt",
    "se",
    "no",
    "dk",
    "fi",
    "is",
    "pl",
    "cz",
    "sk",
    "hu",
    "ee",
    "lv",
    "lt",
    "gr",
    "tr",
    "br",
    "ar",
    "mx",
    "cl",
    "co",
    "pe",
    "ec",
    "uy",
    "py",
    "bo",
    "cr",
    "gt",
    "hn",
    "sv",
    "pa",
    "do",
    "jp",
    "tw",
    "hk",
    "sg",
    "my",
    "ph",
    "id",
    "lu",
    "ro",
    "bg",
    "il",
    "za",
    "in",
    "th",
    "vn",
)
WORDS = (
    "love",
    "night",
    "baby",
    "summer",
    "fire",
    "dance",
    "heart",
    "rain",
    "gold",
    "wild",
    "home",
    "dreams",
    "corazón",
    "noche",
    "canción",
    "été",
    "fuego",
    "amor",
    "sommar",
    "herz",
    "tokyo",
    "東京",
    "夜",
    "blue",
    "young",
    "run",
    "light",
    "say",
    "you",
    "me",
    "feel",
    "good",
    "time",
    "world",
    "money",
    "girls",
)
NAMES = ("Lana", "Kygo", "Björk", "Sebastián", "Ana", "Mø", "Zoë", "Kenji", "Luis", "Elif", "Ola", "Max")
GROUPS = 5  # regional groups of countries sharing taste
LATENT = 6


def _title(rng: np.random.Generator) -> str:
    words = [WORDS[i] for i in rng.integers(0, len(WORDS), int(rng.integers(1, 5)))]
    title = " ".join(words).title()
    kind = rng.random()
    if kind < 0.08:
        title += f" (feat. {NAMES[int(rng.integers(len(NAMES)))]})"
    elif kind < 0.12:
        title = f"{title}, Pt. {int(rng.integers(2, 4))}"
    elif kind < 0.14:
        title = f'"{title}"'
    return title


def _song_id(rng: np.random.Generator) -> str:
    alphabet = np.array(list("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    return "".join(rng.choice(alphabet, 22))


def generate_charts(cfg: SynthChartsConfig, force: bool = False) -> dict[str, Any]:
    """Write `<out_dir>/<region>.csv` for every region (+ `_manifest.json`); skipped when its config and the
    code wrote them."""
    fp = fingerprint([], stable_digest({k: v for k, v in vars(cfg).items() if k != "out_dir"}))
    return publish_generated(
        cfg.out_dir, "synth_charts.out_dir", fp, lambda staging: _write_charts(cfg, local_path(staging)), force=force
    )


def _write_charts(cfg: SynthChartsConfig, out: Path) -> dict[str, Any]:
    started = time.time()
    rng = np.random.default_rng(cfg.seed)
    countries = list(COUNTRIES[: cfg.countries])
    group_taste = rng.normal(0, 1.0, (GROUPS, LATENT))
    taste = group_taste[rng.integers(0, GROUPS, len(countries))] + rng.normal(0, 0.4, (len(countries), LATENT))
    size = np.exp(rng.normal(0, 1.0, len(countries))) * 1e5
    artist_taste = rng.normal(0, 0.7, (cfg.artists, LATENT))
    artist = rng.integers(0, cfg.artists, cfg.songs)
    song_taste = artist_taste[artist] + rng.normal(0, 0.5, (cfg.songs, LATENT))
    popularity = rng.normal(0, 1.0, cfg.songs)
    released = rng.integers(-90, cfg.days, cfg.songs)
    titles = [_title(rng) for _ in range(cfg.songs)]
    artists = [f"{NAMES[a % len(NAMES)]} {WORDS[(a * 7) % len(WORDS)].title()} {a}" for a in range(cfg.artists)]
    urls = [f"https://open.spotify.com/track/{_song_id(rng)}" for _ in range(cfg.songs)]
    affinity = taste @ song_taste.T / np.sqrt(LATENT)  # countries x songs
    rows: dict[str, list[list[Any]]] = {c: [] for c in [*countries, "global"]}
    for day in range(cfg.days):
        date = np.datetime64("2017-01-01") + np.timedelta64(day, "D")
        age = day - released
        fresh = np.where(age >= 0, -age / 45.0, -np.inf)
        day_streams = np.zeros(cfg.songs)
        for c, country in enumerate(countries):
            score = popularity + affinity[c] + fresh + rng.normal(0, 0.3, cfg.songs)
            top = np.argsort(-score, kind="stable")[:CHART]
            streams = np.rint(size[c] / np.arange(1, CHART + 1) ** 0.8 * np.exp(rng.normal(0, 0.05, CHART)))
            day_streams[top] += streams
            rows[country] += [
                [p + 1, titles[s], artists[artist[s]], int(n), urls[s], str(date), country]
                for p, (s, n) in enumerate(zip(top, streams))
            ]
        top = np.argsort(-day_streams, kind="stable")[:CHART]
        rows["global"] += [
            [p + 1, titles[s], artists[artist[s]], int(day_streams[s]), urls[s], str(date), "global"]
            for p, s in enumerate(top)
        ]
    every = [(region, i) for region in rows for i in range(len(rows[region]))]
    for k in rng.choice(len(every), size=max(1, len(every) // 5000), replace=False):
        region, i = every[k]
        rows[region][i][1] = rows[region][i][2] = ""  # the real exports have a few rows without names
    bad: Any = rng.choice(len(every), size=cfg.bad_rows, replace=False) if cfg.bad_rows else []
    broken = {every[k] for k in bad}
    for region, region_rows in rows.items():
        with open(out / f"{region}.csv", "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(HEADER)
            for i, row in enumerate(region_rows):
                if (region, i) in broken:
                    row = row[:3] + ["n/a"] + row[4:] if i % 2 else row[:4] + row[5:]
                w.writerow(row)
    return {
        "regions": len(rows),
        "rows": sum(len(r) for r in rows.values()),
        "bad_rows": cfg.bad_rows,
        "songs_charted": len({r[4] for rs in rows.values() for r in rs}),
        "seconds": round(time.time() - started, 3),
    }
