"""The classification report an engineer expects, over the filtered view and at any rank: per class precision,
recall and F1 with their counts, and the confusion matrix as its largest off-diagonal cells (at 1,000 species a full
grid is a million cells, nearly all empty: the cells that hold errors are listed, the most frequent first).

Only readable photos of species the model has a class for count (an out-of-vocabulary photo is nobody's error at
species). At species the classes are the model's outputs (matched by class index, so a truth written under an older
name is its class); above species, the names of the truth's and the prediction's lineages at that rank.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import polars as pl

from explorer.diagnose.frames import IN_VOCAB, View, as_lazy, as_text
from explorer.taxa.taxonomy import RANKS

SCORE_COLUMNS = ["class", "photos", "predicted", "correct", "precision", "recall", "f1"]
CELL_COLUMNS = ["truth", "predicted", "photos", "share_of_truth"]


def _keys(rank: str) -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    """(truth's key, prediction's key, truth's name, prediction's name) at ``rank``."""
    if rank not in RANKS:
        raise ValueError(f"rank must be one of {RANKS}, got {rank!r}")
    if rank == "species":
        names = pl.col("true_name").cast(pl.String), pl.col("pred_name").cast(pl.String)
        return pl.col("true_class_index"), pl.col("pred_class_index"), *names
    truth, pred = pl.col(f"true_{rank}").cast(pl.String), pl.col(f"pred_{rank}").cast(pl.String)
    return truth, pred, truth, pred


def _pairs(table: View, rank: str) -> pl.LazyFrame:
    """Each in-vocabulary photo's truth and prediction at ``rank`` (keys and names), and whether they agree."""
    truth, pred, truth_name, pred_name = _keys(rank)
    lazy = as_lazy(table, [truth, pred, truth_name, pred_name, pl.col("correct_1"), IN_VOCAB]).filter(IN_VOCAB)
    right = pl.col("correct_1") if rank == "species" else (truth == pred).fill_null(False)
    return lazy.select(truth=truth, pred=pred, right=right, truth_name=truth_name, pred_name=pred_name).filter(
        pl.col("truth").is_not_null()
    )


def class_scores(table: View, rank: str = "species") -> pd.DataFrame:
    """Per class at ``rank``: photos of it (support), photos predicted as it, those right, precision, recall and
    F1. A class never predicted has no precision (NaN) and F1 0 when it has photos; a class predicted but with no
    photo in view has no recall and no F1 (NaN, listed last). Sorted by F1, worst first, then name."""
    pairs = _pairs(table, rank)
    truths = pairs.group_by("truth").agg(
        photos=pl.len(), correct=pl.col("right").sum(), name=pl.col("truth_name").first()
    )
    preds = (
        pairs.filter(pl.col("pred").is_not_null())
        .group_by("pred")
        .agg(predicted=pl.len(), hits=pl.col("right").sum(), pred_name=pl.col("pred_name").first())
    )
    joined = truths.join(preds, left_on="truth", right_on="pred", how="full", coalesce=True).collect().to_pandas()
    if joined.empty:
        return pd.DataFrame(columns=SCORE_COLUMNS)
    photos = joined["photos"].fillna(0).astype(np.int64)
    predicted = joined["predicted"].fillna(0).astype(np.int64)
    correct = joined["correct"].fillna(joined["hits"]).fillna(0).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, correct / predicted.where(predicted > 0, 1), np.nan)
        recall = np.where(photos > 0, correct / photos.where(photos > 0, 1), np.nan)
        f1 = 2 * precision * recall / (precision + recall)
    out = pd.DataFrame(
        {
            "class": joined["name"].fillna(joined["pred_name"]).astype(str),
            "photos": photos,
            "predicted": predicted,
            "correct": correct,
            "precision": precision,
            "recall": recall,
            "f1": np.where((recall == 0) | (precision == 0), 0.0, f1),  # no photo of it found: 0, predicted or not
        }
    )
    out.loc[np.isnan(recall), "f1"] = np.nan  # no photo of the class in view: nothing to score it on
    return out.sort_values(["f1", "class"], na_position="last").reset_index(drop=True)


def confusion_cells(table: View, rank: str = "species", top: int = 30) -> pd.DataFrame:
    """The ``top`` largest off-diagonal cells of the confusion matrix at ``rank``: truth, predicted, photos and
    their share of the truth's photos; most photos first, then names (a stable order: a click names a row)."""
    pairs = _pairs(table, rank)
    support = pairs.group_by("truth").agg(total=pl.len())
    cells = (
        pairs.filter(~pl.col("right") & pl.col("pred").is_not_null())
        .group_by(["truth", "pred"])
        .agg(photos=pl.len(), truth_name=pl.col("truth_name").first(), pred_name=pl.col("pred_name").first())
        .join(support, on="truth")
        .collect()
    )
    cells = as_text(cells, "truth_name", "pred_name").sort(
        ["photos", "truth_name", "pred_name"], descending=[True, False, False]
    )
    out = cells.head(top).to_pandas()
    if out.empty:
        return pd.DataFrame(columns=CELL_COLUMNS)
    return pd.DataFrame(
        {
            "truth": out["truth_name"].astype(str),
            "predicted": out["pred_name"].astype(str),
            "photos": out["photos"].astype(np.int64),
            "share_of_truth": out["photos"] / out["total"],
        }
    )


def cell_filter(rank: str, truth: str, predicted: str) -> pl.Expr:
    """The photos of one confusion cell (named as confusion_cells names them), as a filter on the view."""
    truth_key, pred_key, _, _ = _keys(rank)
    if rank == "species":
        return (
            IN_VOCAB
            & (pl.col("true_name").cast(pl.String) == truth)
            & (pl.col("pred_name").cast(pl.String) == predicted)
            & ~pl.col("correct_1")
        )
    return IN_VOCAB & (truth_key == truth) & (pred_key == predicted)


def plot_confusion(cells: pd.DataFrame, rank: str, most: int = 15) -> go.Figure | None:
    """A heatmap of the classes the largest cells involve (at most ``most`` on each axis): photos per cell, the
    diagonal left out (it is the per-class table's 'correct')."""
    if cells.empty:
        return None
    truths = list(dict.fromkeys(cells["truth"]))[:most]
    preds = list(dict.fromkeys(cells["predicted"]))[:most]
    grid = np.full((len(truths), len(preds)), np.nan)
    for row in cells.itertuples():
        if row.truth in truths and row.predicted in preds:
            grid[truths.index(row.truth), preds.index(row.predicted)] = row.photos
    figure = go.Figure(
        go.Heatmap(
            z=grid,
            x=preds,
            y=truths,
            colorscale="Reds",
            hovertemplate="truth %{y}<br>predicted %{x}<br>%{z} photos<extra></extra>",
            colorbar={"title": "photos"},
        )
    )
    figure.update_layout(
        title=f"Largest confusions at {rank} (rows: truth; columns: predicted)",
        yaxis={"autorange": "reversed"},
        height=max(320, 28 * len(truths) + 160),
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return figure
