"""Where the model goes wrong, from the evaluation table alone: DataFrame in, DataFrame or dataclass out.

Every function takes the (filtered) table and never re-runs a model.
"""

from __future__ import annotations

import math
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
    arrays,
    as_lazy,
    as_text,
    rows_at,
    select,
    to_pandas,
)
from explorer.diagnose.schema import PHOTO_HASH, ROLLUP_RANKS
from explorer.taxa.synonymy import load_synonyms
from explorer.taxa.taxonomy import RANKS

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
    photo_set: str | None = None  # only the photos of this set (the table's ``source``); None: every set


# per-photo lists: slow to copy, and no chart reads them (the inspector reads a row's neighbours from the file)
UNUSED_COLUMNS = ("topk_class_index", "topk_name", "topk_prob", "label_neighbours", "label_neighbour_sims")


def for_dashboard(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the dashboard keeps it in memory: without the per-photo top-k lists, which no chart reads."""
    return table.drop(columns=[c for c in UNUSED_COLUMNS if c in table.columns])


def predicate(filters: Filters) -> pl.Expr:
    """The rows that pass the filters (readable photos only), as a polars expression; ValueError for bad filters."""
    if filters.outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {filters.outcome!r}")
    if filters.clade_rank is not None and filters.clade_rank not in RANKS:
        raise ValueError(f"clade rank must be one of {RANKS}, got {filters.clade_rank!r}")
    if filters.min_confidence > filters.max_confidence:
        raise ValueError(f"confidence range is empty: {filters.min_confidence} > {filters.max_confidence}")
    keep = OK & pl.col("confidence").is_between(filters.min_confidence, filters.max_confidence)
    if filters.clade_rank and filters.clade_name:
        keep &= pl.col(f"true_{filters.clade_rank}") == filters.clade_name
    if filters.outcome != "all":
        keep &= pl.col("correct_1") == (filters.outcome == "correct")
    if filters.exclude_noted:
        keep &= pl.col("note").is_null() | (pl.col("note") == "")
    if filters.in_vocab_only:
        keep &= IN_VOCAB
    if filters.photo_set:
        keep &= pl.col("source").cast(pl.String) == filters.photo_set
    return keep.fill_null(False)


def filter_view(frame: View, filters: Filters) -> Subset | pl.LazyFrame:
    """The dashboard's view: a lazy query, so each chart reads only its own columns of the rows kept. Pass the
    table's polars copy (frames.to_frame): the view is then a Subset, which gathers the few rows a chart shows by
    position; a pandas table is converted whole on every call."""
    if isinstance(frame, pl.DataFrame) and ROW in frame.columns:
        return Subset(frame, predicate(filters))
    return as_lazy(frame).filter(predicate(filters))


def filter_table(table: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    """Rows that pass the filters (readable photos only), as pandas; the input is not modified."""
    keep = select(table, predicate(filters)).to_series().to_numpy()
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


def summary(table: View) -> TableSummary:
    """Counts and headline accuracies of a view."""
    known = OK & IN_VOCAB
    noted = pl.col("note").is_not_null() & (pl.col("note") != "")
    row = select(
        table,
        photos=pl.len(),
        readable=OK.sum(),
        out_of_vocabulary=(OK & ~IN_VOCAB).sum(),
        species=pl.col("true_name").filter(OK).drop_nulls().n_unique(),
        noted=(OK & noted).sum(),
        top1=pl.col("correct_1").filter(known).cast(pl.Float64).mean(),
        topk=pl.col("correct_k").filter(known).cast(pl.Float64).mean(),
    ).row(0, named=True)
    counts = {k: int(row[k] or 0) for k in ("photos", "readable", "out_of_vocabulary", "species", "noted")}
    top1, topk = (float("nan") if row[k] is None else float(row[k]) for k in ("top1", "topk"))
    return TableSummary(unreadable=counts["photos"] - counts["readable"], top1=top1, topk=topk, **counts)


def errors_by_rank(table: View) -> pd.DataFrame:
    """Photos per rank of divergence (the blog's histogram), as a share of all photos and of errors."""
    grouped = as_text(
        as_lazy(table, pl.col("divergence_rank")).group_by("divergence_rank").len().collect(), "divergence_rank"
    )
    found = dict(zip(grouped["divergence_rank"].to_list(), grouped["len"].to_list()))
    counts = pd.Series([found.get(r, 0) for r in DIVERGENCE_ORDER], index=DIVERGENCE_ORDER, dtype="int64")
    total, errors = sum(found.values()), counts.drop("correct").sum()
    return pd.DataFrame(
        {
            "rank": counts.index,
            "photos": counts.to_numpy(),
            "share_of_photos": counts.to_numpy() / max(total, 1),
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


def accuracy_by_clade(table: View, rank: str, min_photos: int = 1) -> pd.DataFrame:
    """Top-1 accuracy per clade at ``rank`` with a Wilson interval, best first by the interval's lower bound
    (so a clade with 3 lucky photos does not top the list)."""
    grouped = _clade_counts(table, f"true_{rank}")
    grouped = grouped[grouped["count"] >= max(min_photos, 1)]
    low, high = wilson_interval(grouped["sum"].to_numpy(), grouped["count"].to_numpy())
    out = pd.DataFrame(
        {
            "clade": grouped["clade"].to_numpy(dtype=object),
            "photos": grouped["count"].to_numpy(dtype=np.int64),
            "correct": grouped["sum"].to_numpy(dtype=np.int64),
            "accuracy": (grouped["sum"] / grouped["count"]).to_numpy(dtype=float),
            "ci_low": low,
            "ci_high": high,
        }
    )
    return out.sort_values(["ci_low", "photos"], ascending=[False, False], kind="stable").reset_index(drop=True)


def _clade_counts(table: View, column: str) -> pd.DataFrame:
    """Photos and correct top-1 per value of ``column`` (clade names sorted, the unknown clade last)."""
    lazy = as_lazy(table, [pl.col(column), pl.col("correct_1")])
    grouped = lazy.group_by(clade=pl.col(column)).agg(sum=pl.col("correct_1").sum(), count=pl.len()).collect()
    grouped = as_text(grouped, "clade").sort("clade", nulls_last=True).to_pandas()
    grouped["clade"] = grouped["clade"].fillna(UNKNOWN)
    return grouped


def worst_clades(table: pd.DataFrame, rank: str, min_photos: int = 5, n: int = 3) -> pd.DataFrame:
    """The n clades whose accuracy interval's upper bound is lowest (surely bad, not just unlucky)."""
    ranked = accuracy_by_clade(table, rank, min_photos)
    return ranked.sort_values(["ci_high", "photos"], ascending=[True, False]).head(n).reset_index(drop=True)


def confused_pairs(table: View, top: int = 15) -> pd.DataFrame:
    """The most frequent (truth, top-1) pairs among errors, with the rank at which they diverge."""
    keys = ["true_name", "pred_name", "divergence_rank"]
    errors = ~pl.col("correct_1") & IN_VOCAB
    lazy = as_lazy(table, [*map(pl.col, keys), errors]).filter(errors)
    pairs, errors = pl.collect_all([lazy.group_by(keys).agg(photos=pl.len()), lazy.select(pl.len())])
    pairs = as_text(pairs, *keys).sort(["photos", *keys], descending=[True, False, False, False]).head(top)
    out = pairs.to_pandas()
    if out.empty:
        return pd.DataFrame(columns=["true_name", "pred_name", "photos", "divergence_rank", "share_of_errors"])
    out = out[["true_name", "pred_name", "photos", "divergence_rank"]].astype({k: object for k in keys})
    out["photos"] = out["photos"].astype(np.int64)
    out["share_of_errors"] = out["photos"] / int(errors.item())
    return out.reset_index(drop=True)


def rollup_tradeoff(table: View, thresholds=None) -> pd.DataFrame:
    """As the roll-up threshold moves: how often an answer is given at each rank, how often it is right,
    and how often the model abstains (no clade reaches the threshold)."""
    thresholds = np.round(np.arange(0.5, 1.0, 0.05), 2) if thresholds is None else np.asarray(thresholds, float)
    ranks = ["species", *ROLLUP_RANKS]
    probs, right = _rollup_arrays(table)
    order = np.argsort(thresholds)
    sorted_t = thresholds[order]
    n = len(probs[0])
    # The answer is the first rank whose probability reaches t. With a running maximum over the ranks that is
    # "every lower rank < t <= this rank", so each count below is a count of values at or above t.
    shares, correct = {}, np.zeros(len(sorted_t))
    reach_before = np.full(n, -np.inf)
    answered_before = np.zeros(len(sorted_t))
    slots_before = np.zeros(n, dtype=np.uint8)  # thresholds reached by the lower ranks (none yet)
    width = len(sorted_t) + 1  # slots 0..T; a second block of width counts the photos whose clade is right
    for rank, prob, good in zip(ranks, probs, right):
        reach = np.maximum(reach_before, prob)
        slots = _slots(sorted_t, reach)  # how many thresholds the reach passes
        block = good * np.uint8(width) if 2 * width < 256 else good.astype(np.intp) * width
        now, lower = (np.bincount(s + block, minlength=2 * width) for s in (slots, slots_before))
        answered = _reaching(now[:width] + now[width:])  # answered at this rank or a lower one
        shares[f"at_{rank}"] = (answered - answered_before) / max(n, 1)
        # right at this rank: the truth is in this rank's clade, for thresholds passed here and not below
        correct += _reaching(now[width:]) - _reaching(lower[width:])
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


def rollup_answers(table: View, threshold: float) -> pd.DataFrame:
    """At one threshold, per rank (species first, then "none": no clade reaches it): how many readable photos the
    roll-up answers at that rank and how many of those answers hold the truth (the first rank whose running
    maximum of the clade probabilities reaches the threshold, as in rollup_tradeoff)."""
    probs, right = _rollup_arrays(table)
    ranks = ["species", *ROLLUP_RANKS]
    reached = np.maximum.accumulate(np.vstack(probs), axis=0) >= threshold  # (ranks, photos); NaN reaches none
    first = np.where(reached.any(axis=0), reached.argmax(axis=0), len(ranks))
    good = np.vstack(right).astype(bool)
    rows = [
        {"rank": rank, "photos": int((first == i).sum()), "right": int(good[i][first == i].sum())}
        for i, rank in enumerate(ranks)
    ]
    return pd.DataFrame([*rows, {"rank": "none", "photos": int((first == len(ranks)).sum()), "right": 0}])


def _rollup_arrays(table: View) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per rank (species first), the readable photos' answer probability and whether that clade holds the truth."""
    species = pl.when(pl.col("pred_is_background")).then(0.0).otherwise(pl.col("confidence"))
    probs = {"species": species, **{r: pl.col(f"rollup_prob_{r}").cast(pl.Float64) for r in ROLLUP_RANKS}}
    right = {"species": pl.col("correct_1"), **{r: pl.col(f"rollup_correct_{r}") for r in ROLLUP_RANKS}}
    right = {k: v.fill_null(False).cast(pl.UInt8) for k, v in right.items()}  # 0/1 bytes: no bit unpacking
    exprs = {f"p_{k}": v for k, v in probs.items()} | {f"r_{k}": v for k, v in right.items()}
    values = arrays(table, where=OK, **exprs)
    return [values[f"p_{k}"] for k in probs], [values[f"r_{k}"] for k in right]


def _slots(sorted_thresholds: np.ndarray, values: np.ndarray) -> np.ndarray:
    """How many thresholds each value reaches (= searchsorted side="right", ten times faster for a handful of
    thresholds: one byte-wide comparison per threshold). NaN reaches none."""
    slots = np.zeros(len(values), dtype=np.uint8 if len(sorted_thresholds) < 255 else np.int64)
    for threshold in sorted_thresholds:
        slots += (values >= threshold).view(np.uint8)
    return slots


def _reaching(counts: np.ndarray) -> np.ndarray:
    """From photos per slot (0..T), for each sorted threshold j how many reach it (slot > j)."""
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
    matched_by: str = "photo_id"  # the column the photos were matched on (photo_key)
    errors_a: int = 0  # top-1 errors of each model on the compared photos
    errors_b: int = 0
    fixed: int = 0  # compared photos b gets right and a wrong
    broke: int = 0  # compared photos b gets wrong and a right

    @property
    def mcnemar_p(self) -> float:
        """McNemar's exact test (two-sided) that the two models' error rates on these photos are equal."""
        return mcnemar_exact(self.fixed, self.broke)


def mcnemar_exact(fixed: int, broke: int) -> float:
    """Two-sided exact McNemar p-value: twice the binomial(n = fixed + broke, 1/2) tail of the smaller count."""
    n, k = fixed + broke, min(fixed, broke)
    if n == 0:
        return 1.0
    log_half = n * math.log(0.5)
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half for i in range(k + 1)]
    top = max(terms)
    return min(1.0, 2 * math.exp(top) * sum(math.exp(t - top) for t in terms))


def compare_models(a: pd.DataFrame, b: pd.DataFrame, rank: str = "family") -> Comparison:
    """Per-clade top-1 accuracy of two models on the photos of ``a`` (a filtered view) that ``b`` also holds and
    that both models can name: a photo of a species without a class in one model is not that model's error."""
    key = photo_key(a, b)
    columns = ["photo_id", "true_name", f"true_{rank}", "in_vocab", "correct_1", "pred_name", "divergence_rank", "path"]
    left = a[a["status"] == "ok"]
    left = left[columns].assign(_photo=_photo_keys(left, key))
    right = b[b["status"] == "ok"]
    right = right[["in_vocab", "correct_1", "pred_name", "divergence_rank"]].assign(_photo=_photo_keys(right, key))
    left = left.astype({"photo_id": str, "true_name": str, f"true_{rank}": object, "pred_name": str})
    right = right.astype({"pred_name": str}).drop_duplicates("_photo")
    shared = left.merge(right, on="_photo", suffixes=("_a", "_b")).drop(columns="_photo")
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
    disagree = both[_accepted(both["pred_name_a"]) != _accepted(both["pred_name_b"])].reset_index(drop=True)
    right_a, right_b = (both[f"correct_1_{s}"].astype(bool).to_numpy() for s in ("a", "b"))
    return Comparison(
        per.sort_values(["difference", "clade"]).reset_index(drop=True),
        disagree,
        compared=len(both),
        not_shared=len(left) - len(shared),
        out_of_vocabulary=len(shared) - len(both),
        by_rank=_errors_side_by_side(both),
        matched_by=key,
        errors_a=int((~right_a).sum()),
        errors_b=int((~right_b).sum()),
        fixed=int((~right_a & right_b).sum()),
        broke=int((right_a & ~right_b).sum()),
    )


def photo_key(a: pd.DataFrame, b: pd.DataFrame) -> str:
    """What two tables' photos are matched on: the photos' content (``photo_hash``) when both tables hold it, else
    the photo id (source and path as written: a table from before content hashes)."""
    return PHOTO_HASH if PHOTO_HASH in a.columns and PHOTO_HASH in b.columns else "photo_id"


def _photo_keys(rows: pd.DataFrame, key: str) -> np.ndarray:
    """Each row's match key: its content hash, or its photo id where the file could not be hashed."""
    ids = rows["photo_id"].astype(str).to_numpy(object)
    if key != PHOTO_HASH:
        return ids
    hashes = rows[PHOTO_HASH].astype(object).to_numpy()
    return np.where(pd.isna(hashes), ids, hashes)


def _accepted(names: pd.Series) -> np.ndarray:
    """Each name's accepted name (explorer.taxa.synonymy): two models' classes *Anas strepera* and *Mareca
    strepera* are one species, so their predictions agree; string equality counted 102 such photos as disagreeing."""
    synonyms = load_synonyms()
    unique, positions = np.unique(names.astype(str).to_numpy(), return_inverse=True)
    return np.array([synonyms.canonical(n) for n in unique], dtype=object)[positions]


def _errors_side_by_side(both: pd.DataFrame) -> pd.DataFrame:
    """Where each model's errors leave the truth, on the same photos: counts and shares of its errors."""
    frame = pd.DataFrame({"rank": [r for r in DIVERGENCE_ORDER if r != "correct"]})
    for side in ("a", "b"):
        counts = both[f"divergence_rank_{side}"].astype(object).value_counts()
        errors = counts.drop("correct", errors="ignore")
        frame[f"errors_{side}"] = frame["rank"].map(errors).fillna(0).astype(int).to_numpy()
        frame[f"share_{side}"] = frame[f"errors_{side}"] / max(int(errors.sum()), 1)
    return frame


def clade_tree(table: View, ranks=("class", "order", "family", "genus")) -> pd.DataFrame:
    """Nested clades (ids 'Aves/Passeriformes/...') with photo counts and top-1 accuracy, for the sunburst.

    One groupby at the deepest rank; the coarser rings are sums of that small result."""
    keys = [f"true_{r}" for r in ranks]
    lazy = as_lazy(table, [*map(pl.col, keys), pl.col("correct_1")])
    leaves = lazy.group_by(keys).agg(sum=pl.col("correct_1").sum(), count=pl.len()).collect()
    leaves = as_text(leaves, *keys).with_columns(pl.col(keys).fill_null(UNKNOWN))
    parts = []
    for depth in range(len(keys)):
        path = keys[: depth + 1]
        level = leaves.group_by(path).agg(pl.col("sum", "count").sum()).sort(path)
        parent = pl.concat_str(keys[:depth], separator="/") if depth else pl.lit("")
        parts.append(
            level.select(
                id=pl.concat_str(path, separator="/"),
                label=pl.col(keys[depth]),
                parent=parent,
                photos=pl.col("count").cast(pl.Int64),
                accuracy=pl.col("sum") / pl.col("count"),
            )
        )
    return pl.concat(parts).to_pandas()


def error_rows(
    table: View, limit: int | None = 200, keep_row: bool = False, only: list[str] | None = None
) -> pd.DataFrame:
    """Errors (readable photos, wrong top-1), the most confident first (ties in table order): the ones worth a
    look. ``keep_row``: with each row's ``ROW`` (see frames.to_pandas); ``only``: just these columns (a gallery
    and a table need a handful of the ~90)."""
    by = [pl.col("confidence"), pl.col(ROW)]
    errors = as_lazy(table).filter(OK & ~pl.col("correct_1")).select(ROW, "confidence")  # narrow; then gather
    if limit is not None:
        errors = errors.top_k(limit, by=by, reverse=[False, True])
    names = None if only is None else list(dict.fromkeys([*only, "confidence", ROW]))
    rows = rows_at(table, np.sort(errors.collect()[ROW].to_numpy()), names)
    rows = rows.sort(by, descending=[True, False])
    return to_pandas(rows if only is None else rows.select(list(dict.fromkeys([*only, ROW]))), keep_row=keep_row)
