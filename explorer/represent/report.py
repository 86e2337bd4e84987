"""The representation report of one evaluation table: its stored embeddings measured against the truths'
taxonomy at each rank (``taxonomy_fit``), plus the 2-D map the dashboard draws."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from explorer.represent.embeddings import EmbeddingStore
from explorer.represent.taxonomy_fit import RANKS_MEASURED, layout_2d, rank_fit, reduce, report_dict

log = logging.getLogger(__name__)


def aligned(table: pd.DataFrame, store: EmbeddingStore) -> tuple[pd.DataFrame, np.ndarray]:
    """The table's readable photos that the store holds, and their embeddings in the same order."""
    if store.model != str(table["model"].iloc[0]) or store.weights_sha256 != str(table["weights_sha256"].iloc[0]):
        raise ValueError(f"the embeddings were made by other weights ({store.model}, {store.weights_sha256[:12]})")
    where = pd.Series(np.arange(len(store.photo_ids)), index=pd.Index(store.photo_ids.astype(str)))
    rows = table[(table["status"] == "ok") & table["photo_id"].astype(str).isin(where.index)]
    return rows.reset_index(drop=True), store.vectors[where[rows["photo_id"].astype(str)].to_numpy()]


def representation_report(table: pd.DataFrame, store: EmbeddingStore, progress: bool = True) -> dict:
    """Figures per rank and the map (UMAP runs here: about two minutes for 4,000 photos on two cores)."""
    from tqdm.auto import tqdm

    rows, vectors = aligned(table, store)
    log.info("%s: %d photos, %d-d embeddings: UMAP to 50-d", store.model, len(rows), vectors.shape[1])
    reduced = reduce(vectors)
    fits = [
        rank_fit(vectors, reduced, rows[f"true_{rank}"].astype(object).to_numpy(), rank)
        for rank in tqdm(RANKS_MEASURED, desc="ranks", disable=not progress)
    ]
    log.info("2-D map")
    xy = layout_2d(vectors)
    sources = rows["source"].astype(str).value_counts().to_dict()
    return report_dict(store.model, store.weights_sha256, sources, fits, rows["photo_id"], xy)
