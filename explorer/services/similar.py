"""Similar labelled photos: the labelled photos nearest to a photo in a model's embedding space, and real photos
of each suggestion, from the identification's own embedding (no second forward pass); the ``similar`` API's JSON."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from explorer.identify.answer import IdentifyResult
from explorer.represent.embeddings import similarities, top_positions
from explorer.services.resources import Resources

SIMILAR_COLUMNS = ["photo_id", "path", "source", "true_name", "true_common_name", "pred_name", "correct_1"]
DEFAULT_SIMILAR = 8
EXAMPLES_PER_SUGGESTION = 2


@dataclass(frozen=True)
class SimilarPhotos:
    """The labelled photos nearest to a photo in a model's embedding space (cosine), and the nearest photos of
    each suggested species. Rows are evaluation-table rows (they open in the inspector) plus ``similarity``,
    ``distance`` (1 - cosine), and ``in_suggestions`` / ``suggestion`` (the suggestion's rank)."""

    model: str
    table: str
    photos: int  # labelled photos searched
    neighbours: pd.DataFrame
    examples: pd.DataFrame


def similar_photos(resources: Resources, result: IdentifyResult, k: int = DEFAULT_SIMILAR) -> SimilarPhotos | None:
    """From an identification's embedding (no second forward pass): one matrix product over the stored
    embeddings of the model's labelled photos. None when the model has no stored embeddings."""
    index = resources.photo_indexes.get(result.model)
    if index is None or result.embedding is None:
        return None
    if not 1 <= int(k) <= 50:
        raise ValueError(f"k must be between 1 and 50, got {k}")
    scores = similarities(index.store, result.embedding)
    positions, similarity = top_positions(scores, int(k))
    rank = {p.class_index: n for n, p in enumerate(result.predictions, 1) if not p.is_background}
    truth = index.photos["true_class_index"].to_numpy()
    found = [top_positions(scores, EXAMPLES_PER_SUGGESTION, truth == c) for c in rank]
    suggestion = np.concatenate([np.full(len(f[0]), r, np.int64) for f, r in zip(found, rank.values())] or [[]])
    rows = index.photos.iloc[np.concatenate([positions, *(f[0] for f in found)]).astype(np.int64)]
    sims = np.concatenate([similarity, *(f[1] for f in found)]).astype(np.float32)
    rows = rows.assign(similarity=sims, distance=1 - sims).reset_index(drop=True)
    neighbours = rows.iloc[: len(positions)].assign(in_suggestions=lambda f: f["true_class_index"].isin(list(rank)))
    examples = rows.iloc[len(positions) :].assign(suggestion=suggestion).reset_index(drop=True)
    return SimilarPhotos(result.model, index.table, len(index.photos), neighbours.reset_index(drop=True), examples)


def similar_to_json(found: SimilarPhotos | None, result: IdentifyResult) -> dict:
    """The ``similar`` API's JSON."""
    if found is None:
        return {
            "model": result.model,
            "neighbours": [],
            "examples": [],
            "note": f"{result.model} has no stored "
            "embeddings of labelled photos (explorer-evaluate writes them beside its table).",
        }
    keep = [*SIMILAR_COLUMNS, "similarity", "distance"]
    # "path" would make gradio_client take each record for a file to download: the photo's path is "photo_path"

    def records(frame: pd.DataFrame, extra: list[str]) -> list[dict]:
        shown = frame[keep + extra].astype(object)
        return shown.where(shown.notna(), None).rename(columns={"path": "photo_path"}).to_dict("records")

    return {
        "model": found.model,
        "scope": None if result.scope is None else result.scope.as_json(),  # neighbours of an out-of-scope photo
        **({"routed_from": result.routed_from, "routing": result.routing} if result.routed_from else {}),
        "table": found.table,
        "photos_searched": found.photos,
        "suggestions": [p.scientific_name for p in result.predictions if not p.is_background],
        "neighbours": records(found.neighbours, ["in_suggestions"]),
        "examples": records(found.examples, ["suggestion"]),
    }
