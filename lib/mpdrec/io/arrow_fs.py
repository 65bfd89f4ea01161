"""pyarrow filesystems for URIs, so Python tasks read and write file://, gs://, s3://, hdfs://
directly (on Dataproc and EMR with the machine's default credentials)."""

from __future__ import annotations

import pyarrow.fs as pafs

from mpdrec.io.paths import is_local, local_path


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path within it) for a URI; Hadoop's `file:/x` form is accepted too."""
    if is_local(uri):
        return pafs.LocalFileSystem(), str(local_path(uri))
    return pafs.FileSystem.from_uri(uri)


def read_bytes(uri: str) -> bytes:
    fs, path = resolve(uri)
    with fs.open_input_stream(path) as stream:
        return stream.read()


def resolve_for_write(uri: str) -> tuple[pafs.FileSystem, str]:
    """`resolve`, with the parent directory created (a no-op on object stores)."""
    fs, path = resolve(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    return fs, path


def write_bytes(uri: str, data: bytes) -> None:
    """Whole-object write (atomic on object stores; callers stage local writes themselves)."""
    fs, path = resolve_for_write(uri)
    with fs.open_output_stream(path) as stream:
        stream.write(data)
