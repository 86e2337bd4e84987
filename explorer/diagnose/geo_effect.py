"""What a place changed: the geo-prior's fixes and breaks, from the evaluation table's optional geo columns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl

from explorer.diagnose.frames import (
    IN_VOCAB,
    OK,
    ROW,
    Subset,
    View,
    as_lazy,
    as_text,
    columns,
    first_value,
    rows_at,
    select,
    to_pandas,
)
from explorer.diagnose.metrics import UNKNOWN
from explorer.diagnose.schema import ALT_SEPARATOR, GEO_PRIOR_COLUMN

GEO_KINDS = ("fixed", "broke", "changed")


def has_geo(table: View) -> bool:
    """The table was built with places and a geo-prior (evaluate.GEO_SCHEMA columns)."""
    return {"lat", "geo_correct_1", "geo_pred_class_index"} <= set(columns(table))


GEO_FIELDS = ("geo_pred_class_index", "geo_pred_name", "geo_confidence", "geo_true_prob", "geo_correct_1")


def table_priors(table: View) -> list[str]:
    """The geo-priors a table has columns for, the one behind its geo_* columns first ("geo-prior" for a table
    from before priors were named, or an empty view)."""
    if not has_geo(table):
        return []
    names = columns(table)
    first = _first_prior(table) if GEO_PRIOR_COLUMN in names else None
    suffix = ALT_SEPARATOR + "geo_correct_1"
    return ["geo-prior" if first is None else str(first), *(c[: -len(suffix)] for c in names if c.endswith(suffix))]


def _first_prior(table: View):
    """The prior named in the view's first row. A Subset's table names one prior on every row: read there, without
    a query (and an empty view of it still knows its prior)."""
    if isinstance(table, Subset) and GEO_PRIOR_COLUMN not in table.fields:
        column = table.frame[GEO_PRIOR_COLUMN]
        return column[0] if len(column) else None
    return first_value(table, GEO_PRIOR_COLUMN)


def geo_view(table: View, prior: str | None) -> View:
    """The table with ``prior``'s answers in the geo_* columns (None or the table's first prior: unchanged), so
    that every function here reads either prior. ValueError for a prior the table has no columns for."""
    priors = table_priors(table)
    if not prior or not priors or prior == priors[0]:
        return table
    if prior not in priors:
        raise ValueError(f"this table has no columns for the geo-prior {prior!r}; it has {priors}")
    if isinstance(table, pd.DataFrame):
        fields = {field: table[f"{prior}{ALT_SEPARATOR}{field}"] for field in GEO_FIELDS}
        return table.assign(**fields, **{GEO_PRIOR_COLUMN: prior})
    fields = {field: pl.col(f"{prior}{ALT_SEPARATOR}{field}") for field in GEO_FIELDS}
    if isinstance(table, Subset):
        return table.with_columns(**fields, **{GEO_PRIOR_COLUMN: pl.lit(prior)})
    return table.lazy().with_columns(**fields, **{GEO_PRIOR_COLUMN: pl.lit(prior)})


def compare_priors(table: View) -> pd.DataFrame:
    """One row per geo-prior on the same photos with a place: top-1 image alone and with it, fixed, broke, changed
    (every prior's counts in one query, each from its own columns)."""
    priors, named = table_priors(table), {"placed": PLACED.sum()}
    for i, prior in enumerate(priors):
        outcome = _outcomes("" if i == 0 else f"{prior}{ALT_SEPARATOR}")
        named |= {f"{k}_{i}": outcome[k].sum() for k in ("before", "after", "fixed", "broke", "changed")}
    counts = select(table, **named).row(0, named=True) if priors else {}
    n = int(counts.get("placed") or 0)
    rows = [
        {
            "prior": prior,
            "photos": n,
            "top1_image": counts[f"before_{i}"] / n if n else float("nan"),
            "top1_with_prior": counts[f"after_{i}"] / n if n else float("nan"),
            "fixed": int(counts[f"fixed_{i}"]),
            "broke": int(counts[f"broke_{i}"]),
            "net": int(counts[f"fixed_{i}"]) - int(counts[f"broke_{i}"]),
            "changed": int(counts[f"changed_{i}"]),
        }
        for i, prior in enumerate(priors)
    ]
    return pd.DataFrame(
        rows, columns=["prior", "photos", "top1_image", "top1_with_prior", "fixed", "broke", "net", "changed"]
    )


PLACED = OK & IN_VOCAB & pl.col("lat").is_not_null() & pl.col("lat").is_not_nan()
"""Readable, in-vocabulary photos that had a place: the only ones the prior could act on."""


def _outcomes(prefix: str = "") -> dict[str, pl.Expr]:
    """Per photo with a place: the prior fixed, broke or changed its top-1; top-1 right before and after (the
    prior's answers in ``prefix`` + the geo_* columns)."""
    before, after = pl.col("correct_1"), pl.col(f"{prefix}geo_correct_1")
    changed = pl.col(f"{prefix}geo_pred_class_index") != pl.col("pred_class_index")
    return {
        "fixed": PLACED & ~before & after,
        "broke": PLACED & before & ~after,
        "changed": PLACED & changed,
        "before": PLACED & before,
        "after": PLACED & after,
    }


@dataclass(frozen=True)
class GeoEffect:
    """What the geo-prior did to the top-1 of the photos that had a place."""

    photos_with_place: int
    photos_without_place: int
    top1_vision: float
    top1_geo: float
    changed: int
    fixed: int
    broke: int
    wrong_to_other_wrong: int
    location_sources: dict[str, int]


def geo_effect(table: View) -> GeoEffect:
    """Top-1 with and without the prior on photos with a place, and how often it fixed / broke / changed it."""
    outcome = _outcomes()
    other_wrong = outcome["changed"] & ~outcome["before"] & ~outcome["after"]
    counts = select(
        table,
        placed=PLACED.sum(),
        readable=(OK & IN_VOCAB).sum(),
        other_wrong=other_wrong.sum(),
        **{k: v.sum() for k, v in outcome.items()},
    ).row(0, named=True)
    sources = as_lazy(table, [PLACED, pl.col("location_source")]).filter(PLACED)
    sources = as_text(sources.group_by(source=pl.col("location_source")).len().collect(), "source").sort("source")
    n = int(counts["placed"])
    return GeoEffect(
        photos_with_place=n,
        photos_without_place=int(counts["readable"]) - n,
        top1_vision=counts["before"] / n if n else float("nan"),
        top1_geo=counts["after"] / n if n else float("nan"),
        changed=int(counts["changed"]),
        fixed=int(counts["fixed"]),
        broke=int(counts["broke"]),
        wrong_to_other_wrong=int(counts["other_wrong"]),
        location_sources={str(k): int(v) for k, v in sources.iter_rows() if v and k is not None},
    )


def geo_effect_by_clade(table: View, rank: str, min_photos: int = 1) -> pd.DataFrame:
    """Per true clade at ``rank``: photos with a place, how many the prior fixed and broke (not only the net),
    and top-1 without and with it; the clades where it did most first."""
    columns_out = ["clade", "photos", "fixed", "broke", "net", "top1_vision", "top1_geo"]
    outcome = _outcomes()
    clade = f"true_{rank}"
    lazy = as_lazy(table, [*outcome.values(), pl.col(clade)]).filter(PLACED)
    counts = {k: outcome[k].sum() for k in ("fixed", "broke", "before", "after")}
    grouped = as_text(lazy.group_by(clade=pl.col(clade)).agg(photos=pl.len(), **counts).collect(), "clade")
    grouped = grouped.filter(pl.col("photos") >= max(min_photos, 1)).sort("clade", nulls_last=False).to_pandas()
    if grouped.empty:
        return pd.DataFrame(columns=columns_out)
    fixed, broke = grouped["fixed"].to_numpy(np.int64), grouped["broke"].to_numpy(np.int64)
    out = pd.DataFrame(
        {
            "clade": grouped["clade"].fillna(UNKNOWN).to_numpy(dtype=object),
            "photos": grouped["photos"].to_numpy(np.int64),
            "fixed": fixed,
            "broke": broke,
            "net": fixed - broke,  # signed: polars counts are unsigned, and more broken than fixed is negative
            "top1_vision": grouped["before"].to_numpy(float) / grouped["photos"].to_numpy(float),
            "top1_geo": grouped["after"].to_numpy(float) / grouped["photos"].to_numpy(float),
        }
    )
    activity = out["fixed"] + out["broke"]
    out = out.assign(_a=activity).sort_values(["_a", "photos"], ascending=False, kind="stable")
    return out.drop(columns="_a").reset_index(drop=True)


def geo_rows(
    table: View,
    kind: str,
    rank: str | None = None,
    clade: str | None = None,
    limit: int = 200,
    keep_row: bool = False,
    only: list[str] | None = None,
) -> pd.DataFrame:
    """The photos behind a count: those the prior fixed, broke, or changed (optionally in one true clade).
    ``keep_row``: with each row's ``ROW`` (see frames.to_pandas); ``only``: just these columns."""
    if kind not in GEO_KINDS:
        raise ValueError(f"kind must be one of {GEO_KINDS}, got {kind!r}")
    keep = _outcomes()[kind]
    if rank and clade is not None:
        column = pl.col(f"true_{rank}")
        keep &= column.is_null() if clade == UNKNOWN else (column == clade).fill_null(False)
    first = as_lazy(table).filter(keep.fill_null(False)).select(ROW).head(limit).collect()  # narrow; then gather
    names = None if only is None else list(dict.fromkeys([*only, ROW]))
    return to_pandas(rows_at(table, first[ROW].to_numpy(), names), keep_row=keep_row)
