"""The candidates' feature rows as Spark's columns plus the numpy steps that add the rest (the seed
features, the NCF score), all run in the one Arrow pass that reads them.

Each Python pass over the rows makes the JVM write every wide row to Arrow and read one back: the
seed features, the NCF head and the blends' scores, each a `mapInArrow` of its own, spent most of
the features step's JVM time there (docs/scale.md). Here a step is a function of a batch's columns
that returns new ones, and whatever reads the rows (`to_frame` for the re-ranker's fit, `map` for
the blends' scores) runs every step first in its own pass: the wide rows cross to Python once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark import Broadcast
from pyspark.sql import DataFrame
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructField, StructType

from mpdrec.sorted_groups import batch_columns, whole_groups

Columns = dict[str, Any]  # a batch's columns by name: numpy arrays, Arrow arrays for vectors (`batch_columns`)
BatchFunction = Callable[[Columns], dict[str, np.ndarray]]
Share = Callable[[Any], Broadcast]  # a value broadcast to the executors (`RankingData.broadcast`)


@dataclass(frozen=True)
class ColumnStep:
    """New columns (`fields`) from a batch's columns. `bind` runs once per task (in the executor:
    where it reads its broadcasts or loads its model) and returns the function applied to each
    batch. With `whole_queries` the batches it reads hold whole playlists, sorted by pid."""

    fields: tuple[StructField, ...]
    bind: Callable[[], BatchFunction]
    whole_queries: bool = False


@dataclass(frozen=True)
class FeatureRows:
    """Rows (pid, track_idx, ...): Spark's `frame`, then `steps` in order, each reading the
    columns before it."""

    frame: DataFrame
    steps: tuple[ColumnStep, ...] = ()

    @classmethod
    def of(cls, rows: FeatureRows | DataFrame) -> FeatureRows:
        """A DataFrame is rows with nothing left to compute."""
        return rows if isinstance(rows, FeatureRows) else cls(rows)

    def then(self, step: ColumnStep) -> FeatureRows:
        """These rows with `step` after the others."""
        return replace(self, steps=(*self.steps, step))

    @property
    def fields(self) -> list[StructField]:
        """The rows' columns once every step has run."""
        return [*self.frame.schema.fields, *(f for step in self.steps for f in step.fields)]

    def field(self, name: str) -> StructField:
        """One of `fields`, by name."""
        return next(f for f in self.fields if f.name == name)

    def map(self, bind: Callable[[], Callable[[Columns], Columns]], fields: list[StructField]) -> DataFrame:
        """One Arrow pass: the steps, then `bind()`'s function (bound once per task) of each batch's
        columns, which returns `fields`' columns (as many rows as it likes). For a step that reads
        whole queries the rows are sorted by pid within their partitions (not shuffled: a
        candidate's features depend on its query and itself only, so a query whose rows span
        partitions gets the same values) and a batch holds whole playlists. Spark drops that sort
        where the frame is in pid order already (the candidate table is, and the broadcast joins
        that add the features keep its order)."""
        steps, schema = self.steps, StructType(fields)
        arrow = to_arrow_schema(schema)
        grouped = any(step.whole_queries for step in steps)

        def run(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            applied, finish = [step.bind() for step in steps], bind()
            for cols in whole_groups(batches, "pid") if grouped else (batch_columns(b) for b in batches):
                for apply in applied:
                    cols.update(apply(cols))
                out = finish(cols)
                yield pa.RecordBatch.from_arrays([_arrow(out[f.name], f.type) for f in arrow], schema=arrow)

        return (self.frame.sortWithinPartitions("pid") if grouped else self.frame).mapInArrow(run, schema)

    def to_frame(self) -> DataFrame:
        """Every column, computed."""
        if not self.steps:
            return self.frame
        return self.map(lambda: lambda cols: cols, self.fields)


def _arrow(values: Any, kind: pa.DataType) -> pa.Array:
    """A column as the Arrow type its schema gives it."""
    return values.cast(kind) if isinstance(values, pa.Array) else pa.array(values, kind)
