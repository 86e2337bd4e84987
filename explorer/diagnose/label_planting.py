"""Does ``label_issue_score`` find wrong labels? Plant some and measure: labels changed at random within the
model's vocabulary on a share of a table's photos, the score recomputed, and its AUROC at telling them apart.

A planted label's probability is the stored top-k's when the new class is among them; otherwise the table does not
hold it, and it is taken at the largest value it can have (the k-th probability). That favours the planted label,
so the AUROC measured is a lower bound of what the score does on a table built with the wrong labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from explorer.diagnose.label_issues import LABEL_RANKS, auroc, class_lineages, label_issue_columns
from explorer.represent.embeddings import EmbeddingStore
from explorer.taxa.taxonomy import Taxonomy

PLANTED_SHARE = 0.03
PLANTED_SEED = 0


def plant_label_errors(
    table: pd.DataFrame, lineages: dict[int, dict], share: float = PLANTED_SHARE, seed: int = PLANTED_SEED
) -> tuple[pd.DataFrame, np.ndarray]:
    """(a copy of the table with ``share`` of its readable, in-vocabulary photos relabelled to another class drawn
    uniformly from ``lineages``' classes, which rows were relabelled). The truth's index, lineage columns and
    probability follow the new label; nothing else changes."""
    table = table.reset_index(drop=True).copy()
    rng = np.random.default_rng(seed)
    eligible = np.flatnonzero(((table["status"] == "ok") & (table["true_class_index"] >= 0)).to_numpy())
    picked = np.sort(rng.choice(eligible, size=int(round(share * len(eligible))), replace=False))
    classes = np.array(sorted(lineages), dtype=np.int64)
    for rank in LABEL_RANKS:
        table[f"true_{rank}"] = table[f"true_{rank}"].astype(object)
    for i in picked:
        old = int(table.at[i, "true_class_index"])
        new = int(rng.choice(classes[classes != old]))
        indices, probs = list(map(int, table.at[i, "topk_class_index"])), list(map(float, table.at[i, "topk_prob"]))
        table.at[i, "true_class_index"] = new
        table.at[i, "true_prob"] = probs[indices.index(new)] if new in indices else min(probs)
        for rank in LABEL_RANKS:
            table.at[i, f"true_{rank}"] = lineages[new][rank]
    planted = np.zeros(len(table), bool)
    planted[picked] = True
    return table, planted


@dataclass(frozen=True)
class PlantedResult:
    photos: int  # readable photos of species the model knows (where labels were planted)
    planted: int
    auroc: float  # label_issue_score: the model and the neighbours
    auroc_model_alone: float  # label_issue_score without the neighbours
    auroc_self_confidence: float  # 1 - probability of the label (cleanlab's "self_confidence" score)
    flagged_planted: float  # share of the planted with label_issue_score >= 0.5
    flagged_clean: float  # share of the others with it
    cl_planted: float  # share of the planted that confident learning puts off the diagonal
    cl_clean: float


def planted_experiment(
    table: pd.DataFrame,
    store: EmbeddingStore | None,
    taxonomy: Taxonomy | None,
    share: float = PLANTED_SHARE,
    seed: int = PLANTED_SEED,
    threshold: float = 0.5,
) -> PlantedResult:
    """Plant label errors in ``table`` and measure how well the label check finds them."""
    lineages = class_lineages(table.reset_index(drop=True), taxonomy)
    planted_table, planted = plant_label_errors(table, lineages, share, seed)
    both = label_issue_columns(planted_table, store, taxonomy)
    alone = label_issue_columns(planted_table, None, taxonomy)
    scored = both["label_issue_score"].notna().to_numpy()
    score = both["label_issue_score"].to_numpy(np.float64)
    flag = both["label_cl_flag"].to_numpy(bool)
    clean = scored & ~planted
    return PlantedResult(
        photos=int(scored.sum()),
        planted=int(planted.sum()),
        auroc=auroc(score[scored], planted[scored]),
        auroc_model_alone=auroc(alone["label_issue_score"].to_numpy(np.float64)[scored], planted[scored]),
        auroc_self_confidence=auroc(-planted_table["true_prob"].to_numpy(np.float64)[scored], planted[scored]),
        flagged_planted=float((score[planted] >= threshold).mean()) if planted.any() else float("nan"),
        flagged_clean=float((score[clean] >= threshold).mean()) if clean.any() else float("nan"),
        cl_planted=float(flag[planted].mean()) if planted.any() else float("nan"),
        cl_clean=float(flag[clean].mean()) if clean.any() else float("nan"),
    )
