"""Where the model goes wrong, from the evaluation table alone: DataFrame in, DataFrame or dataclass out.

Every function takes the (filtered) table and never re-runs a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from explorer.diagnose.schema import ROLLUP_RANKS
from explorer.taxonomy import RANKS

DIVERGENCE_ORDER = [
    "correct",
    "species",
    "genus",
    "family",
    "order",
    "class",
    "phylum",
    "kingdom",
    "no prediction",
    "unknown",
]
UNKNOWN = "(unknown)"
OUTCOMES = ("all", "correct", "incorrect")


@dataclass(frozen=True)
class Filters:
    """What every chart obeys."""

    clade_rank: str | None = None
    clade_name: str | None = None
    min_confidence: float = 0.0
    max_confidence: float = 1.0
    outcome: str = "all"
    exclude_noted: bool = False
    in_vocab_only: bool = False


UNUSED_COLUMNS = ("topk_class_index", "topk_name", "topk_prob")  # per-photo lists: slow to copy, never shown


def for_dashboard(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the dashboard keeps it in memory: without the per-photo top-k lists, which every filter
    would otherwise copy (a third of a second at a million rows) and no chart reads."""
    return table.drop(columns=[c for c in UNUSED_COLUMNS if c in table.columns])


def filter_table(table: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    """Rows that pass the filters (readable photos only); the input is not modified."""
    if filters.outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {filters.outcome!r}")
    if filters.clade_rank is not None and filters.clade_rank not in RANKS:
        raise ValueError(f"clade rank must be one of {RANKS}, got {filters.clade_rank!r}")
    if filters.min_confidence > filters.max_confidence:
        raise ValueError(f"confidence range is empty: {filters.min_confidence} > {filters.max_confidence}")
    keep = (table["status"] == "ok") & table["confidence"].between(filters.min_confidence, filters.max_confidence)
    if filters.clade_rank and filters.clade_name:
        keep &= table[f"true_{filters.clade_rank}"] == filters.clade_name
    if filters.outcome != "all":
        keep &= table["correct_1"] == (filters.outcome == "correct")
    if filters.exclude_noted:
        keep &= table["note"].isna() | (table["note"] == "")
    if filters.in_vocab_only:
        keep &= table["in_vocab"]
    return table[keep]


@dataclass(frozen=True)
class TableSummary:
    """Counts and headline accuracies of a (filtered) table; top-1/top-k over readable in-vocabulary photos."""

    photos: int
    readable: int
    unreadable: int
    out_of_vocabulary: int
    species: int
    noted: int
    top1: float
    topk: float


def summary(table: pd.DataFrame) -> TableSummary:
    """Counts and headline accuracies of a table."""
    ok = (table["status"] == "ok").to_numpy()
    in_vocab = ok & table["in_vocab"].to_numpy(dtype=bool)
    noted = table["note"].notna().to_numpy() & (table["note"] != "").to_numpy()
    correct_1, correct_k = table["correct_1"].to_numpy(dtype=bool), table["correct_k"].to_numpy(dtype=bool)
    return TableSummary(
        photos=len(table),
        readable=int(ok.sum()),
        unreadable=int((~ok).sum()),
        out_of_vocabulary=int((ok & ~in_vocab).sum()),
        species=int(table["true_name"][ok].nunique()),
        noted=int((ok & noted).sum()),
        top1=float(correct_1[in_vocab].mean()) if in_vocab.any() else float("nan"),
        topk=float(correct_k[in_vocab].mean()) if in_vocab.any() else float("nan"),
    )


def errors_by_rank(table: pd.DataFrame) -> pd.DataFrame:
    """Photos per rank of divergence (the blog's histogram), as a share of all photos and of errors."""
    counts = table["divergence_rank"].value_counts().reindex(DIVERGENCE_ORDER, fill_value=0)
    errors = counts.drop("correct").sum()
    return pd.DataFrame(
        {
            "rank": counts.index,
            "photos": counts.to_numpy(),
            "share_of_photos": counts.to_numpy() / max(len(table), 1),
            "share_of_errors": np.where(counts.index == "correct", np.nan, counts.to_numpy() / max(errors, 1)),
        }
    ).reset_index(drop=True)


def wilson_interval(correct: np.ndarray, total: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """95 % Wilson score interval for k successes in n trials (sane for small n, unlike k/n ± ...)."""
    k, n = np.asarray(correct, float), np.asarray(total, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def accuracy_by_clade(table: pd.DataFrame, rank: str, min_photos: int = 1) -> pd.DataFrame:
    """Top-1 accuracy per clade at ``rank`` with a Wilson interval, best first by the interval's lower bound
    (so a clade with 3 lucky photos does not top the list)."""
    grouped = table.groupby(f"true_{rank}", observed=True, dropna=False)["correct_1"].agg(["sum", "count"])
    grouped = grouped[grouped["count"] >= max(min_photos, 1)]
    grouped.index = [UNKNOWN if pd.isna(v) else str(v) for v in grouped.index]
    low, high = wilson_interval(grouped["sum"].to_numpy(), grouped["count"].to_numpy())
    out = pd.DataFrame(
        {
            "clade": grouped.index,
            "photos": grouped["count"].to_numpy(),
            "correct": grouped["sum"].astype(int).to_numpy(),
            "accuracy": (grouped["sum"] / grouped["count"]).to_numpy(),
            "ci_low": low,
            "ci_high": high,
        }
    )
    return out.sort_values(["ci_low", "photos"], ascending=[False, False]).reset_index(drop=True)


def worst_clades(table: pd.DataFrame, rank: str, min_photos: int = 5, n: int = 3) -> pd.DataFrame:
    """The n clades whose accuracy interval's upper bound is lowest (surely bad, not just unlucky)."""
    ranked = accuracy_by_clade(table, rank, min_photos)
    return ranked.sort_values(["ci_high", "photos"], ascending=[True, False]).head(n).reset_index(drop=True)


def confused_pairs(table: pd.DataFrame, top: int = 15) -> pd.DataFrame:
    """The most frequent (truth, top-1) pairs among errors, with the rank at which they diverge."""
    errors = table[~table["correct_1"] & table["in_vocab"]]
    if errors.empty:
        return pd.DataFrame(columns=["true_name", "pred_name", "photos", "divergence_rank", "share_of_errors"])
    pairs = errors.groupby(["true_name", "pred_name", "divergence_rank"], observed=True).size()
    pairs = pairs[pairs > 0].nlargest(top, keep="first").rename("photos").reset_index()
    pairs = pairs.astype({"true_name": str, "pred_name": str, "divergence_rank": str})
    pairs = pairs.sort_values(["photos", "true_name", "pred_name"], ascending=[False, True, True])
    pairs["share_of_errors"] = pairs["photos"] / len(errors)
    return pairs.reset_index(drop=True)


def rollup_tradeoff(table: pd.DataFrame, thresholds=None) -> pd.DataFrame:
    """As the roll-up threshold moves: how often an answer is given at each rank, how often it is right,
    and how often the model abstains (no clade reaches the threshold)."""
    thresholds = np.round(np.arange(0.5, 1.0, 0.05), 2) if thresholds is None else np.asarray(thresholds, float)
    ok = (table["status"] == "ok").to_numpy()
    ranks = ["species", *ROLLUP_RANKS]
    species = np.where(table["pred_is_background"].to_numpy(dtype=bool), 0.0, table["confidence"].to_numpy(float))
    probs = [species] + [table[f"rollup_prob_{r}"].to_numpy(float) for r in ROLLUP_RANKS]
    right = [table["correct_1"].to_numpy(bool)] + [table[f"rollup_correct_{r}"].to_numpy(bool) for r in ROLLUP_RANKS]
    if not ok.all():
        probs, right = [p[ok] for p in probs], [r[ok] for r in right]
    order = np.argsort(thresholds)
    sorted_t = thresholds[order]
    n = int(ok.sum())
    # The answer is the first rank whose probability reaches t. With a running maximum over the ranks that is
    # "every lower rank < t <= this rank", so each count below is a count of values at or above t.
    shares, correct = {}, np.zeros(len(sorted_t))
    reach_before = np.full(n, -np.inf)
    answered_before = np.zeros(len(sorted_t))
    slots_before = np.zeros(n, dtype=np.int64)  # thresholds reached by the lower ranks (none yet)
    for rank, prob, good in zip(ranks, probs, right):
        reach = np.maximum(reach_before, prob)
        slots = np.searchsorted(sorted_t, reach, side="right")  # how many thresholds the reach passes
        answered = _count_slots(slots, len(sorted_t))  # answered at this rank or a lower one
        shares[f"at_{rank}"] = (answered - answered_before) / max(n, 1)
        # right at this rank: the truth is in this rank's clade, for thresholds passed here and not below
        correct += _count_slots(slots, len(sorted_t), good) - _count_slots(slots_before, len(sorted_t), good)
        reach_before, answered_before, slots_before = reach, answered, slots
    out = pd.DataFrame(
        {
            "threshold": sorted_t,
            "answered": answered_before / max(n, 1),
            "abstained": 1 - answered_before / max(n, 1),
            "right_when_answered": correct / np.maximum(answered_before, 1),
            **shares,
        }
    )
    if n == 0:
        out.loc[:, out.columns != "threshold"] = np.nan
    return out.iloc[np.argsort(order)].reset_index(drop=True)


def _count_slots(slots: np.ndarray, thresholds: int, weights: np.ndarray | None = None) -> np.ndarray:
    """For each sorted threshold j, how many values reach it (slot > j), optionally counting only ``weights``."""
    counts = np.bincount(slots, weights=weights, minlength=thresholds + 1)
    return counts[::-1].cumsum()[::-1][1:]


@dataclass(frozen=True)
class Comparison:
    """Two models on the same photos: per-clade accuracy, the photos where their top-1 differ, and the counts."""

    per_clade: pd.DataFrame
    disagree: pd.DataFrame
    compared: int  # photos in view that both tables hold and both models have a class for
    not_shared: int  # photos in view that the second table does not hold
    out_of_vocabulary: int  # shared photos whose species one model (or both) has no class for
    by_rank: pd.DataFrame | None = None  # per rank of divergence: photos and share of errors, for a and b


def compare_models(a: pd.DataFrame, b: pd.DataFrame, rank: str = "family") -> Comparison:
    """Per-clade top-1 accuracy of two models on the photos of ``a`` (a filtered view) that ``b`` also holds and
    that both models can name: a photo of a species without a class in one model is not that model's error."""
    columns = ["photo_id", "true_name", f"true_{rank}", "in_vocab", "correct_1", "pred_name", "divergence_rank", "path"]
    left = a[a["status"] == "ok"][columns]
    right = b[b["status"] == "ok"][["photo_id", "in_vocab", "correct_1", "pred_name", "divergence_rank"]]
    left = left.astype({"photo_id": str, "true_name": str, f"true_{rank}": object, "pred_name": str})
    right = right.astype({"photo_id": str, "pred_name": str})
    shared = left.merge(right, on="photo_id", suffixes=("_a", "_b"))
    both = shared[shared["in_vocab_a"].astype(bool) & shared["in_vocab_b"].astype(bool)]
    clades = both[f"true_{rank}"].fillna(UNKNOWN)
    per = both.groupby(clades)[["correct_1_a", "correct_1_b"]].agg(["mean", "count"])
    per = pd.DataFrame(
        {
            "clade": per.index,
            "photos": per[("correct_1_a", "count")].to_numpy(),
            "accuracy_a": per[("correct_1_a", "mean")].to_numpy(float),
            "accuracy_b": per[("correct_1_b", "mean")].to_numpy(float),
        }
    )
    per["difference"] = per["accuracy_b"] - per["accuracy_a"]
    disagree = both[both["pred_name_a"] != both["pred_name_b"]].reset_index(drop=True)
    return Comparison(
        per.sort_values(["difference", "clade"]).reset_index(drop=True),
        disagree,
        compared=len(both),
        not_shared=len(left) - len(shared),
        out_of_vocabulary=len(shared) - len(both),
        by_rank=_errors_side_by_side(both),
    )


def _errors_side_by_side(both: pd.DataFrame) -> pd.DataFrame:
    """Where each model's errors leave the truth, on the same photos: counts and shares of its errors."""
    frame = pd.DataFrame({"rank": [r for r in DIVERGENCE_ORDER if r != "correct"]})
    for side in ("a", "b"):
        counts = both[f"divergence_rank_{side}"].astype(object).value_counts()
        errors = counts.drop("correct", errors="ignore")
        frame[f"errors_{side}"] = frame["rank"].map(errors).fillna(0).astype(int).to_numpy()
        frame[f"share_{side}"] = frame[f"errors_{side}"] / max(int(errors.sum()), 1)
    return frame


def clade_tree(table: pd.DataFrame, ranks=("class", "order", "family", "genus")) -> pd.DataFrame:
    """Nested clades (ids 'Aves/Passeriformes/...') with photo counts and top-1 accuracy, for the sunburst.

    One groupby at the deepest rank; the coarser rings are sums of that small result."""
    keys = [f"true_{r}" for r in ranks]
    leaves = table.groupby(keys, observed=True, dropna=False)["correct_1"].agg(["sum", "count"]).reset_index()
    leaves = leaves[leaves["count"] > 0]
    names = leaves[keys].astype(object).where(leaves[keys].notna(), UNKNOWN).astype(str)
    names[["sum", "count"]] = leaves[["sum", "count"]].to_numpy()
    parts = []
    for depth in range(len(keys)):
        level = names.groupby(keys[: depth + 1], sort=True)[["sum", "count"]].sum().reset_index()
        ids = level[keys[: depth + 1]].agg("/".join, axis=1) if len(level) else pd.Series([], dtype=str)
        parents = level[keys[:depth]].agg("/".join, axis=1) if depth and len(level) else ""
        parts.append(
            pd.DataFrame(
                {
                    "id": ids,
                    "label": level[keys[depth]],
                    "parent": parents,
                    "photos": level["count"],
                    "accuracy": level["sum"] / level["count"],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def error_rows(table: pd.DataFrame, limit: int | None = 200) -> pd.DataFrame:
    """Errors (readable photos, wrong top-1), the most confident first: the ones worth a look."""
    errors = table[(table["status"] == "ok") & ~table["correct_1"]]
    if limit is not None:
        errors = errors.nlargest(limit, "confidence", keep="first")
    return errors.sort_values("confidence", ascending=False, kind="stable").reset_index(drop=True)
