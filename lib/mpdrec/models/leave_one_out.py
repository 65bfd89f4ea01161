"""The leave-one-out set that `jobs/sample_negatives.py` writes (each evaluated playlist's held-out
track and its sampled negatives), read once for every model scored by the NCF paper's protocol
(`mpdrec.metrics.leave_one_out`): NCF while it trains, ALS after its grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mpdrec.config import Config
from mpdrec.errors import InputError
from mpdrec.io.arrow_fs import resolve
from mpdrec.io.fs import FileInfo, store_for
from mpdrec.io.paths import join, to_uri


@dataclass(frozen=True)
class LeaveOneOut:
    """Per evaluated playlist: its held-out track in column 0 of `candidates`, sampled negatives after."""

    playlists: np.ndarray  # (n,)
    candidates: np.ndarray  # (n, 1 + negatives)

    def max_ids(self) -> tuple[int, int]:
        return int(self.playlists.max()), int(self.candidates.max())


def leave_one_out_uri(cfg: Config) -> str:
    """Where the run's leave-one-out set is: `ncf.eval_path`, else `<run_dir>/negatives/eval`."""
    return to_uri(cfg.ncf.eval_path) if cfg.ncf.eval_path else join(to_uri(cfg.paths.run_dir), "negatives", "eval")


def leave_one_out_files(uri: str) -> list[FileInfo]:
    """The set's Parquet files (a directory's, or the one file `uri` names); [] when there is none."""
    store = store_for(uri)
    return store.glob(join(uri, "*.parquet")) or store.glob(uri)


def read_leave_one_out(uri: str) -> LeaveOneOut:
    """A (playlist_idx, track_idx, negatives array<int>) Parquet file or directory, every row with the
    same number of negatives (the protocol ranks each held-out track among equally many)."""
    fs, path = resolve(uri)
    try:
        table = pq.read_table(path, filesystem=fs)
    except (FileNotFoundError, pa.ArrowInvalid) as exc:
        raise InputError(f"{uri}: cannot read the leave-one-out set ({exc})") from exc
    missing = [c for c in ("playlist_idx", "track_idx", "negatives") if c not in table.column_names]
    if missing or not table.num_rows:
        raise InputError(
            f"{uri}: expected rows of (playlist_idx, track_idx, negatives array<int>); missing columns {missing}"
            if missing
            else f"{uri}: the leave-one-out set is empty"
        )
    negatives = table.column("negatives").combine_chunks()
    lengths = np.diff(negatives.offsets.to_numpy())
    if len(set(lengths.tolist())) != 1 or lengths[0] < 1:
        raise InputError(
            f"{uri}: rows have {sorted(set(lengths.tolist()))[:5]} negatives; every row needs the same "
            "number (at least one)"
        )
    flat = negatives.flatten().to_numpy().astype(np.int64).reshape(len(lengths), lengths[0])
    held = table.column("track_idx").to_numpy().astype(np.int64)
    return LeaveOneOut(
        table.column("playlist_idx").to_numpy().astype(np.int64), np.concatenate([held[:, None], flat], axis=1)
    )
