"""Publishing a stage on an object store, interrupted at every operation: what is left is the old
output, the whole new one or no valid output (rebuilt by the next run), never a manifest over
partial data."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from mpdrec.io.fs import LocalFS
from mpdrec.io.paths import MANIFEST, local_path, to_uri
from mpdrec.io.stage import begin_stage, publish_stage, read_manifest, run_stage


class Crash(Exception):
    """The driver dies."""


class ObjectStore(LocalFS):
    """LocalFS with an object store's directory operations, one object at a time in the worst order
    for a reader that trusts the manifest (the manifest first when a directory is copied, last when
    it is deleted); the process dies after `budget` object operations."""

    def __init__(self, budget: int) -> None:
        self.budget = budget

    def _operation(self) -> None:
        if self.budget == 0:
            raise Crash()
        self.budget -= 1

    @staticmethod
    def _objects(root: Path, manifest_first: bool) -> list[Path]:
        files = sorted(f for f in root.rglob("*") if f.is_file())
        return sorted(files, key=lambda f: (f.name == MANIFEST) != manifest_first)

    def delete(self, uri: str) -> None:
        p = local_path(uri)
        if p.is_dir():
            for f in self._objects(p, manifest_first=False):
                self._operation()
                f.unlink()
            shutil.rmtree(p)  # only empty "directories" left: no objects
        elif p.exists():
            self._operation()
            p.unlink()

    def rename(self, src: str, dst: str) -> None:
        s, d = local_path(src), local_path(dst)
        objects = self._objects(s, manifest_first=True)
        for f in objects:
            self._operation()
            (d / f.relative_to(s)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, d / f.relative_to(s))
        for f in objects:
            self._operation()
            f.unlink()
        shutil.rmtree(s)

    def write_text(self, uri: str, text: str) -> None:
        self._operation()
        super().write_text(uri, text)


OLD = {"data/part-0": "old 0", "data/part-1": "old 1"}
NEW = {"data/part-0": "new 0", "data/part-1": "new 1", "data/part-2": "new 2", "track_ids/part-0": "ids"}


def _fp(tag: str) -> dict[str, str]:
    return {"inputs": tag * 16, "config": tag * 8, "code": f"0+{tag * 12}"}


def _build(files: dict[str, str]):
    def build(staging: str) -> dict[str, int]:
        for name, text in files.items():
            LocalFS().write_text(f"{staging}/{name}", text)
        return {"files": len(files)}

    return build


def _data(final: Path) -> dict[str, str]:
    return {str(f.relative_to(final)): f.read_text() for f in final.rglob("*") if f.is_file() and f.name != MANIFEST}


def test_a_publish_interrupted_anywhere_never_leaves_a_manifest_over_partial_data(tmp_path: Path) -> None:
    outcomes = set()
    for budget in range(40):
        parent = to_uri(str(tmp_path / f"run{budget}"))
        run_stage(LocalFS(), parent, "interactions", _fp("a"), _build(OLD))
        staging = begin_stage(LocalFS(), parent, "interactions", _fp("b"))
        _build(NEW)(staging)
        store = ObjectStore(budget)
        try:
            publish_stage(store, parent, "interactions", _fp("b"), staging, {"files": len(NEW)}, time.time())
        except Crash:
            pass
        final = tmp_path / f"run{budget}" / "interactions"
        manifest = read_manifest(LocalFS(), str(final))
        if manifest is None:
            outcomes.add("none")
            rerun = run_stage(LocalFS(), parent, "interactions", _fp("b"), _build(NEW))  # rebuilds this stage
            assert rerun["fingerprint"] == _fp("b") and _data(final) == NEW
        elif manifest["fingerprint"] == _fp("a"):
            outcomes.add("old")
            assert _data(final) == OLD
        else:
            outcomes.add("new")
            assert manifest["fingerprint"] == _fp("b") and _data(final) == NEW
        if store.budget > 0:  # the publish finished before the budget ran out
            break
    assert outcomes == {"old", "none", "new"}


@pytest.mark.parametrize("store", [LocalFS(), ObjectStore(10_000)])
def test_an_uninterrupted_publish_replaces_the_output(tmp_path: Path, store: LocalFS) -> None:
    parent = to_uri(str(tmp_path))
    run_stage(store, parent, "rank", _fp("a"), _build(OLD))
    manifest = run_stage(store, parent, "rank", _fp("b"), _build(NEW))
    assert manifest["fingerprint"] == _fp("b") and manifest["files"] == len(NEW)
    assert _data(tmp_path / "rank") == NEW
    assert run_stage(store, parent, "rank", _fp("b"), _build({}))["skipped"]
    assert not list((tmp_path / "_staging").glob("rank-*"))
