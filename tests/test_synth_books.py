"""The Book-Crossing generator writes the real file's format and quirks, deterministically."""

from __future__ import annotations

import csv
import io

from conftest import make_config
from mpdrec.synth.books import FILE_NAME, HEADER, generate_books


def _cfg(out, **over):
    sets = {"users": 300, "books": 500, "ratings": 5000, "bad_rows": 6, "out_dir": str(out), **over}
    return make_config([f"synth_books.{k}={v}" for k, v in sets.items()]).synth_books


def test_format_quirks_and_distribution(tmp_path):
    m = generate_books(_cfg(tmp_path))
    raw = (tmp_path / FILE_NAME).read_bytes()
    text = raw.decode("latin-1")
    assert text.startswith(HEADER + "\r\n") and text.count("\r\n") == m["rows"] + 1
    assert any(b > 127 for b in raw)  # Latin-1 bytes, not UTF-8: decoding as UTF-8 fails
    try:
        raw.decode("utf-8")
        raise AssertionError("the file decodes as UTF-8; the real one is Latin-1")
    except UnicodeDecodeError:
        pass
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))[1:]
    good = [r for r in rows if len(r) == 3 and r[0] and r[2].isdigit()]
    assert len(rows) - len(good) == 6 == m["bad_rows"]
    ratings = [int(r[2]) for r in good]
    assert set(ratings) <= set(range(11)) and 0.55 < ratings.count(0) / len(ratings) < 0.69
    explicit = [r for r in ratings if r]
    assert max(set(explicit), key=explicit.count) in (7, 8) and min(explicit) >= 1
    isbns = {r[1] for r in good}
    assert any(i.endswith("X") for i in isbns) and any(not i[:-1].isdigit() for i in isbns)
    assert len({(r[0], r[1]) for r in good}) == len(good)  # one rating per (user, book), as in the real file


def test_same_seed_same_bytes_and_skip(tmp_path):
    generate_books(_cfg(tmp_path / "a"))
    generate_books(_cfg(tmp_path / "b"))
    assert (tmp_path / "a" / FILE_NAME).read_bytes() == (tmp_path / "b" / FILE_NAME).read_bytes()
    assert generate_books(_cfg(tmp_path / "a"))["skipped"]
    generate_books(_cfg(tmp_path / "c", seed=3))
    assert (tmp_path / "c" / FILE_NAME).read_bytes() != (tmp_path / "a" / FILE_NAME).read_bytes()
