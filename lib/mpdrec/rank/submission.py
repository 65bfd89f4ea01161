"""The challenge submission file: writing it atomically, validating it fully, reading it back.

The format is the one the Spotify Million Playlist Dataset Challenge (the continuation of the
RecSys Challenge 2018) states and its `verify_submission.py` checks:

* comma-separated text; whitespace around a comma is allowed and ignored;
* a line whose first non-blank character is `#` is a comment; blank lines are ignored;
* the first other line is `team_info,<team name>,<contact email>`. The 2018 edition had a fourth
  field, `main` or `creative` (its two tracks); the continuing challenge has one track and dropped
  that field, so a header with four fields is a violation here;
* then one line `pid,uri_1,...,uri_500` per challenge playlist: every challenge pid exactly once,
  exactly 500 distinct track URIs, none of them one of that playlist's seed tracks.

A path ending in `.gz` is read and written gzip-compressed, because the challenge takes a
`.csv.gz` upload. The validator is stricter than the official script in two ways that cost a
valid file nothing: a URI must be `spotify:track:` plus 22 base-62 characters (the official check
only counts the 22), and a repeated pid is reported (the official one only compares counts).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import uuid
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

_URI = r"spotify:track:[0-9A-Za-z]{22}"
TRACK_URI_RE: re.Pattern[str] = re.compile(rf"^{_URI}$")
"""A well-formed track URI; use `fullmatch` (a bare `$` would also accept a trailing newline)."""

RECOMMENDATIONS_PER_PLAYLIST = 500

# A whole run of well-formed URIs with no whitespace: one C-level match per line instead of 500
# Python-level ones; only a line that fails it is looked at URI by URI.
_URI_LIST_RE = re.compile(rf"{_URI}(?:,{_URI})*")
_PID_RE = re.compile(r"-?[0-9]+")
_HEADER = "team_info"
_HEADER_FIELDS = 3
_NO_HEADER = "missing team_info header: the first non-comment line must be team_info,<team name>,<contact email>"
_LISTED = 20  # violations named in an InvalidSubmission's message
_EXAMPLES = 3  # offending URIs quoted in one violation


@dataclass(frozen=True)
class Violation:
    """One broken rule, located so it can be fixed without searching a 190 MB file.

    `line` is 1-based (None for a playlist that is missing, which has no line); `pid` is None
    where the line has no usable pid (the header, a non-integer pid).
    """

    line: int | None
    pid: int | None
    message: str

    def __str__(self) -> str:
        where = ([f"line {self.line}"] if self.line is not None else []) + (
            [f"pid {self.pid}"] if self.pid is not None else []
        )
        return f"{', '.join(where)}: {self.message}" if where else self.message


class InvalidSubmission(ValueError):
    """Raised by check_submission; .violations holds all of them; str() lists the first 20 and the total."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations: list[Violation] = list(violations)
        listed = "".join(f"\n  {v}" for v in self.violations[:_LISTED])
        more = len(self.violations) - _LISTED
        super().__init__(
            f"invalid submission: {len(self.violations)} violation(s){listed}"
            + (f"\n  ... and {more} more" if more > 0 else "")
        )


def format_submission(team: str, email: str, rows: Iterable[tuple[int, Sequence[str]]]) -> Iterator[str]:
    """Yield the lines (with trailing newline) of a submission: header then `pid,uri...` per row in the given order.

    Raises ValueError if team or email contains a comma or newline, and also if either is empty
    or has surrounding whitespace: the file would be rejected, or would not read back as written
    (readers strip the whitespace around fields). It raises when called, not on the first line
    pulled, so write_submission fails before it creates any file.
    """
    for what, value in (("team name", team), ("contact email", email)):
        if any(c in value for c in ",\r\n"):
            raise ValueError(f"{what} {value!r} must not contain a comma or a line break")
        if not value or value != value.strip():
            raise ValueError(f"{what} {value!r} must be non-empty, without surrounding whitespace")
    return _lines(team, email, rows)


def _lines(team: str, email: str, rows: Iterable[tuple[int, Sequence[str]]]) -> Iterator[str]:
    yield f"{_HEADER},{team},{email}\n"
    for pid, uris in rows:
        yield f"{pid},{','.join(uris)}\n"


def write_submission(
    path: str | os.PathLike[str], team: str, email: str, rows: Iterable[tuple[int, Sequence[str]]]
) -> None:
    """Atomic: writes to a temp file beside `path` then os.replace (a partial file is never visible).

    So a crash or a failing `rows` iterator never leaves a truncated submission that could be
    uploaded by mistake; the temp file is removed on failure. Gzip-compressed if `path` ends in .gz.
    """
    lines = format_submission(team, email, rows)
    target = os.fspath(path)
    tmp = os.path.join(os.path.dirname(os.path.abspath(target)), f".{os.path.basename(target)}.{uuid.uuid4().hex}.tmp")
    # os.open rather than mkstemp: mode 0o666 lets the umask decide, as for any other output.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as raw:
            if target.endswith(".gz"):
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped:
                    _write_utf8(zipped, lines)
            else:
                _write_utf8(raw, lines)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _write_utf8(sink: io.BufferedIOBase, lines: Iterable[str]) -> None:
    sink.writelines(line.encode("utf-8") for line in lines)


def _open_text(path: str | os.PathLike[str]) -> IO[str]:
    """Read handle; gzip when the name ends in .gz; newline='' keeps line numbering physical."""
    if os.fspath(path).endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _content(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped line) of every line that is neither blank nor a comment."""
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield lineno, line


def _header_problems(line: str) -> list[str]:
    fields = [f.strip() for f in line.split(",")]
    if len(fields) != _HEADER_FIELDS:
        return [f"team_info has {len(fields)} fields, expected {_HEADER_FIELDS}: team_info,<team name>,<contact email>"]
    return ([] if fields[1] else ["team_info: empty team name"]) + (
        [] if fields[2] else ["team_info: empty contact email"]
    )


def _duplicate_header(first: int) -> str:
    return f"duplicate team_info header (the first is at line {first})"


def _pid(text: str) -> int | None:
    """The pid, or None unless the field is a plain (optionally negative) decimal integer."""
    text = text.strip()
    return int(text) if _PID_RE.fullmatch(text) else None


def _not_integer(text: str) -> str:
    return f"pid {text.strip()!r} is not an integer"


def _split_uris(rest: str | None) -> tuple[list[str], list[tuple[int, str]]]:
    """The URIs after the pid (None: the line has no comma, so no URIs) and the malformed ones
    with their 1-based positions. Whitespace around a URI is stripped, as the format allows."""
    if rest is None:
        return [], []
    if _URI_LIST_RE.fullmatch(rest):
        return rest.split(","), []
    uris = [u.strip() for u in rest.split(",")]
    return uris, [(i, u) for i, u in enumerate(uris, 1) if not TRACK_URI_RE.fullmatch(u)]


def _examples(items: Iterable[str]) -> str:
    listed = list(items)
    shown = ", ".join(listed[:_EXAMPLES])
    return shown + (", ..." if len(listed) > _EXAMPLES else "")


def _row_violations(
    lineno: int, pid: int, rest: str | None, seeds: Mapping[int, Collection[str]], expected: int
) -> Iterator[Violation]:
    """One violation per rule the row breaks (not one per URI: a bad row stays one screenful)."""
    uris, malformed = _split_uris(rest)
    if pid not in seeds:
        yield Violation(lineno, pid, "pid is not in the challenge set")
    if len(uris) != expected:
        yield Violation(lineno, pid, f"{len(uris)} tracks, expected {expected}")
    distinct = set(uris)
    if len(distinct) != len(uris):
        repeated = (u for u, n in Counter(uris).items() if n > 1)
        yield Violation(lineno, pid, f"{len(uris) - len(distinct)} duplicate track URI(s): {_examples(repeated)}")
    recommended = distinct.intersection(seeds.get(pid, ()))
    if recommended:
        yield Violation(lineno, pid, f"{len(recommended)} seed track(s) recommended: {_examples(sorted(recommended))}")
    if malformed:
        yield Violation(
            lineno,
            pid,
            f"{len(malformed)} malformed track URI(s) (expected spotify:track: "
            f"and 22 characters 0-9A-Za-z): "
            f"{_examples(f'#{i} {u!r}' for i, u in malformed)}",
        )


def validate_lines(
    lines: Iterable[str], seeds: Mapping[int, Collection[str]], expected: int = RECOMMENDATIONS_PER_PLAYLIST
) -> list[Violation]:
    """`seeds` maps every challenge pid to its seed track URIs (possibly empty). Streams: must not hold all lines.

    Returns every violation, in line order (missing pids last, by pid), so one run lists all
    that must be fixed. Memory is one line plus a pid -> line map. A repeated pid is reported on
    its second (and later) lines, naming the first; a line after the header that cannot be read
    as a playlist (non-integer pid) is reported and otherwise skipped. A missing header is
    reported on the first non-comment line, a late one on its own line.
    """
    violations: list[Violation] = []
    first_line: int | None = None
    header_line: int | None = None
    seen: dict[int, int] = {}
    for lineno, line in _content(lines):
        if first_line is None:
            first_line = lineno
        head, sep, rest = line.partition(",")
        if head.strip() == _HEADER:
            if header_line is not None:
                violations.append(Violation(lineno, None, _duplicate_header(header_line)))
                continue
            header_line = lineno
            if lineno != first_line:
                late = f"team_info header must be the first non-comment line; line {first_line} comes before it"
                violations.append(Violation(lineno, None, late))
            violations.extend(Violation(lineno, None, p) for p in _header_problems(line))
            continue
        pid = _pid(head)
        if pid is None:
            violations.append(Violation(lineno, None, _not_integer(head)))
            continue
        if pid in seen:
            violations.append(Violation(lineno, pid, f"duplicate pid (first at line {seen[pid]})"))
        else:
            seen[pid] = lineno
        violations.extend(_row_violations(lineno, pid, rest if sep else None, seeds, expected))
    if header_line is None:
        violations.insert(0, Violation(first_line, None, _NO_HEADER))
    violations.extend(
        Violation(None, pid, "missing: no line for this challenge playlist")
        for pid in sorted(seeds.keys() - seen.keys())
    )
    return violations


def validate_submission(
    path: str | os.PathLike[str], seeds: Mapping[int, Collection[str]], expected: int = RECOMMENDATIONS_PER_PLAYLIST
) -> list[Violation]:
    """validate_lines over a submission file (gzip if it ends in .gz), read line by line."""
    with _open_text(path) as f:
        return validate_lines(f, seeds, expected)


def check_submission(
    path: str | os.PathLike[str], seeds: Mapping[int, Collection[str]], expected: int = RECOMMENDATIONS_PER_PLAYLIST
) -> None:
    """Raise InvalidSubmission when validate_submission finds anything.

    The guard before an upload or a scoring run: a rejected upload wastes a submission.
    """
    violations = validate_submission(path, seeds, expected)
    if violations:
        raise InvalidSubmission(violations)
