"""Run a model over labelled photos and build the evaluation table, locally or on Ray Data.

    explorer-evaluate --model inat_bird --images MANIFEST_OR_FOLDER [--images ...] \\
        --out assets/eval/inat_bird.parquet [--engine local|ray] [--batch-size 64] [--workers N]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from explorer.batches import run_outputs
from explorer.diagnose.table import build_eval_table
from explorer.geo.combine import BoundPrior
from explorer.model import Classifier
from explorer.represent.embeddings import EmbeddingStore
from explorer.scope import ScopeRule
from explorer.taxonomy import Taxonomy


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
    prior: BoundPrior | None = None,
    scope: ScopeRule | None = None,
    gate: Classifier | None = None,
    embed: bool = False,
) -> Evaluation:
    """Run the model over a manifest and build the table, locally or on Ray Data. With the model's scope rule
    the table gets its scope columns; a rule that uses the ImageNet gate needs ``gate`` (run on the same photos).
    ``embed``: also keep each photo's embedding (local engine only)."""
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    if scope is not None and scope.needs_gate and gate is None:
        raise ValueError(f"the scope rule of {classifier.name} needs the ImageNet gate model")
    if embed and engine != "local":
        raise ValueError("embeddings are kept by the local engine only")
    paths = manifest["abs_path"].tolist()

    def run(model: Classifier, keep_embeddings: bool = False):
        if engine == "local":
            return run_outputs(model, paths, batch_size, workers, progress, embed=keep_embeddings)
        from explorer.diagnose.ray_engine import run_logits_ray

        return (*run_logits_ray(model, paths, batch_size, address), None)

    logits, statuses, vectors = run(classifier, embed)
    gate_logits = run(gate)[0] if scope is not None and scope.needs_gate else None
    table = build_eval_table(classifier, manifest, logits, statuses, taxonomy, data_root, prior, scope, gate_logits)
    store = None
    if vectors is not None:
        store = EmbeddingStore(classifier.name, classifier.weights_sha256, table["photo_id"].to_numpy(str), vectors)
    return Evaluation(table, store)
