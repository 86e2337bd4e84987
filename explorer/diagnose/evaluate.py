"""Run a model over labelled photos and build the evaluation table, locally or on Ray Data.

    explorer-evaluate --model inat_bird --images MANIFEST_OR_FOLDER [--images ...] \\
        --out assets/eval/inat_bird.parquet [--engine local|ray] [--batch-size 64] [--workers N]
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from explorer.batches import run_logits
from explorer.diagnose.table import build_eval_table
from explorer.geo.combine import BoundPrior
from explorer.model import Classifier
from explorer.taxonomy import Taxonomy


def evaluate(
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
) -> pd.DataFrame:
    """Run the model over a manifest and build the table, locally or on Ray Data."""
    paths = manifest["abs_path"].tolist()
    if engine == "local":
        logits, statuses = run_logits(classifier, paths, batch_size, workers, progress)
    elif engine == "ray":
        from explorer.diagnose.ray_engine import run_logits_ray

        logits, statuses = run_logits_ray(classifier, paths, batch_size, address)
    else:
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    return build_eval_table(classifier, manifest, logits, statuses, taxonomy, data_root, prior)
