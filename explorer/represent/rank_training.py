"""Train per-rank linear heads (order, family, genus, species) on a model's frozen embeddings of labelled photos,
and a species head with taxonomy-aware label smoothing (the documents' proposed loss). Used by
``explorer-train-head --rank-heads`` and ``--taxonomy-smoothing``.

Every choice of hyper-parameters is made on a fixed 20 % hold-out of the training photos, never on test photos.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from explorer.models.rank_heads import HEAD_RANKS, RankHead, RankHeads
from explorer.represent.probes import choose_on_holdout, choose_weight_decay, fit_linear_head

log = logging.getLogger(__name__)
SMOOTHING_GRID = ((0.1, 0.5), (0.2, 0.5), (0.4, 0.5), (0.2, 0.25), (0.4, 0.25))  # (epsilon, decay)


def fit_rank_heads(embeddings: np.ndarray, lineages: pd.DataFrame, source: str) -> tuple[RankHeads, dict]:
    """A head per rank over the photos whose taxon at that rank is known; ``lineages`` has a column per rank.
    Returns the heads and, per rank, the L2 chosen and the hold-out accuracies."""
    heads, stats = [], {}
    for rank in HEAD_RANKS:
        labels = lineages[rank].astype(object)
        known = labels.notna().to_numpy() & (labels.astype(str) != "").to_numpy()
        names = tuple(sorted(set(labels[known].astype(str))))
        if len(names) < 2:
            continue
        index = {n: i for i, n in enumerate(names)}
        targets = np.array([index[str(v)] for v in labels[known]])
        weight_decay, scores = choose_weight_decay(embeddings[known], targets, len(names))
        head = fit_linear_head(embeddings[known], targets, len(names), weight_decay)
        weight = head.weight.detach().numpy().astype(np.float32)
        heads.append(RankHead(rank, names, weight, head.bias.detach().numpy().astype(np.float32)))
        stats[rank] = {"photos": int(known.sum()), "classes": len(names), "weight_decay": weight_decay}
        log.info("%s head: %d classes, hold-out accuracy by L2 %s", rank, len(names), scores)
    return RankHeads(tuple(heads), source), stats


def taxonomy_targets(lineages: pd.DataFrame, epsilon: float, decay: float) -> np.ndarray:
    """(C, C) soft targets: row i keeps 1 - epsilon on class i and spreads epsilon over the other classes by how
    close they are: same genus, then same family, then same order, then the rest, each level's share ``decay``
    times the previous one's (levels with no class get none) and split evenly inside a level."""
    classes = len(lineages)
    targets = np.zeros((classes, classes))
    levels = [lineages[r].astype(object).to_numpy() for r in ("genus", "family", "order")]
    for i in range(classes):
        level = np.full(classes, 3)  # 0 genus, 1 family, 2 order, 3 the rest
        for depth in (2, 1, 0):
            same = (levels[depth] == levels[depth][i]) & pd.notna(levels[depth])
            level[same] = depth
        level[i] = -1
        weights = np.zeros(classes)
        present = [d for d in range(4) if (level == d).any()]
        shares = np.array([decay**d for d in present])
        for d, share in zip(present, shares / shares.sum() if len(present) else shares):
            members = level == d
            weights[members] = share / members.sum()
        targets[i] = epsilon * weights
        targets[i, i] = 1 - epsilon if present else 1.0
    return targets


def choose_smoothing(
    features: np.ndarray,
    targets: np.ndarray,
    lineages: pd.DataFrame,
    weight_decay: float,
    grid: tuple[tuple[float, float], ...] = SMOOTHING_GRID,
) -> tuple[tuple[float, float], dict[tuple[float, float], float]]:
    """(epsilon, decay) of ``grid`` whose smoothed head has the best hold-out top-1 (``choose_on_holdout``; ties: the
    first in the grid), and every setting's hold-out top-1. ``lineages`` has a row per class, in class order."""

    def fit(x: np.ndarray, y: np.ndarray, setting: tuple[float, float]):
        return fit_linear_head(x, taxonomy_targets(lineages, *setting)[y], len(lineages), weight_decay)

    return choose_on_holdout(features, targets, grid, fit)
