"""Run a model over labelled photos and build the evaluation table, locally or on Ray Data.

    explorer-evaluate --model inat_bird --images MANIFEST_OR_FOLDER [--images ...] \\
        --out assets/eval/inat_bird.parquet [--engine local|ray] [--batch-size 64] [--workers N]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.diagnose.label_issues import with_label_issues
from explorer.diagnose.table import build_eval_table
from explorer.geo.combine import BoundPrior
from explorer.identify.scope_check import ScopeRule
from explorer.models.batches import run_outputs
from explorer.models.classifier import Classifier
from explorer.models.rank_heads import RankHeads
from explorer.represent.embeddings import EmbeddingStore
from explorer.taxa.taxonomy import Taxonomy


@dataclass(frozen=True)
class Evaluation:
    """The evaluation table and, when asked for, the photos' embeddings from the same forward passes."""

    table: pd.DataFrame
    embeddings: EmbeddingStore | None = None


def evaluate(classifier: Classifier, manifest: pd.DataFrame, *args, **kwargs) -> pd.DataFrame:
    """Run the model over a manifest and build the table (see ``evaluate_photos`` for the arguments)."""
    return evaluate_photos(classifier, manifest, *args, **kwargs).table


def evaluate_photos(
    classifier: Classifier,
    manifest: pd.DataFrame,
    taxonomy: Taxonomy | None = None,
    data_root: Path | None = None,
    engine: str = "local",
    batch_size: int = 64,
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    prior: BoundPrior | dict[str, BoundPrior] | None = None,  # several: {name: prior}, the default first
    scope: ScopeRule | None = None,
    gate: Classifier | None = None,
    embed: bool = False,
) -> Evaluation:
    """Run the model over a manifest and build the table, locally or on Ray Data. With the model's scope rule
    the table gets its scope columns; a rule that uses the ImageNet gate needs ``gate`` (run on the same photos).
    ``embed``: also keep each photo's embedding (either engine)."""
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    if scope is not None and scope.needs_gate and gate is None:
        raise ValueError(f"the scope rule of {classifier.name} needs the ImageNet gate model")
    paths = manifest["abs_path"].tolist()

    def run(model: Classifier, keep_embeddings: bool = False, extra=None):
        if engine == "local":
            return run_outputs(model, paths, batch_size, workers, progress, embed=keep_embeddings, extra=extra)
        from explorer.diagnose.ray_engine import run_outputs_ray

        return run_outputs_ray(model, paths, batch_size, address, embed=keep_embeddings)

    heads = classifier.rank_heads
    heads_in = classifier.rank_heads_input() if heads is not None else None
    if engine == "ray" and heads_in is not None:  # heads that read another layer than the embedding: local only
        heads, heads_in = None, None
    logits, statuses, vectors = run(classifier, embed or (heads is not None and heads_in is None), heads_in)
    gate_logits = run(gate)[0] if scope is not None and scope.needs_gate else None
    table = build_eval_table(classifier, manifest, logits, statuses, taxonomy, data_root, prior, scope, gate_logits)
    if heads is not None:
        table = with_head_columns(table, heads, heads_in.array() if heads_in else vectors)
    found = None
    if vectors is not None:
        found = EmbeddingStore(classifier.name, classifier.weights_sha256, table["photo_id"].to_numpy(str), vectors)
    table = with_label_issues(table, found, taxonomy)  # the neighbours' witness only where embeddings were made
    return Evaluation(table, found if embed else None)


def with_head_columns(table: pd.DataFrame, heads: RankHeads, vectors: np.ndarray) -> pd.DataFrame:
    """The rank heads' answers per photo (unreadable photos: none), and whether each head knows the truth."""
    table = table.copy()
    readable = (table["status"] == "ok").to_numpy()
    for rank, (names, probs) in heads.answers(vectors[readable]).items():
        said = np.full(len(table), None, dtype=object)
        said[readable] = names
        prob = np.full(len(table), np.nan)
        prob[readable] = probs
        known = set(next(h.names for h in heads.heads if h.rank == rank))
        table[f"head_{rank}"] = pd.Series(said, index=table.index, dtype="object")
        table[f"head_prob_{rank}"] = prob
        table[f"head_knows_{rank}"] = table[f"true_{rank}"].astype(object).isin(known).to_numpy()
    return table
