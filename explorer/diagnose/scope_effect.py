"""What the scope check does on an evaluation table: how many of the model's own photos it keeps, how many
out-of-scope photos it would let through (the rule's held-out evidence), and how well the open-set score tells
known species from unknown ones, as the thresholds move. From the table's SCOPE_SCHEMA columns alone."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl

from explorer.diagnose.frames import IN_VOCAB, OK, View, arrays, columns, first_values
from explorer.scope import SCOPE_SCHEMA, auroc

POINTS = 201  # thresholds per curve: quantiles of the scores, so every part of the curve is drawn


def has_scope(table: View) -> bool:
    """The table was built with the model's scope rule (explorer.scope.SCOPE_SCHEMA columns)."""
    return set(SCOPE_SCHEMA) <= set(columns(table))


def _share_at_or_above(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    if not len(values):
        return np.full(len(thresholds), np.nan)
    ordered = np.sort(values)
    return (len(ordered) - np.searchsorted(ordered, thresholds, side="left")) / len(ordered)


def _share_below(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    if not len(values):
        return np.full(len(thresholds), np.nan)
    return np.searchsorted(np.sort(values), thresholds, side="left") / len(values)


def _thresholds(*groups: np.ndarray, points: int = POINTS) -> np.ndarray:
    values = np.sort(np.concatenate([g for g in groups if len(g)] or [np.zeros(0)]))
    if not len(values):
        return np.zeros(0)
    # np.quantile's linear interpolation, read off the sorted values (np.quantile re-partitions per quantile)
    position = np.linspace(0, 1, points) * (len(values) - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(values) - 1)
    return np.unique(values[low] + (values[high] - values[low]) * (position - low))


def _readable(column: str) -> pl.Expr:
    """Readable photos with a score in ``column``."""
    return OK & pl.col(column).is_not_null() & pl.col(column).is_not_nan()


def _scores(table: View, column: str, where: pl.Expr | None = None) -> np.ndarray:
    keep = _readable(column) if where is None else _readable(column) & where
    return arrays(table, where=keep, scores=pl.col(column).cast(pl.Float64))["scores"]


def scope_tradeoff(table: View, outside=None, points: int = POINTS) -> pd.DataFrame:
    """As the scope threshold moves: the share of the table's readable photos kept (all are of the model's
    subject) and the share of ``outside`` scores (out-of-scope photos, e.g. the rule's held-out ones) accepted."""
    inside = _scores(table, "scope_score")
    outside = np.asarray([] if outside is None else outside, dtype=float)
    thresholds = _thresholds(inside, outside, points=points)
    return pd.DataFrame(
        {
            "threshold": thresholds,
            "in_scope_kept": _share_at_or_above(inside, thresholds),
            "out_of_scope_accepted": _share_at_or_above(outside, thresholds),
        }
    )


def _known_unknown(table: View) -> tuple[np.ndarray, np.ndarray]:
    return _scores(table, "novelty_score", IN_VOCAB), _scores(table, "novelty_score", ~IN_VOCAB)


def open_set_tradeoff(table: View, points: int = POINTS) -> pd.DataFrame:
    """As the open-set threshold moves: the share of photos of known species kept, and of photos of species the
    model has no class for flagged as 'probably not one of its species'."""
    known, unknown = _known_unknown(table)
    thresholds = _thresholds(known, unknown, points=points)
    return pd.DataFrame(
        {
            "threshold": thresholds,
            "known_kept": _share_at_or_above(known, thresholds),
            "unknown_flagged": _share_below(unknown, thresholds),
        }
    )


@dataclass(frozen=True)
class ScopeEffect:
    """The scope check at the rule's thresholds on a (filtered) table; NaN where there is nothing to count."""

    kind: str
    threshold: float
    photos: int  # readable photos in view
    kept: int  # of them, judged in scope
    outside_photos: int  # the rule's held-out out-of-scope photos (0: the rule does not carry them)
    outside_accepted: int
    novelty_threshold: float
    known_photos: int
    unknown_photos: int
    known_kept: int
    unknown_flagged: int
    open_set_auroc: float


def scope_effect(table: View, outside=None) -> ScopeEffect:
    """Counts at the thresholds stored in the table (those of the rule it was evaluated with)."""
    readable = _readable("scope_score")
    counts = arrays(table, photos=readable.sum(), kept=(readable & pl.col("in_scope").fill_null(False)).sum())
    first = first_values(table, "scope_threshold", "novelty_threshold", "scope_kind")
    threshold, novelty = (float("nan") if first[c] is None else float(first[c]) for c in first if c != "scope_kind")
    outside = np.asarray([] if outside is None else outside, dtype=float)
    known, unknown = _known_unknown(table)
    return ScopeEffect(
        kind="" if first["scope_kind"] is None else str(first["scope_kind"]),
        threshold=threshold,
        photos=int(counts["photos"][0]),
        kept=int(counts["kept"][0]),
        outside_photos=len(outside),
        outside_accepted=int((outside >= threshold).sum()),
        novelty_threshold=novelty,
        known_photos=len(known),
        unknown_photos=len(unknown),
        known_kept=int((known >= novelty).sum()),
        unknown_flagged=int((unknown < novelty).sum()),
        open_set_auroc=auroc(known, unknown),
    )
