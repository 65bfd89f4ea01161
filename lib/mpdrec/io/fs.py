"""A small file-store interface with three implementations.

`LocalFS` is plain Python (the generator runs without Spark); `HadoopFS` goes through the JVM's
Hadoop FileSystem, so the same code reads and writes file://, hdfs://, gs:// (Dataproc's connector)
and s3:// (EMRFS) exactly as Spark itself does; `ArrowFS` reaches the same remote stores through
pyarrow, for processes with no JVM (Horovod ranks). `store_for` picks LocalFS or ArrowFS for a URI.
"""

from __future__ import annotations

import fnmatch
import glob as pyglob
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow.fs as pafs

from mpdrec.errors import InputError
from mpdrec.io.arrow_fs import resolve, resolve_for_write
from mpdrec.io.paths import GLOB_CHARS, MANIFEST, basename, is_local, join, local_path, to_uri

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class FileInfo:
    uri: str
    size: int
    mtime_ms: int


class FileStore(Protocol):
    def exists(self, uri: str) -> bool: ...
    def is_dir(self, uri: str) -> bool: ...
    def delete(self, uri: str) -> None: ...
    def rename(self, src: str, dst: str) -> None: ...
    def mkdirs(self, uri: str) -> None: ...
    def read_text(self, uri: str) -> str: ...
    def write_text(self, uri: str, text: str) -> None: ...
    def glob(self, pattern: str) -> list[FileInfo]: ...
    def list_files(self, uri: str, name_pattern: str = "*") -> list[FileInfo]: ...
    def delete_glob(self, pattern: str) -> None: ...


class LocalFS:
    """FileStore on the local filesystem."""

    def exists(self, uri: str) -> bool:
        return local_path(uri).exists()

    def is_dir(self, uri: str) -> bool:
        return local_path(uri).is_dir()

    def delete(self, uri: str) -> None:
        p = local_path(uri)
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()

    def rename(self, src: str, dst: str) -> None:
        local_path(dst).parent.mkdir(parents=True, exist_ok=True)
        os.replace(local_path(src), local_path(dst))

    def mkdirs(self, uri: str) -> None:
        local_path(uri).mkdir(parents=True, exist_ok=True)

    def read_text(self, uri: str) -> str:
        return local_path(uri).read_text()

    def write_text(self, uri: str, text: str) -> None:
        """Atomic: written beside the target, then renamed over it."""
        p = local_path(uri)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, p)

    def _info(self, p: str) -> FileInfo:
        st = os.stat(p)
        return FileInfo(to_uri(p), st.st_size, int(st.st_mtime * 1000))

    def glob(self, pattern: str) -> list[FileInfo]:
        hits = sorted(pyglob.glob(str(local_path(pattern))))
        return [self._info(p) for p in hits if os.path.isfile(p)]

    def list_files(self, uri: str, name_pattern: str = "*") -> list[FileInfo]:
        d = local_path(uri)
        names = sorted(n for n in os.listdir(d) if fnmatch.fnmatch(n, name_pattern))
        return [self._info(str(d / n)) for n in names if (d / n).is_file()]

    def delete_glob(self, pattern: str) -> None:
        for p in pyglob.glob(str(local_path(pattern))):
            self.delete(p)


class HadoopFS:
    """FileStore through the JVM's Hadoop FileSystem of a running SparkSession."""

    def __init__(self, spark: SparkSession) -> None:
        self._jvm: Any = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _p(self, uri: str):  # noqa: ANN202 - a py4j JavaObject
        return self._jvm.org.apache.hadoop.fs.Path(uri)

    def _fs(self, path):  # noqa: ANN001, ANN202
        return path.getFileSystem(self._conf)

    def exists(self, uri: str) -> bool:
        p = self._p(uri)
        return bool(self._fs(p).exists(p))

    def is_dir(self, uri: str) -> bool:
        p = self._p(uri)
        fs = self._fs(p)
        return bool(fs.exists(p) and fs.getFileStatus(p).isDirectory())

    def delete(self, uri: str) -> None:
        p = self._p(uri)
        self._fs(p).delete(p, True)

    def rename(self, src: str, dst: str) -> None:
        s, d = self._p(src), self._p(dst)
        fs = self._fs(s)
        fs.mkdirs(d.getParent())
        if not fs.rename(s, d):
            raise OSError(f"could not rename {src} to {dst}")

    def mkdirs(self, uri: str) -> None:
        p = self._p(uri)
        self._fs(p).mkdirs(p)

    def read_text(self, uri: str) -> str:
        p = self._p(uri)
        stream = self._fs(p).open(p)
        try:
            return self._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
        finally:
            stream.close()

    def write_text(self, uri: str, text: str) -> None:
        """Atomic where the store's rename is (local, HDFS); object stores write whole objects."""
        p = self._p(uri)
        tmp = self._p(f"{uri}.tmp")
        fs = self._fs(p)
        out = fs.create(tmp, True)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()
        fs.delete(p, False)
        if not fs.rename(tmp, p):
            raise OSError(f"could not write {uri}")

    def _infos(self, statuses) -> list[FileInfo]:  # noqa: ANN001
        out = [
            FileInfo(str(s.getPath().toString()), int(s.getLen()), int(s.getModificationTime()))
            for s in (statuses or [])
            if s.isFile()
        ]
        return sorted(out, key=lambda f: f.uri)

    def glob(self, pattern: str) -> list[FileInfo]:
        p = self._p(pattern)
        return self._infos(self._fs(p).globStatus(p))

    def list_files(self, uri: str, name_pattern: str = "*") -> list[FileInfo]:
        return self.glob(uri.rstrip("/") + "/" + name_pattern)

    def delete_glob(self, pattern: str) -> None:
        p = self._p(pattern)
        fs = self._fs(p)
        for s in fs.globStatus(p) or []:
            fs.delete(s.getPath(), True)


class ArrowFS:
    """FileStore over pyarrow's filesystems (gs://, s3://, hdfs://), for processes without a JVM.

    Object stores have no directory rename: `rename` copies every object, the manifest last, then
    deletes the source, so a reader that trusts only `_manifest.json` never sees a partial output.
    """

    def exists(self, uri: str) -> bool:
        fs, path = resolve(uri)
        return fs.get_file_info(path).type != pafs.FileType.NotFound

    def is_dir(self, uri: str) -> bool:
        fs, path = resolve(uri)
        return fs.get_file_info(path).type == pafs.FileType.Directory

    def delete(self, uri: str) -> None:
        fs, path = resolve(uri)
        kind = fs.get_file_info(path).type
        if kind == pafs.FileType.Directory:
            fs.delete_dir(path)
        elif kind == pafs.FileType.File:
            fs.delete_file(path)

    def rename(self, src: str, dst: str) -> None:
        fs, s = resolve(src)
        _, d = resolve(dst)
        try:
            fs.move(s, d)
            return
        except (NotImplementedError, OSError):
            pass  # object stores: copy, manifest last
        files = [i.path for i in fs.get_file_info(pafs.FileSelector(s, recursive=True)) if i.type == pafs.FileType.File]
        for f in sorted(files, key=lambda f: f.endswith("/" + MANIFEST)):
            fs.copy_file(f, d + f[len(s) :])
        fs.delete_dir(s)

    def mkdirs(self, uri: str) -> None:
        fs, path = resolve(uri)
        fs.create_dir(path, recursive=True)

    def read_text(self, uri: str) -> str:
        fs, path = resolve(uri)
        with fs.open_input_stream(path) as f:
            return f.read().decode("utf-8")

    def write_text(self, uri: str, text: str) -> None:
        """Whole-object write: atomic on object stores."""
        fs, path = resolve_for_write(uri)
        with fs.open_output_stream(path) as f:
            f.write(text.encode("utf-8"))

    def _matches(self, pattern: str) -> list[tuple[str, pafs.FileInfo]]:
        """(uri, info) of every file or directory matching a glob (each segment matched alone).

        Only the part before the first glob segment goes through pyarrow's URI parser (which rejects
        `[`, `{` and reads `?` as a query); URIs are rebuilt from the scheme and host, not by length,
        since the parser percent-decodes paths."""
        parts = pattern.rstrip("/").split("/")
        fixed = next((i for i, p in enumerate(parts) if i > 2 and any(c in GLOB_CHARS for c in p)), len(parts))
        fs, base = resolve("/".join(parts[:fixed]))
        scheme, _, rest = pattern.partition("://")
        prefix = f"{scheme}://{rest.split('/', 1)[0]}" if base.startswith("/") else f"{scheme}://"  # hdfs | gs, s3
        if fixed == len(parts):
            info = fs.get_file_info(base)
            return [] if info.type == pafs.FileType.NotFound else [(prefix + base, info)]
        path = "/".join([base.rstrip("/"), *parts[fixed:]])
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        return sorted(
            (prefix + i.path, i)
            for i in fs.get_file_info(selector)
            if i.path.count("/") == path.count("/") and fnmatch.fnmatchcase(i.path, path)
        )

    def glob(self, pattern: str) -> list[FileInfo]:
        return [
            FileInfo(uri, i.size, int(i.mtime_ns // 1_000_000))
            for uri, i in self._matches(pattern)
            if i.type == pafs.FileType.File
        ]

    def list_files(self, uri: str, name_pattern: str = "*") -> list[FileInfo]:
        return self.glob(join(uri, name_pattern))

    def delete_glob(self, pattern: str) -> None:
        for uri, _ in self._matches(pattern):
            self.delete(uri)


def store_for(uri: str) -> FileStore:
    """The JVM-free store for a URI: LocalFS for local paths, ArrowFS for remote ones."""
    return LocalFS() if is_local(uri) else ArrowFS()


def files_named(fs: FileStore, spec: str, name_pattern: str = "*") -> list[FileInfo] | None:
    """The files an input spec names: a glob's matches, a directory's files matching `name_pattern`,
    or the file itself; None when nothing exists at `spec`."""
    uri = to_uri(spec)
    if any(c in GLOB_CHARS for c in uri):
        return fs.glob(uri)
    if fs.is_dir(uri):
        return fs.list_files(uri, name_pattern)
    return fs.glob(uri) if fs.exists(uri) else None


def input_files(
    fs: FileStore,
    key: str,
    specs: list[str],
    what: str,
    name_pattern: str = "*",
    check_dir: Callable[[FileStore, str], None] | None = None,
) -> list[FileInfo]:
    """Every file that config key `key` names (`specs`: files, globs, directories; a directory's
    files matching `name_pattern`), sorted, each once, or an InputError naming the key and the spec.
    Names starting with `_` or `.` (markers, manifests, checksums) are never data; `what` names the
    files in the errors, and `check_dir(fs, spec)` vets a directory before its files are taken."""
    if not specs:
        raise InputError(f"config key '{key}': no input given (the {what}: files, directories or globs)")
    found: dict[str, FileInfo] = {}
    for spec in specs:
        hits = files_named(fs, spec, name_pattern)
        if hits is None:
            raise InputError(f"config key '{key}': {spec} does not exist")
        if check_dir is not None and fs.is_dir(to_uri(spec)):
            check_dir(fs, spec)
        hits = [f for f in hits if not basename(f.uri).startswith(("_", "."))]
        if not hits:
            raise InputError(f"config key '{key}': no {what} in {spec}")
        found.update((f.uri, f) for f in hits)
    return [found[k] for k in sorted(found)]
