"""The evaluation's model pass on Ray Data, for photo sets larger than one machine.

Same preprocessing (``Transform``) and the same weights as the local engine, so the tables are the same;
only where the work runs differs. ``address=None`` starts a local Ray; pass a cluster address otherwise. Where the
cluster has GPUs, one actor per GPU runs the model there (float16 autocast, as the app does on a GPU); otherwise
one actor runs it on the CPU (``actor_plan``).
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np
import torch

from explorer.models.batches import Transform, transform_for
from explorer.models.classifier import Classifier, embedding_capture
from explorer.models.registry import create_model

log = logging.getLogger(__name__)


class Predictor:
    """A Ray Data actor: builds the model once from the card's architecture and the driver's weights; with
    ``embedding`` (the CAM layer's name, its layout, the pre-logits layer's name), it also keeps each photo's
    embedding from the same forward pass, as the local engine does."""

    def __init__(
        self, architecture: tuple, num_classes: int, state: dict, transform: Transform, embedding=None, device="cpu"
    ):
        torch.set_num_threads(max(1, torch.get_num_threads()))
        name, options = architecture
        self.module = create_model(name, num_classes, options, transform.size)
        self.module.load_state_dict(state)
        self.device = torch.device(device)
        self.module.eval().requires_grad_(False).to(self.device)
        self.transform = transform
        self.embedding = embedding

    def __call__(self, batch: dict) -> dict:
        tensors, statuses = zip(*(self.transform(str(p)) for p in batch["path"]))
        return {"index": batch["index"], "status": list(statuses), **self.forward(torch.stack(tensors))}

    def forward(self, x: torch.Tensor) -> dict:
        """A batch (B, 3, S, S) -> {"logits": (N,) per photo, and with ``embedding`` "embedding": (D,) per photo}."""
        capture = embedding_capture(self.module, *self.embedding) if self.embedding else contextlib.nullcontext()
        autocast = (
            torch.autocast("cuda", dtype=torch.float16) if self.device.type == "cuda" else contextlib.nullcontext()
        )
        with torch.no_grad(), autocast, capture:
            logits = self.module(x.to(self.device, non_blocking=True)).float().cpu().numpy()
        out = {"logits": list(logits)}
        if self.embedding:
            out["embedding"] = list(capture.array())
        return out


def actor_plan(resources: dict) -> dict:
    """How the model's actors run, given the cluster's resources (``ray.cluster_resources()``): one per GPU, each
    holding one, when there are GPUs; else one on the CPU (torch uses the node's cores itself)."""
    gpus = int(resources.get("GPU", 0))
    if gpus > 0:
        return {"actors": gpus, "num_gpus": 1, "device": "cuda"}
    return {"actors": 1, "num_gpus": 0, "device": "cpu"}


def run_outputs_ray(
    classifier: Classifier, paths: list[str], batch_size: int = 64, address: str | None = None, embed: bool = False
) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """(n, N) logits, statuses and, with ``embed``, the (n, D) embeddings, in the order of ``paths``, computed by
    Ray Data actors."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    state = {k: v.cpu() for k, v in classifier.module.state_dict().items()}
    items = [{"index": i, "path": p} for i, p in enumerate(paths)]
    layer = classifier.cam_layer_name or classifier.card.cam_layer
    embedding = (layer, classifier.cam_layout, classifier.pre_logits) if embed else None
    plan = actor_plan(ray.cluster_resources())
    log.info("Ray Data: %d actor(s) on %s", plan["actors"], plan["device"])
    with warnings.catch_warnings():  # Ray Data's own deprecated settings, read by Ray itself: not ours to act on
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # our own log says what runs; Ray's would print every 10 s
        context.enable_operator_progress_bars = False
        dataset = ray.data.from_items(items).map_batches(
            Predictor,
            fn_constructor_args=(
                (classifier.card.architecture, classifier.build_options),
                len(classifier.labels),
                state,
                transform_for(classifier),
                embedding,
                plan["device"],
            ),
            batch_size=batch_size,
            compute=ray.data.ActorPoolStrategy(size=plan["actors"]),
            num_gpus=plan["num_gpus"],
            batch_format="numpy",
        )
        rows = sorted(dataset.iter_rows(), key=lambda row: int(row["index"]))
    if len(rows) != len(paths):
        raise RuntimeError(f"Ray returned {len(rows)} rows for {len(paths)} photos")
    logits = np.stack([np.asarray(row["logits"], dtype=np.float32) for row in rows])
    vectors = np.stack([np.asarray(row["embedding"], dtype=np.float32) for row in rows]) if embed else None
    return logits, [str(row["status"]) for row in rows], vectors


def run_logits_ray(
    classifier: Classifier, paths: list[str], batch_size: int = 64, address: str | None = None
) -> tuple[np.ndarray, list[str]]:
    """(n, N) logits and statuses, in the order of ``paths``, computed by Ray Data actors."""
    return run_outputs_ray(classifier, paths, batch_size, address)[:2]
