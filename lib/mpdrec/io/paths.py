"""URIs for every path the pipeline touches: local paths become absolute file:// URIs."""

from __future__ import annotations

import re
from pathlib import Path

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
GLOB_CHARS = set("*?[{")
MANIFEST = "_manifest.json"  # a stage output is valid iff this file exists (see io/stage.py)


def to_uri(path: str) -> str:
    """`runs/x` -> `file:///abs/runs/x`; URIs with a scheme (gs://, s3://, file:) are kept.

    Not percent-encoded (unlike Path.as_uri): Hadoop, pyarrow and `local_path` all read the raw form,
    and Spark's partition directories (`epoch=0`) would otherwise come back as `epoch%3D0`."""
    if _SCHEME.match(path):
        return path
    return "file://" + str(Path(path).expanduser().absolute())


def is_local(uri: str) -> bool:
    return not _SCHEME.match(uri) or uri.startswith("file:")


def local_path(uri: str) -> Path:
    """The filesystem path of a local URI or path."""
    if uri.startswith("file:"):
        return Path("/" + uri[len("file:") :].lstrip("/"))
    return Path(uri).expanduser().absolute()


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])


def basename(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def parent(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[0]


def has_glob(uri: str) -> bool:
    return any(c in GLOB_CHARS for c in uri)
