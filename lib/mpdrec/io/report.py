"""A report: its figures (PNG bytes by file name), report.json and report.md, written into a study
stage's staging directory or, by the evaluate job, into the run directory. One writer for both, so
every report reads the same way."""

from __future__ import annotations

import json
from typing import Any

from mpdrec.io.arrow_fs import write_bytes
from mpdrec.io.fs import FileStore
from mpdrec.io.paths import join


def write_report(fs: FileStore, out_dir: str, body: dict[str, Any], markdown: str, figures: dict[str, bytes]) -> None:
    """The figures first, then report.json (keys sorted) and report.md through `fs.write_text`
    (each replaced atomically where the store's rename is, and whole objects on object stores)."""
    for name, png in figures.items():
        write_bytes(join(out_dir, name), png)
    fs.write_text(join(out_dir, "report.json"), json.dumps(body, indent=2, sort_keys=True))
    fs.write_text(join(out_dir, "report.md"), markdown)
