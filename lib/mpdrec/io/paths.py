"""URIs for every path the pipeline touches: local paths become absolute file:// URIs."""
from __future__ import annotations

import re
from pathlib import Path

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
GLOB_CHARS = set("*?[{")


def to_uri(path: str) -> str:
    """`runs/x` -> `file:///abs/runs/x`; URIs with a scheme (gs://, s3://, file:) are kept."""
    if _SCHEME.match(path):
        return path
    return Path(path).expanduser().absolute().as_uri()


def is_local(uri: str) -> bool:
    return not _SCHEME.match(uri) or uri.startswith("file:")


def local_path(uri: str) -> Path:
    """The filesystem path of a local URI or path."""
    if uri.startswith("file:"):
        return Path("/" + uri[len("file:"):].lstrip("/"))
    return Path(uri).expanduser().absolute()


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *(p.strip("/") for p in parts)])


def basename(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def parent(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[0]


def has_glob(uri: str) -> bool:
    return any(c in GLOB_CHARS for c in uri)
