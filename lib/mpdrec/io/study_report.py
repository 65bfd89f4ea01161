"""A study stage's report, written into its staging directory: report.json (the manifest's body too),
report.md and its figures (PNG bytes by file name)."""
from __future__ import annotations

import json
from typing import Any

from mpdrec.io.arrow_fs import write_bytes
from mpdrec.io.paths import join


def write_report(out_dir: str, body: dict[str, Any], markdown: str, figures: dict[str, bytes]) -> None:
    write_bytes(join(out_dir, "report.json"), json.dumps(body, indent=2).encode())
    write_bytes(join(out_dir, "report.md"), markdown.encode())
    for name, png in figures.items():
        write_bytes(join(out_dir, name), png)
