"""What the scope check does on an evaluation table: how many of the model's own photos it keeps, how many
out-of-scope photos it would let through (the rule's held-out evidence), and how well the open-set score tells
known species from unknown ones, as the thresholds move. From the table's SCOPE_SCHEMA columns alone."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from explorer.scope import SCOPE_SCHEMA, auroc

POINTS = 201  # thresholds per curve: quantiles of the scores, so every part of the curve is drawn


def has_scope(table: pd.DataFrame) -> bool:
    """The table was built with the model's scope rule (explorer.scope.SCOPE_SCHEMA columns)."""
    return set(SCOPE_SCHEMA) <= set(table.columns)


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
    values = np.concatenate([g for g in groups if len(g)] or [np.zeros(0)])
    if not len(values):
        return np.zeros(0)
    return np.unique(np.quantile(values, np.linspace(0, 1, points)))


def _readable(table: pd.DataFrame, column: str) -> np.ndarray:
    ok = (table["status"] == "ok").to_numpy() & table[column].notna().to_numpy()
    return ok


def scope_tradeoff(table: pd.DataFrame, outside=None, points: int = POINTS) -> pd.DataFrame:
    """As the scope threshold moves: the share of the table's readable photos kept (all are of the model's
    subject) and the share of ``outside`` scores (out-of-scope photos, e.g. the rule's held-out ones) accepted."""
    inside = table.loc[_readable(table, "scope_score"), "scope_score"].to_numpy(float)
    outside = np.asarray([] if outside is None else outside, dtype=float)
    thresholds = _thresholds(inside, outside, points=points)
    return pd.DataFrame(
        {
            "threshold": thresholds,
            "in_scope_kept": _share_at_or_above(inside, thresholds),
            "out_of_scope_accepted": _share_at_or_above(outside, thresholds),
        }
    )


def _known_unknown(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    ok = _readable(table, "novelty_score")
    known = ok & table["in_vocab"].to_numpy(dtype=bool)
    scores = table["novelty_score"].to_numpy(float)
    return scores[known], scores[ok & ~known]


def open_set_tradeoff(table: pd.DataFrame, points: int = POINTS) -> pd.DataFrame:
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


def scope_effect(table: pd.DataFrame, outside=None) -> ScopeEffect:
    """Counts at the thresholds stored in the table (those of the rule it was evaluated with)."""
    readable = _readable(table, "scope_score")
    threshold = float(table["scope_threshold"].iloc[0]) if len(table) else float("nan")
    novelty = float(table["novelty_threshold"].iloc[0]) if len(table) else float("nan")
    outside = np.asarray([] if outside is None else outside, dtype=float)
    known, unknown = _known_unknown(table)
    return ScopeEffect(
        kind=str(table["scope_kind"].iloc[0]) if len(table) else "",
        threshold=threshold,
        photos=int(readable.sum()),
        kept=int(table["in_scope"].to_numpy(dtype=bool)[readable].sum()),
        outside_photos=len(outside),
        outside_accepted=int((outside >= threshold).sum()),
        novelty_threshold=novelty,
        known_photos=len(known),
        unknown_photos=len(unknown),
        known_kept=int((known >= novelty).sum()),
        unknown_flagged=int((unknown < novelty).sum()),
        open_set_auroc=auroc(known, unknown),
    )
