"""What the scope check does on an evaluation table: how many of the model's own photos it keeps, how many
out-of-scope photos it would let through (the rule's held-out evidence), and how well the open-set score tells
known species from unknown ones, as the thresholds move. From the table's SCOPE_SCHEMA columns alone."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl

from explorer.diagnose.frames import IN_VOCAB, OK, View, columns, select
from explorer.identify.scope_check import SCOPE_SCHEMA, auroc

POINTS = 201  # thresholds per curve: quantiles of the scores, so every part of the curve is drawn


def has_scope(table: View) -> bool:
    """The table was built with the model's scope rule (explorer.identify.scope_check.SCOPE_SCHEMA columns)."""
    return set(SCOPE_SCHEMA) <= set(columns(table))


@dataclass(frozen=True)
class ScopeScores:
    """A view's readable scores, each sorted ascending, read in one query for the whole scope section (its three
    parts share them: a million-row view is read and sorted once, not once per curve)."""

    inside: np.ndarray  # scope_score of the readable photos (all of the model's subject)
    known: np.ndarray  # novelty_score of readable photos of species the model has a class for
    unknown: np.ndarray  # ... of species it has none for
    kept: int  # readable photos judged in scope
    first: dict  # the view's first scope_threshold, novelty_threshold and scope_kind (None: empty view)


def scope_scores(table: View | ScopeScores) -> ScopeScores:
    """The view's sorted scope and open-set scores (a ScopeScores is returned as it is)."""
    if isinstance(table, ScopeScores):
        return table
    readable = _readable("scope_score")
    novelty = _readable("novelty_score")

    def ordered(column: str, where: pl.Expr) -> pl.Expr:
        return pl.col(column).cast(pl.Float64).filter(where).sort().implode()

    firsts = ("scope_threshold", "novelty_threshold", "scope_kind")
    row = select(
        table,
        inside=ordered("scope_score", readable),
        known=ordered("novelty_score", novelty & IN_VOCAB),
        unknown=ordered("novelty_score", novelty & ~IN_VOCAB),
        kept=(readable & pl.col("in_scope").fill_null(False)).sum(),
        **{name: pl.col(name).first() for name in firsts},
    )
    values = {name: row[name][0] if len(row) else None for name in firsts}
    inside, known, unknown = (row[name][0].to_numpy() for name in ("inside", "known", "unknown"))
    return ScopeScores(inside, known, unknown, int(row["kept"][0]), values)


def _share_at_or_above(ordered: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    if not len(ordered):
        return np.full(len(thresholds), np.nan)
    return (len(ordered) - np.searchsorted(ordered, thresholds, side="left")) / len(ordered)


def _share_below(ordered: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    if not len(ordered):
        return np.full(len(thresholds), np.nan)
    return np.searchsorted(ordered, thresholds, side="left") / len(ordered)


def _thresholds(*groups: np.ndarray, points: int = POINTS) -> np.ndarray:
    """POINTS quantiles of the sorted groups together (a stable sort merges the sorted runs in one pass)."""
    values = np.sort(np.concatenate([g for g in groups if len(g)] or [np.zeros(0)]), kind="stable")
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


def _outside(outside) -> np.ndarray:
    return np.sort(np.asarray([] if outside is None else outside, dtype=float))


def scope_tradeoff(table: View | ScopeScores, outside=None, points: int = POINTS) -> pd.DataFrame:
    """As the scope threshold moves: the share of the table's readable photos kept (all are of the model's
    subject) and the share of ``outside`` scores (out-of-scope photos, e.g. the rule's held-out ones) accepted."""
    inside, outside = scope_scores(table).inside, _outside(outside)
    thresholds = _thresholds(inside, outside, points=points)
    return pd.DataFrame(
        {
            "threshold": thresholds,
            "in_scope_kept": _share_at_or_above(inside, thresholds),
            "out_of_scope_accepted": _share_at_or_above(outside, thresholds),
        }
    )


def open_set_tradeoff(table: View | ScopeScores, points: int = POINTS) -> pd.DataFrame:
    """As the open-set threshold moves: the share of photos of known species kept, and of photos of species the
    model has no class for flagged as 'probably not one of its species'."""
    scores = scope_scores(table)
    thresholds = _thresholds(scores.known, scores.unknown, points=points)
    return pd.DataFrame(
        {
            "threshold": thresholds,
            "known_kept": _share_at_or_above(scores.known, thresholds),
            "unknown_flagged": _share_below(scores.unknown, thresholds),
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


def scope_effect(table: View | ScopeScores, outside=None) -> ScopeEffect:
    """Counts at the thresholds stored in the table (those of the rule it was evaluated with)."""
    scores = scope_scores(table)
    first = scores.first
    threshold, novelty = (float("nan") if first[c] is None else float(first[c]) for c in first if c != "scope_kind")
    outside = _outside(outside)
    known, unknown = scores.known, scores.unknown
    return ScopeEffect(
        kind="" if first["scope_kind"] is None else str(first["scope_kind"]),
        threshold=threshold,
        photos=len(scores.inside),
        kept=scores.kept,
        outside_photos=len(outside),
        outside_accepted=int((outside >= threshold).sum()),
        novelty_threshold=novelty,
        known_photos=len(known),
        unknown_photos=len(unknown),
        known_kept=0 if np.isnan(novelty) else int(len(known) - np.searchsorted(known, novelty, side="left")),
        unknown_flagged=0 if np.isnan(novelty) else int(np.searchsorted(unknown, novelty, side="left")),
        open_set_auroc=auroc(known, unknown, presorted=True),
    )
