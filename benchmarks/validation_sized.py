"""A table the size of a real validation set, for the benchmarks: the shipped table's rows resampled to ``rows``
photos over ``classes`` species of a synthetic taxonomy shaped like iNat 2021's (10,000 species in 4,884 genera,
1,103 families, 273 orders, 51 classes, 13 phyla, 3 kingdoms), each species the truth of rows // classes photos (iNat
2021's validation set: 10 each). Each row keeps its numbers (confidence, logits, scores) and the rank where its
prediction left the truth: the prediction is redrawn among the species that share the truth's lineage down to that
rank and differ there (one rank higher when no such species exists).

    from validation_sized import validation_sized
    table = validation_sized(pd.read_parquet("assets/eval/inat_bird.parquet"), rows=100_000, classes=10_000)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from explorer.taxa.taxonomy import RANKS  # kingdom .. species

INAT21_SHAPE = {"kingdom": 3, "phylum": 13, "class": 51, "order": 273, "family": 1103, "genus": 4884}


def synthetic_tree(classes: int, seed: int = 0) -> pd.DataFrame:
    """(classes rows) one column per rank: each species' lineage, every taxon with at least one child."""
    rng = np.random.default_rng(seed)
    counts = {rank: max(1, round(n * classes / 10_000)) for rank, n in INAT21_SHAPE.items()}
    counts["species"] = classes
    parent = np.zeros(0, dtype=np.int64)
    columns: dict[str, np.ndarray] = {}
    previous = None
    for rank in RANKS:
        n = counts[rank]
        if previous is None:
            parent = np.zeros(n, dtype=np.int64)
        else:  # each parent one child first, the rest at random
            m = counts[previous]
            parent = np.concatenate([np.arange(min(m, n)), rng.integers(0, m, max(0, n - m))])
            rng.shuffle(parent)
        columns[rank] = parent
        previous = rank
    lineage = {"species": np.arange(classes)}
    for child, rank in zip(RANKS[::-1], RANKS[-2::-1]):  # species -> genus -> ... -> kingdom
        lineage[rank] = columns[child][lineage[child]]
    names = {rank: _names(rank, counts[rank]) for rank in RANKS[:-1]}
    frame = pd.DataFrame({rank: names[rank][lineage[rank]] for rank in RANKS[:-1]})
    frame["species"] = [f"{g} sp{i:05d}" for i, g in enumerate(frame["genus"])]
    return frame


def _names(rank: str, count: int) -> np.ndarray:
    return np.array([f"{rank.capitalize()}{i:05d}" for i in range(count)], dtype=object)


def validation_sized(table: pd.DataFrame, rows: int = 100_000, classes: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """The shipped ``table`` resampled to ``rows`` photos over ``classes`` synthetic species (module docstring)."""
    rng = np.random.default_rng(seed)
    tree = synthetic_tree(classes, seed)
    base = table[table["status"] == "ok"].reset_index(drop=True)
    out = base.iloc[rng.integers(0, len(base), rows)].reset_index(drop=True)
    truth = np.concatenate([np.repeat(np.arange(classes), rows // classes), rng.integers(0, classes, rows % classes)])
    rng.shuffle(truth)
    pred, diverged = _predictions(tree, truth, out["divergence_rank"].to_numpy(), rng)
    original_pred = out["pred_class_index"].to_numpy().copy()
    _set_side(out, "true", tree, truth)
    has_pred = out["divergence_rank"].to_numpy() != "no prediction"
    _set_side(out, "pred", tree, np.where(has_pred, pred, truth), mask=has_pred)
    out.loc[has_pred, "divergence_rank"] = diverged[has_pred]
    out.loc[has_pred, "lca_rank"] = [_above(r) for r in diverged[has_pred]]
    out.loc[has_pred, "lca_name"] = [tree.at[t, _above(r)] for t, r in zip(truth[has_pred], diverged[has_pred])]
    for prefix in [c[: -len("pred_name")] for c in out.columns if c.endswith("geo_pred_name")]:
        _set_geo(out, prefix, tree, original_pred, truth, rng)
    out["photo_id"] = [f"validation-sized:{i}" for i in range(rows)]
    out["photo_hash"] = [f"{i:024x}" for i in range(rows)]
    out["topk_name"] = [np.array([p, *k[1:]], dtype=object) for p, k in zip(out["pred_name"], out["topk_name"])]
    out["topk_class_index"] = [np.array([p, *k[1:]]) for p, k in zip(out["pred_class_index"], out["topk_class_index"])]
    return out


def _set_geo(out: pd.DataFrame, prefix: str, tree, original_pred: np.ndarray, truth: np.ndarray, rng) -> None:
    """A prior's columns (``prefix`` + pred_name, ...): the truth where it was right, the new prediction where it
    agreed with the image's, another species elsewhere."""
    right = out[f"{prefix}correct_1"].to_numpy(bool)
    same = out[f"{prefix}pred_class_index"].to_numpy() == original_pred
    picked = np.where(right, truth, np.where(same, out["pred_class_index"].to_numpy(), rng.permutation(truth)))
    out[f"{prefix}pred_class_index"] = picked
    out[f"{prefix}pred_name"] = tree["species"].to_numpy()[picked]


def _above(rank: str) -> str:
    """The rank above ``rank`` (where the truth and the prediction still agree); "species" for a correct row."""
    return "species" if rank == "correct" else RANKS[RANKS.index(rank) - 1]


def _predictions(tree: pd.DataFrame, truth: np.ndarray, ranks: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Each row's predicted species (sharing the truth's lineage above its divergence rank, differing at it) and
    the rank where it does differ."""
    codes = {rank: pd.factorize(tree[rank])[0] for rank in RANKS}
    members = {rank: pd.Series(np.arange(len(tree))).groupby(codes[rank]).apply(np.array) for rank in RANKS}
    pred, diverged = truth.copy(), ranks.astype(object).copy()
    for i, rank in enumerate(ranks):
        if rank in ("correct", "no prediction"):
            continue
        level = RANKS.index(rank)
        while level > 0:
            pool = members[RANKS[level - 1]][codes[RANKS[level - 1]][truth[i]]]
            pool = pool[codes[RANKS[level]][pool] != codes[RANKS[level]][truth[i]]]
            if len(pool):
                pred[i], diverged[i] = rng.choice(pool), RANKS[level]
                break
            level -= 1
        else:
            pool = np.flatnonzero(codes["kingdom"] != codes["kingdom"][truth[i]])
            pred[i], diverged[i] = rng.choice(pool), "kingdom"
    return pred, diverged


def _set_side(out: pd.DataFrame, side: str, tree: pd.DataFrame, species: np.ndarray, mask=None) -> None:
    """The ``side`` ("true" or "pred") columns of the rows in ``mask`` (all rows: None) from the tree."""
    rows = slice(None) if mask is None else mask
    picked = species if mask is None else species[mask]
    for rank in RANKS:
        out.loc[rows, f"{side}_{rank}"] = tree[rank].to_numpy()[picked]
    out.loc[rows, f"{side}_name"] = tree["species"].to_numpy()[picked]
    out.loc[rows, f"{side}_class_index"] = picked
    out.loc[rows, f"{side}_common_name"] = ""
