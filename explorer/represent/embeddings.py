"""Embeddings of labelled photos, stored beside their evaluation table, and the nearest of them to a query.

``assets/eval/<table>.embeddings.npz`` holds, for every photo of the table (same ``photo_id``s), the model's pooled
pre-logit features (``models.features``) quantised to 8 bits per dimension (``quantise``), with the model's name
and weights hash: a store made by
other weights is refused rather than silently compared. ``explorer-evaluate`` and ``explorer-shipped`` write it
from the same forward passes that fill the table, so the app never re-runs a model over the photos.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from explorer.models.classifier import Classifier
from explorer.models.features import normalise_rows
from explorer.taxa.taxonomy import RANKS

SUFFIX = ".embeddings.npz"


@dataclass(frozen=True)
class EmbeddingStore:
    """(n, D) embeddings of n labelled photos, keyed by photo id, from one model's weights."""

    model: str
    weights_sha256: str
    photo_ids: np.ndarray  # (n,) str
    vectors: np.ndarray  # (n, D) float32
    unit: np.ndarray = field(init=False, repr=False)  # (n, D) float32, L2-normalised: cosine = dot product

    def __post_init__(self):
        if len(self.photo_ids) != len(self.vectors):
            raise ValueError(f"{len(self.photo_ids)} photo ids but {len(self.vectors)} embeddings")
        object.__setattr__(self, "unit", normalise_rows(self.vectors))

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1]) if self.vectors.ndim == 2 else 0


def embeddings_path(table_path: Path) -> Path:
    """Where a table's embeddings live: ``NAME.parquet`` -> ``NAME.embeddings.npz`` beside it."""
    table_path = Path(table_path)
    return table_path.with_name(table_path.stem + SUFFIX)


def quantise(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uint8 codes, per-dimension offset, per-dimension step): each dimension's range in 255 steps. Half the
    size of float16 on disk; on the shipped bird table 99.75 % of the 8 nearest neighbours stay the same."""
    vectors = np.asarray(vectors, dtype=np.float32)
    low = vectors.min(axis=0) if len(vectors) else np.zeros(vectors.shape[1], np.float32)
    step = (vectors.max(axis=0) - low) / 255 if len(vectors) else np.ones(vectors.shape[1], np.float32)
    step = np.where(step > 0, step, 1.0).astype(np.float32)
    codes = np.clip(np.round((vectors - low) / step), 0, 255).astype(np.uint8)
    return codes, low.astype(np.float32), step


def save_embeddings(store: EmbeddingStore, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codes, low, step = quantise(store.vectors)
    np.savez_compressed(
        path,
        photo_id=np.asarray(store.photo_ids, dtype=str),
        codes=codes,
        low=low,
        step=step,
        model=np.array(store.model),
        weights_sha256=np.array(store.weights_sha256),
    )
    return path


def load_embeddings(path: Path) -> EmbeddingStore:
    """A stored file; ValueError naming what is wrong with it."""
    try:
        with np.load(path, allow_pickle=False) as data:
            vectors = data["codes"].astype(np.float32) * data["step"] + data["low"]
            return EmbeddingStore(str(data["model"]), str(data["weights_sha256"]), data["photo_id"], vectors)
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"{path}: not an embeddings file ({err})") from err


def embed_images(classifier: Classifier, images) -> np.ndarray:
    """(n, D) float32 embeddings of RGB PIL images, one forward pass each batch (the public Python API)."""
    if not images:
        return np.zeros((0, 0), np.float32)
    batch = torch.cat([classifier.preprocess(image) for image in images])
    with torch.no_grad(), classifier.embedding_capture() as capture, classifier.autocast():
        classifier.module(batch)
    return capture.array()


def similarities(store: EmbeddingStore, query: np.ndarray) -> np.ndarray:
    """(n,) cosine similarity of every stored photo to ``query`` (D,): one matrix-vector product."""
    if query.shape[-1] != store.dim:
        raise ValueError(f"query has {query.shape[-1]} dimensions, the stored embeddings {store.dim}")
    return store.unit @ normalise_rows(query.reshape(1, -1))[0]


def top_positions(scores: np.ndarray, k: int, keep: np.ndarray | None = None):
    """(positions, scores) of the k highest scores, highest first; ``keep``: a mask of those that may be returned."""
    if keep is not None:
        scores = np.where(keep, scores, -np.inf)
    k = min(int(k), int(np.isfinite(scores).sum()))
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return top, scores[top].astype(np.float32)


def nearest(store: EmbeddingStore, query: np.ndarray, k: int, keep: np.ndarray | None = None):
    """(positions, cosine similarities) of the k stored photos nearest to ``query`` (D,), most similar first;
    ``keep``: a boolean mask of the photos that may be returned."""
    return top_positions(similarities(store, query), k, keep)


# what the similar-photos view and the inspector read of a table row (a narrow frame is quick to slice)
PHOTO_COLUMNS = (
    "photo_id",
    "path",
    "source",
    "note",
    "status",
    "model",
    "true_name",
    "true_common_name",
    "true_class_index",
    "pred_class_index",
    "pred_name",
    "confidence",
    "correct_1",
    *(f"true_{r}" for r in RANKS),
    *(f"pred_{r}" for r in RANKS),
)


@dataclass(frozen=True)
class PhotoIndex:
    """A model's stored embeddings with the table rows of the same photos, in the same order."""

    table: str  # the evaluation table's name
    store: EmbeddingStore
    photos: pd.DataFrame  # one row per stored photo (readable photos only), aligned with store.unit


def photo_index(table_name: str, table: pd.DataFrame, store: EmbeddingStore) -> PhotoIndex:
    """Align a store with its table (by photo id), keeping readable photos only; ValueError when they differ."""
    columns = [c for c in PHOTO_COLUMNS if c in table.columns]
    rows = (
        table[columns].assign(photo_id=table["photo_id"].astype(str)).drop_duplicates("photo_id").set_index("photo_id")
    )
    ids = np.asarray(store.photo_ids, dtype=str)
    missing = ~np.isin(ids, rows.index.to_numpy(str))
    if missing.any():
        raise ValueError(
            f"{table_name}: {int(missing.sum())} embeddings have no row in the table, e.g. {ids[missing][0]}"
        )
    photos = rows.loc[ids].reset_index()
    ok = (photos["status"] == "ok").to_numpy()
    kept = EmbeddingStore(store.model, store.weights_sha256, ids[ok], store.vectors[ok])
    return PhotoIndex(table_name, kept, photos[ok].reset_index(drop=True))
