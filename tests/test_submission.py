"""The challenge submission: every format rule is caught, located and reported, valid files round-trip."""

from __future__ import annotations

import gzip
import os
import string
from collections.abc import Sequence
from pathlib import Path

import pytest

from mpdrec.rank.submission import (
    RECOMMENDATIONS_PER_PLAYLIST,
    TRACK_URI_RE,
    InvalidSubmission,
    Violation,
    check_submission,
    format_submission,
    validate_lines,
    validate_submission,
    write_submission,
)

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
HEADER = "team_info,Team,team@example.com"
K = 5  # recommendations per playlist in the small files


def uri(n: int) -> str:
    """A well-formed track URI: n in base 62, zero-padded to 22 characters."""
    digits = ""
    while n:
        n, r = divmod(n, 62)
        digits = BASE62[r] + digits
    return "spotify:track:" + digits.rjust(22, "0")


# Seeds are uri(1..3); recommendations are uri(pid * 1000 + i), so they never collide.
SEEDS: dict[int, list[str]] = {1000: [uri(1), uri(2)], 1001: [], 1002: [uri(3)]}


def recs(pid: int, k: int = K) -> list[str]:
    return [uri(pid * 1000 + i) for i in range(k)]


def row(pid: int | str, uris: Sequence[str]) -> str:
    return ",".join([str(pid), *uris])


def good_lines(k: int = K) -> list[str]:
    """Header on line 1, then pids 1000, 1001, 1002 on lines 2, 3, 4."""
    return [HEADER] + [row(pid, recs(pid, k)) for pid in SEEDS]


def validate(tmp_path: Path, lines: list[str], expected: int = K) -> list[Violation]:
    path = tmp_path / "submission.csv"
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return validate_submission(path, SEEDS, expected)


def assert_violations(found: list[Violation], wanted: list[tuple[int | None, int | None, str]]) -> None:
    """Exactly these violations, in this order: (line, pid, a fragment of the message)."""
    assert [(v.line, v.pid) for v in found] == [(line, pid) for line, pid, _ in wanted], found
    for v, (_, _, fragment) in zip(found, wanted):
        assert fragment in v.message, (v, fragment)


# ---- valid files -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["submission.csv", "submission.csv.gz"])
def test_valid_submission_round_trips(tmp_path, name):
    rows = [(pid, recs(pid)) for pid in SEEDS]
    path = tmp_path / name
    write_submission(path, "Team", "team@example.com", rows)

    assert validate_submission(path, SEEDS, expected=K) == []
    check_submission(path, SEEDS, expected=K)
    raw = path.read_bytes()
    text = gzip.decompress(raw).decode() if name.endswith(".gz") else raw.decode()
    assert text == "".join(f"{line}\n" for line in good_lines())
    assert os.listdir(tmp_path) == [name]  # the temp file was renamed, none left beside it


def test_default_is_500_tracks(tmp_path):
    assert RECOMMENDATIONS_PER_PLAYLIST == 500
    lines = good_lines(500)
    assert validate(tmp_path, lines, expected=500) == []
    lines[2] = row(1001, recs(1001, 499))
    lines[3] = row(1002, recs(1002, 501))
    path = tmp_path / "submission.csv"
    path.write_text("\n".join(lines) + "\n")
    found = validate_submission(path, SEEDS)
    assert [str(v) for v in found] == [
        "line 3, pid 1001: 499 tracks, expected 500",
        "line 4, pid 1002: 501 tracks, expected 500",
    ]


def test_comments_blank_lines_and_spaces_around_commas_are_ignored(tmp_path):
    lines = [
        "# produced by mpdrec",
        "",
        HEADER.replace(",", " , "),
        "   # indented comment",
        "   ",
        row(1000, recs(1000)),
        "\t",
        row(1001, recs(1001)).replace(",", ", "),
        f"  {row(1002, recs(1002))}  ",
    ]
    assert validate(tmp_path, lines) == []
    # Line numbers are physical lines, comments and blanks included.
    lines[7] = row(1001, recs(1001, 4))
    assert_violations(validate(tmp_path, lines), [(8, 1001, "4 tracks, expected 5")])


def test_validate_lines_consumes_a_one_shot_iterator():
    assert validate_lines(iter(good_lines()), SEEDS, expected=K) == []


# ---- one rule at a time ------------------------------------------------------------------------


def test_missing_header(tmp_path):
    assert_violations(validate(tmp_path, good_lines()[1:]), [(1, None, "missing team_info header")])


def test_header_not_first(tmp_path):
    lines = good_lines()
    lines[0], lines[1] = lines[1], lines[0]
    assert_violations(
        validate(tmp_path, lines), [(2, None, "must be the first non-comment line; line 1 comes before it")]
    )


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("team_info,,team@example.com", "empty team name"),
        ("team_info, ,team@example.com", "empty team name"),
        ("team_info,Team,", "empty contact email"),
        ("team_info,Team", "2 fields, expected 3"),
        ("team_info,Team,team@example.com,main", "4 fields, expected 3"),  # the 2018 track field
    ],
)
def test_malformed_header(tmp_path, header, fragment):
    assert_violations(validate(tmp_path, [header] + good_lines()[1:]), [(1, None, fragment)])


def test_second_header(tmp_path):
    assert_violations(
        validate(tmp_path, good_lines() + [HEADER]), [(5, None, "duplicate team_info header (the first is at line 1)")]
    )


def test_unknown_pid(tmp_path):
    assert_violations(
        validate(tmp_path, good_lines() + [row(9999, recs(9999))]), [(5, 9999, "not in the challenge set")]
    )


def test_missing_pid(tmp_path):
    lines = good_lines()
    del lines[2]
    assert_violations(validate(tmp_path, lines), [(None, 1001, "missing")])


def test_duplicate_pid_is_reported_on_the_second_line(tmp_path):
    assert_violations(
        validate(tmp_path, good_lines() + [row(1000, recs(1000))]), [(5, 1000, "duplicate pid (first at line 2)")]
    )


@pytest.mark.parametrize("k", [K - 1, K + 1])
def test_wrong_number_of_tracks(tmp_path, k):
    lines = good_lines()
    lines[2] = row(1001, recs(1001, k))
    assert_violations(validate(tmp_path, lines), [(3, 1001, f"{k} tracks, expected {K}")])


def test_duplicate_uri(tmp_path):
    uris = recs(1001)
    uris[3] = uris[1]
    lines = good_lines()
    lines[2] = row(1001, uris)
    assert_violations(validate(tmp_path, lines), [(3, 1001, f"1 duplicate track URI(s): {uris[1]}")])


def test_seed_track_recommended(tmp_path):
    uris = recs(1000)
    uris[4] = SEEDS[1000][1]
    lines = good_lines()
    lines[1] = row(1000, uris)
    assert_violations(validate(tmp_path, lines), [(2, 1000, f"1 seed track(s) recommended: {SEEDS[1000][1]}")])


@pytest.mark.parametrize(
    "bad",
    [
        "spotify:album:" + "a" * 22,  # wrong prefix
        "spotify:track:" + "a" * 21,  # 21 characters
        "spotify:track:" + "a" * 23,  # 23 characters
        "spotify:track:" + "a" * 21 + "-",  # a character outside base 62
        "spotify:track:" + "a" * 21 + "é",
        "",  # an empty field (e.g. a doubled comma)
    ],
)
def test_malformed_uri(tmp_path, bad):
    assert not TRACK_URI_RE.fullmatch(bad)
    uris = recs(1002)
    uris[2] = bad
    lines = good_lines()
    lines[3] = row(1002, uris)
    assert_violations(validate(tmp_path, lines), [(4, 1002, "1 malformed track URI(s)")])
    assert f"#3 {bad!r}" in validate(tmp_path, lines)[0].message


def test_track_uri_re_rejects_a_trailing_newline():
    assert TRACK_URI_RE.fullmatch(uri(7)) and not TRACK_URI_RE.fullmatch(uri(7) + "\n")


@pytest.mark.parametrize("pid", ["abc", "1.5", "１００１", "0x3e9"])
def test_non_integer_pid(tmp_path, pid):
    lines = good_lines()
    lines[2] = row(pid, recs(1001))
    assert_violations(validate(tmp_path, lines), [(3, None, f"pid {pid!r} is not an integer"), (None, 1001, "missing")])


# ---- several at once ---------------------------------------------------------------------------


def test_every_violation_in_a_file_is_reported(tmp_path):
    bad_1000 = recs(1000, 4) + [SEEDS[1000][0]]  # right count, one seed
    lines = [
        row(1000, bad_1000),  # line 1: also where the header should be
        row(1001, recs(1001, 3) + ["spotify:track:x"]),
        row(9999, recs(9999)),
        row(1001, recs(1001)),
        "oops",
    ]
    assert_violations(
        validate(tmp_path, lines),
        [
            (1, None, "missing team_info header"),
            (1, 1000, "1 seed track(s) recommended"),
            (2, 1001, "4 tracks, expected 5"),
            (2, 1001, "1 malformed track URI(s)"),
            (3, 9999, "not in the challenge set"),
            (4, 1001, "duplicate pid (first at line 2)"),
            (5, None, "pid 'oops' is not an integer"),
            (None, 1002, "missing"),
        ],
    )


def test_empty_file(tmp_path):
    assert_violations(
        validate(tmp_path, ["# nothing yet"]),
        [
            (None, None, "missing team_info header"),
            (None, 1000, "missing"),
            (None, 1001, "missing"),
            (None, 1002, "missing"),
        ],
    )


# ---- check_submission ------------------------------------------------------------------


def test_check_submission_names_line_and_pid(tmp_path):
    lines = good_lines()
    lines[2] = row(1001, recs(1001, 4))
    validate(tmp_path, lines)
    with pytest.raises(InvalidSubmission) as err:
        check_submission(tmp_path / "submission.csv", SEEDS, expected=K)
    assert err.value.violations == [Violation(3, 1001, "4 tracks, expected 5")]
    assert "line 3, pid 1001: 4 tracks, expected 5" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_invalid_submission_lists_the_first_20_and_the_total(tmp_path):
    seeds = {pid: [] for pid in range(30)}
    path = tmp_path / "empty.csv"
    write_submission(path, "Team", "team@example.com", [])
    with pytest.raises(InvalidSubmission) as err:
        check_submission(path, seeds)
    message = str(err.value)
    assert len(err.value.violations) == 30
    assert "30 violation(s)" in message and "pid 19: missing" in message
    assert "pid 20:" not in message and "... and 10 more" in message


@pytest.mark.parametrize(
    ("lines", "where"),
    [
        (good_lines()[1:], "line 1: missing team_info header"),
        (["team_info,,team@example.com"] + good_lines()[1:], "line 1: team_info: empty team name"),
        (good_lines() + ["x,y"], "line 5: pid 'x' is not an integer"),
        (good_lines() + [row(1000, recs(1000))], "line 5, pid 1000: duplicate pid"),
        (good_lines() + [HEADER], "line 5: duplicate team_info header"),
    ],
)
def test_what_a_reader_could_not_represent_is_a_violation(tmp_path, lines, where):
    path = tmp_path / "submission.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidSubmission, match=where):
        check_submission(path, SEEDS, expected=K)


# ---- writing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("team", "email"),
    [
        ("Team, Inc", "team@example.com"),
        ("Team", "team@example.com\n"),
        ("Te\ram", "team@example.com"),
        ("", "team@example.com"),
        (" Team", "team@example.com"),
    ],
)
def test_header_fields_that_would_not_read_back_are_refused(tmp_path, team, email):
    with pytest.raises(ValueError):
        format_submission(team, email, [])
    with pytest.raises(ValueError):
        write_submission(tmp_path / "submission.csv", team, email, [])
    assert os.listdir(tmp_path) == []


def test_format_submission_keeps_the_row_order():
    rows = [(1002, recs(1002, 2)), (1000, recs(1000, 1))]
    assert list(format_submission("Team", "team@example.com", rows)) == [
        HEADER + "\n",
        row(1002, recs(1002, 2)) + "\n",
        row(1000, recs(1000, 1)) + "\n",
    ]


def test_failed_write_leaves_the_previous_file_and_no_temp_file(tmp_path):
    path = tmp_path / "submission.csv"
    write_submission(path, "Team", "team@example.com", [(pid, recs(pid)) for pid in SEEDS])
    before = path.read_bytes()

    def rows():
        yield 1000, recs(1000)
        raise RuntimeError("ranking failed half way")

    with pytest.raises(RuntimeError, match="half way"):
        write_submission(path, "Team", "team@example.com", rows())
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["submission.csv"]
