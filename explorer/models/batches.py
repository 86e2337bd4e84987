"""The model over many photos: a DataLoader that decodes, checks and normalises photos from paths (an unreadable
photo becomes a zero tensor and a status, never an exception), and batched forward passes (GPU + autocast when
present). The evaluation table and the trained heads both read photos this way."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from explorer.models.classifier import Classifier, centre_square, normalise, resize_rgb
from explorer.models.features import EmbeddingCapture
from explorer.photos.images import load_image

MAX_BYTES, MAX_PIXELS = 50 * 2**20, 100_000_000  # labelled photos: larger limits than uploads


@dataclass(frozen=True)
class Transform:
    """What a DataLoader worker needs to turn a path into the model's input (picklable, no model)."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float = 1.0  # as Classifier.resize: < 1 keeps the central square of that fraction of the short side

    def __call__(self, path: str) -> tuple[torch.Tensor, str]:
        try:
            image = load_image(path, MAX_BYTES, MAX_PIXELS).image
        except (ValueError, OSError) as err:
            return torch.zeros(3, self.size, self.size), f"unreadable: {err}"
        if self.crop_pct < 1.0:
            image = centre_square(image, self.crop_pct)
        return normalise(resize_rgb(image, self.size), self.mean, self.std), "ok"


class PhotoDataset(Dataset):
    def __init__(self, paths: list[str], transform: Transform):
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        tensor, status = self.transform(self.paths[index])
        return tensor, status


def transform_for(classifier: Classifier) -> Transform:
    card = classifier.card
    return Transform(card.input_size, card.mean, card.std, card.crop_pct)


def default_workers() -> int:
    """DataLoader workers: none on a 2-core machine (measured: decoding in the main process keeps up and
    worker processes only compete with the model for the cores), else half the cores, at most 8."""
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(8, cores // 2)


def single_threaded_worker(_worker_id: int) -> None:
    """Decoding workers use one thread each, leaving the cores to the model's forward pass."""
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def photo_loader(classifier: Classifier, paths: list[str], batch_size: int = 64, workers: int | None = None):
    """Batches of (B, 3, S, S) inputs and a status per photo, preprocessed as the classifier's card says."""
    return DataLoader(
        PhotoDataset(paths, transform_for(classifier)),
        batch_size=batch_size,
        num_workers=default_workers() if workers is None else workers,
        pin_memory=classifier.device.type == "cuda",
        worker_init_fn=single_threaded_worker,
    )


def run_logits(
    classifier: Classifier, paths: list[str], batch_size: int = 64, workers: int | None = None, progress: bool = True
) -> tuple[np.ndarray, list[str]]:
    """(n, N) float32 logits and a status per photo, batched through a DataLoader (GPU + autocast if present)."""
    logits, statuses, _ = run_outputs(classifier, paths, batch_size, workers, progress)
    return logits, statuses


def run_outputs(
    classifier: Classifier,
    paths: list[str],
    batch_size: int = 64,
    workers: int | None = None,
    progress: bool = True,
    embed: bool = False,
    extra: EmbeddingCapture | None = None,
) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    """Logits, a status per photo and, with ``embed``, the (n, D) embeddings from the same forward passes;
    ``extra``: another capture kept open during them (read it afterwards)."""
    from tqdm.auto import tqdm

    loader = photo_loader(classifier, paths, batch_size, workers)
    logits, statuses = [], []
    capture = classifier.embedding_capture() if embed else contextlib.nullcontext()
    with torch.no_grad(), capture, extra or contextlib.nullcontext():
        for batch, status in tqdm(loader, desc=f"evaluate {classifier.name}", disable=not progress, unit="batch"):
            with classifier.autocast():
                out = classifier.module(batch.to(classifier.device, non_blocking=True))
            logits.append(out.float().cpu().numpy())
            statuses.extend(status)
    logits = np.concatenate(logits) if logits else np.zeros((0, len(classifier.labels)), np.float32)
    return logits, statuses, capture.array() if embed else None
