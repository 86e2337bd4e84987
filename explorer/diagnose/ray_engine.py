"""The evaluation's model pass on Ray Data, for photo sets larger than one machine.

Same preprocessing (``Transform``) and the same weights as the local engine, so the tables are the same;
only where the work runs differs. ``address=None`` starts a local Ray; pass a cluster address otherwise.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from explorer.models.batches import Transform, transform_for
from explorer.models.classifier import Classifier
from explorer.models.registry import create_model

log = logging.getLogger(__name__)


class _Predictor:
    """A Ray Data actor: builds the model once from the card's architecture and the driver's weights."""

    def __init__(self, architecture: tuple, num_classes: int, state: dict, transform: Transform):
        torch.set_num_threads(max(1, torch.get_num_threads()))
        name, options = architecture
        self.module = create_model(name, num_classes, options, transform.size)
        self.module.load_state_dict(state)
        self.module.eval().requires_grad_(False)
        self.transform = transform

    def __call__(self, batch: dict) -> dict:
        tensors, statuses = zip(*(self.transform(str(p)) for p in batch["path"]))
        with torch.no_grad():
            logits = self.module(torch.stack(tensors)).float().numpy()
        return {"index": batch["index"], "logits": list(logits), "status": list(statuses)}


def run_logits_ray(
    classifier: Classifier, paths: list[str], batch_size: int = 64, address: str | None = None
) -> tuple[np.ndarray, list[str]]:
    """(n, N) logits and statuses, in the order of ``paths``, computed by Ray Data actors."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    state = {k: v.cpu() for k, v in classifier.module.state_dict().items()}
    items = [{"index": i, "path": p} for i, p in enumerate(paths)]
    dataset = ray.data.from_items(items).map_batches(
        _Predictor,
        fn_constructor_args=(
            (classifier.card.architecture, classifier.build_options),
            len(classifier.labels),
            state,
            transform_for(classifier),
        ),
        batch_size=batch_size,
        concurrency=1,
        batch_format="numpy",
    )
    rows = sorted(dataset.iter_rows(), key=lambda row: int(row["index"]))
    if len(rows) != len(paths):
        raise RuntimeError(f"Ray returned {len(rows)} rows for {len(paths)} photos")
    logits = np.stack([np.asarray(row["logits"], dtype=np.float32) for row in rows])
    return logits, [str(row["status"]) for row in rows]
