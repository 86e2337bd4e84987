"""Is the label wrong? A per-photo ``label_issue_score`` from two independent witnesses, read at four ranks.

The model: full support at a rank where its top-1 is in the label's clade; elsewhere the probability it gives the
photo's label, and the label's genus, family and order (summed over the stored top-k plus the label itself, a lower
bound), each against that clade's usual level on this table (the mean over the photos labelled with it, drawn
toward the median clade by ``PRIOR_WEIGHT`` photos, so a clade with one or no photo gets the median, not its own
value), capped at 1. The photo's nearest labelled neighbours in the model's embedding:
the share of its ``NEIGHBOURS`` nearest photos that carry the same species (genus, family, order), out of the share
the clade's size allows (a species with 3 photos can give at most 2 of 10 neighbours; a clade with no other photo
gives no evidence, not a vote against).

At each rank the support is the mean of the witnesses' supports (each capped at 1); ``label_issue_score`` is one
minus the mean support over the four ranks, so a label wrong at species but right at genus scores about 0.25 and
one wrong at order about 1. ``label_issue_rank`` names the coarsest rank whose support is under one half (the rank
up to which the label looks wrong). Also stored: confident learning's own verdict (``label_cl_flag``: the photo
sits off the diagonal of cleanlab's confident joint, computed with the same per-class thresholds over the top-k,
and ``label_cl_guess``, the class it points to), and the neighbours themselves as evidence.

Bounded memory at any class count: per-class levels are one number per class (a group-by), the model's side reads
the stored top-k only, and neighbours come from a chunked matrix product (``CHUNK`` rows at a time). Photos whose
species the model has no class for get NaN: their error is the open set's, not the label's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from explorer.diagnose.schema import LABEL_ISSUE_SCHEMA
from explorer.represent.embeddings import EmbeddingStore
from explorer.taxa.taxonomy import Taxonomy

LABEL_RANKS = ("species", "genus", "family", "order")
NEIGHBOURS = 10
PRIOR_WEIGHT = 3.0  # photos at the median clade level added to every clade's mean
DOUBT = 0.5  # support below this at a rank: the label looks wrong at that rank
CHUNK = 512  # rows of the neighbour search at a time: CHUNK x n similarities in memory
CL_TOLERANCE = 1e-6  # cleanlab's: a probability within this of its threshold is confident

LABEL_ISSUE_COLUMNS = tuple(LABEL_ISSUE_SCHEMA)


@dataclass(frozen=True)
class Neighbours:
    """Each row's nearest other photos: positions in the table (-1: none) and cosine similarities."""

    positions: np.ndarray  # (n, k) int64
    sims: np.ndarray  # (n, k) float32


def nearest_neighbours(unit: np.ndarray, usable: np.ndarray, k: int = NEIGHBOURS, chunk: int = CHUNK) -> Neighbours:
    """The ``k`` most similar other usable rows of every usable row (``unit``: L2-normalised rows), in chunks of
    ``chunk`` rows; rows that are not usable get none (-1)."""
    n = len(unit)
    positions = np.full((n, k), -1, np.int64)
    sims = np.full((n, k), np.nan, np.float32)
    rows = np.flatnonzero(usable)
    pool = unit[rows].astype(np.float32)
    take = min(k, len(rows) - 1)
    if take <= 0:
        return Neighbours(positions, sims)
    for start in range(0, len(rows), chunk):
        block = pool[start : start + chunk] @ pool.T  # (chunk, usable)
        block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf  # not itself
        top = np.argpartition(-block, take - 1, axis=1)[:, :take]
        order = np.argsort(-np.take_along_axis(block, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        positions[rows[start : start + chunk], :take] = rows[top]
        sims[rows[start : start + chunk], :take] = np.take_along_axis(block, top, axis=1)
    return Neighbours(positions, sims)


def clade_levels(clades: pd.Series, values: np.ndarray, prior_weight: float = PRIOR_WEIGHT) -> pd.Series:
    """{clade: its usual value}: the mean of ``values`` over the rows of each clade, drawn toward the median of
    those means by ``prior_weight`` rows (NaN values and clades are left out)."""
    frame = pd.DataFrame({"clade": clades.to_numpy(object), "value": values}).dropna()
    grouped = frame.groupby("clade", sort=True)["value"].agg(["sum", "count", "mean"])
    if grouped.empty:
        return pd.Series(dtype=float)
    median = float(grouped["mean"].median())
    return (grouped["sum"] + prior_weight * median) / (grouped["count"] + prior_weight)


def class_lineages(table: pd.DataFrame, taxonomy: Taxonomy | None) -> dict[int, dict[str, str | None]]:
    """{class index: {rank: clade}} of every class the table names: from its truth and top-1 columns, then the
    taxonomy for a top-k class that is neither."""
    known: dict[int, dict[str, str | None]] = {}
    for side in ("pred", "true"):
        cols = [f"{side}_class_index", *(f"{side}_{r}" for r in LABEL_RANKS)]
        for row in table[cols].drop_duplicates(f"{side}_class_index").itertuples(index=False):
            if int(row[0]) >= 0:
                known.setdefault(int(row[0]), dict(zip(LABEL_RANKS, (_name(v) for v in row[1:]))))
    if "topk_class_index" in table.columns:
        for indices, names in zip(table["topk_class_index"], table["topk_name"]):
            for index, name in zip(indices, names):
                if int(index) not in known:
                    lineage = taxonomy.lineage_for(str(name)) if taxonomy is not None else None
                    known[int(index)] = {r: (lineage.at(r) if lineage else None) for r in LABEL_RANKS}
                    if lineage is None:
                        known[int(index)]["species"] = str(name)
    return known


def _name(value) -> str | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) or value == "" else str(value)


def model_clade_probs(table: pd.DataFrame, lineages: dict[int, dict]) -> dict[str, np.ndarray]:
    """{rank: (n,) probability the model gives the label's clade}: the label's own probability at species; at a
    higher rank the stored top-k probabilities of the clade's classes, plus the label's when it is not among them
    (a lower bound: classes outside the top-k are not counted)."""
    n = len(table)
    given = table["true_class_index"].to_numpy(np.int64)
    true_prob = table["true_prob"].to_numpy(np.float64)
    out = {"species": true_prob.copy()}
    indices, probs = table["topk_class_index"].tolist(), table["topk_prob"].tolist()
    for rank in LABEL_RANKS[1:]:
        truth = table[f"true_{rank}"].map(_name).tolist()
        values = np.full(n, np.nan)
        for i in range(n):
            if given[i] < 0 or np.isnan(true_prob[i]):
                continue
            in_clade = [
                float(p)
                for c, p in zip(indices[i], probs[i])
                if truth[i] and lineages.get(int(c), {}).get(rank) == truth[i]
            ]
            listed = given[i] in {int(c) for c in indices[i]}
            values[i] = sum(in_clade) + (0.0 if listed else true_prob[i])
        out[rank] = values
    return out


def confident_learning(table: pd.DataFrame, thresholds: pd.Series, default: float) -> tuple[np.ndarray, np.ndarray]:
    """(flag, guess) per row, as cleanlab's ``compute_confident_joint`` counts it, over the stored top-k and the
    label: the classes whose probability reaches their threshold are the confident ones; with one, it is the guess,
    with several, the top-1; the photo is off the diagonal when there is a guess and it is not the label. A class
    no photo is labelled with has threshold ``default``."""
    n = len(table)
    flag, guess = np.zeros(n, bool), np.full(n, -1, np.int64)
    level = thresholds.to_dict()
    given = table["true_class_index"].to_numpy(np.int64)
    true_prob = table["true_prob"].to_numpy(np.float64)
    top1 = table["pred_class_index"].to_numpy(np.int64)
    for i, (indices, probs) in enumerate(zip(table["topk_class_index"], table["topk_prob"])):
        if given[i] < 0 or np.isnan(true_prob[i]):
            continue
        candidates = {int(c): float(p) for c, p in zip(indices, probs)}
        candidates[int(given[i])] = float(true_prob[i])
        confident = [c for c, p in candidates.items() if p >= level.get(c, default) - CL_TOLERANCE]
        if confident:
            guess[i] = confident[0] if len(confident) == 1 else int(top1[i])
            flag[i] = guess[i] != given[i]
    return flag, guess


def neighbour_support(table: pd.DataFrame, neighbours: Neighbours, usable: np.ndarray) -> dict[str, np.ndarray]:
    """{rank: (n,) share of each row's neighbours in its clade, out of the share the clade's size allows}; NaN for
    a row without neighbours or whose clade has no other usable photo."""
    k = neighbours.positions.shape[1]
    has = neighbours.positions >= 0
    out = {}
    for rank in LABEL_RANKS:
        clade = table[f"true_{rank}"].map(_name).to_numpy(object)
        sizes = pd.Series(clade[usable]).value_counts()
        others = np.array([sizes.get(c, 0) - 1 if c is not None else 0 for c in clade], np.float64)
        cap = np.minimum(k, others) / k
        neighbour_clade = np.where(has, clade[np.where(has, neighbours.positions, 0)], None)
        same = (neighbour_clade == clade[:, None]) & has & (clade[:, None] != None)  # noqa: E711 (elementwise)
        share = same.sum(axis=1) / k
        out[rank] = np.where((cap > 0) & has.any(axis=1), np.minimum(share / np.where(cap > 0, cap, 1), 1.0), np.nan)
    return out


def label_issue_columns(
    table: pd.DataFrame,
    store: EmbeddingStore | None,
    taxonomy: Taxonomy | None = None,
    prior_weight: float = PRIOR_WEIGHT,
) -> pd.DataFrame:
    """The ``LABEL_ISSUE_COLUMNS`` of every row of ``table`` (a frame indexed as the table). ``store``: the
    table's embeddings (None: the model alone witnesses). Unreadable photos and species the model has no class for
    get NaN scores and no neighbours."""
    table = table.reset_index(drop=True)
    ok = (table["status"] == "ok").to_numpy()
    known = ok & (table["true_class_index"].to_numpy() >= 0) & table["true_prob"].notna().to_numpy()
    probs = model_clade_probs(table, class_lineages(table, taxonomy))
    support = {}
    for rank in LABEL_RANKS:
        clade = table["true_class_index"] if rank == "species" else table[f"true_{rank}"].map(_name)
        values = np.where(known, probs[rank], np.nan)
        levels = clade_levels(clade, values, prior_weight)
        median = float(levels.median()) if len(levels) else np.nan
        level = clade.map(levels).to_numpy(np.float64)
        ratio = np.minimum(values / np.where(level > 0, level, np.nan), 1.0)
        agrees = _top1_agrees(table, rank)  # the model's own answer is in the label's clade: full support
        support[rank] = np.where(known, np.where(agrees, 1.0, ratio), np.nan)
        if rank == "species":
            class_level, thresholds, default = level, levels, median
    neighbours, witnesses = _neighbours(table, store, ok)
    score, doubt_rank = _combine(support, witnesses, known)
    flag, guess = confident_learning(table, thresholds, default)
    ids = table["photo_id"].astype(str).to_numpy(object)
    return pd.DataFrame(
        {
            "label_issue_score": score.astype(np.float32),
            "label_issue_rank": doubt_rank,
            "label_class_level": np.where(known, class_level, np.nan).astype(np.float32),
            "label_cl_flag": flag & known,
            "label_cl_guess": np.where(known, guess, -1),
            "label_neighbours": [
                [str(ids[p]) for p in row if p >= 0] if keep else [] for row, keep in zip(neighbours.positions, known)
            ],
            "label_neighbour_sims": [
                [float(s) for s in row[np.isfinite(row)]] if keep else [] for row, keep in zip(neighbours.sims, known)
            ],
        }
    )


def _top1_agrees(table: pd.DataFrame, rank: str) -> np.ndarray:
    """The top-1 is the label (species) or in the label's clade at ``rank``."""
    if rank == "species":
        return (table["pred_class_index"].to_numpy() == table["true_class_index"].to_numpy()) & (
            table["true_class_index"].to_numpy() >= 0
        )
    truth, said = table[f"true_{rank}"].map(_name).to_numpy(object), table[f"pred_{rank}"].map(_name).to_numpy(object)
    return np.array([t is not None and t == s for t, s in zip(truth, said)], bool)


def _neighbours(table: pd.DataFrame, store: EmbeddingStore | None, ok: np.ndarray):
    """(Neighbours, {rank: neighbour support}) from the table's embeddings (rows matched by photo_id); none
    without a store."""
    n = len(table)
    if store is None:
        empty = Neighbours(np.full((n, NEIGHBOURS), -1, np.int64), np.full((n, NEIGHBOURS), np.nan, np.float32))
        return empty, {r: np.full(n, np.nan) for r in LABEL_RANKS}
    where = {str(p): i for i, p in enumerate(store.photo_ids)}
    at = np.array([where.get(str(p), -1) for p in table["photo_id"]], np.int64)
    usable = ok & (at >= 0)
    unit = np.zeros((n, store.dim), np.float32)
    unit[usable] = store.unit[at[usable]]
    neighbours = nearest_neighbours(unit, usable)
    return neighbours, neighbour_support(table, neighbours, usable)


def _combine(model: dict, neighbours: dict, known: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(score, coarsest doubtful rank) from each witness's support per rank."""
    per_rank = []
    for rank in LABEL_RANKS:
        both = np.vstack([model[rank], neighbours[rank]])
        counted = np.isfinite(both).sum(axis=0)
        per_rank.append(np.where(counted > 0, np.nansum(both, axis=0) / np.maximum(counted, 1), np.nan))
    support = np.vstack(per_rank)  # (ranks, n)
    counted = np.isfinite(support).sum(axis=0)
    score = np.where(known & (counted > 0), 1.0 - np.nansum(support, axis=0) / np.maximum(counted, 1), np.nan)
    doubt_rank = np.full(len(known), "", object)
    for r, rank in enumerate(LABEL_RANKS):  # species first: a coarser doubtful rank overwrites
        doubt_rank[known & (support[r] < DOUBT)] = rank
    return score, doubt_rank


def with_label_issues(
    table: pd.DataFrame, store: EmbeddingStore | None, taxonomy: Taxonomy | None = None
) -> pd.DataFrame:
    """The table with its ``LABEL_ISSUE_COLUMNS`` (re)computed; every other column as it was."""
    columns = label_issue_columns(table, store, taxonomy)
    kept = table.drop(columns=[c for c in LABEL_ISSUE_COLUMNS if c in table.columns])
    return pd.concat([kept, columns.set_index(kept.index)], axis=1)


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The area under the ROC curve of ``scores`` separating ``positive`` rows from the others (Mann-Whitney, ties
    counted half); NaN scores are left out; NaN when either side is empty."""
    keep = np.isfinite(scores)
    scores, positive = scores[keep], positive[keep].astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
