"""Linear heads on the frozen features of a base model (default: ImageNet EfficientNet-Lite0 on the CUB-100 train
split), registered as a model card. The command line is ``explorer-train-head`` (``explorer.tools.train_head``).

Features are cached in checkpoints/.cache/features; the head (a few hundred KB), its label file and card are
written to checkpoints/ (the project's own output; CUB-200-2011's terms apply to anything trained on it).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from explorer.models.batches import photo_loader
from explorer.models.classifier import Classifier

log = logging.getLogger(__name__)
SEED = 0
WEIGHT_DECAY_GRID = (1e-4, 1e-3, 1e-2)
Setting = TypeVar("Setting")


def extract_features(
    classifier: Classifier,
    head_module: str,
    paths: list[str],
    cache: Path | None,
    batch_size: int = 64,
    workers: int | None = None,
) -> np.ndarray:
    """(n, D) inputs of ``head_module`` (the pooled features) for each photo; cached as .npy when asked."""
    if cache is not None and cache.is_file():
        return np.load(cache)
    from tqdm.auto import tqdm

    captured: list[torch.Tensor] = []
    head = classifier.module.get_submodule(head_module)
    handle = head.register_forward_pre_hook(lambda _m, inputs: captured.append(inputs[0].detach().float().cpu()))
    loader = photo_loader(classifier, paths, batch_size, workers)
    try:
        with torch.no_grad():
            for batch, status in tqdm(loader, desc="features", unit="batch"):
                if any(s != "ok" for s in status):
                    raise ValueError(f"unreadable training photos: {[s for s in status if s != 'ok'][:3]}")
                classifier.module(batch.to(classifier.device))
    finally:
        handle.remove()
    features = torch.cat(captured).numpy()
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, features)
    return features


def fit_linear_head(
    features: np.ndarray, targets: np.ndarray, num_classes: int, weight_decay: float, steps: int = 200
) -> nn.Linear:
    """Multinomial logistic regression (full-batch L-BFGS, L2 on the weights), deterministic for a seed.

    Args:
        features: (n, D) inputs, one row per photo.
        targets: (n,) class indices, or (n, num_classes) target probabilities (soft labels, e.g. taxonomy-aware
            smoothing); cross-entropy takes either, and a one-hot row gives the same loss as its index.
        num_classes: the head's outputs.
        weight_decay: the L2 strength on the weights (not the bias).
        steps: L-BFGS iterations.

    Returns:
        The fitted head, in eval mode.
    """
    torch.manual_seed(SEED)
    x = torch.from_numpy(np.asarray(features)).float()
    y = _target_tensor(np.asarray(targets), len(x), num_classes)
    head = nn.Linear(x.shape[1], num_classes)
    optimizer = torch.optim.LBFGS(
        head.parameters(), lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(head(x), y) + weight_decay * head.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return head.eval()


def _target_tensor(targets: np.ndarray, photos: int, num_classes: int) -> torch.Tensor:
    """Class indices as long, target probabilities as float: the two kinds cross_entropy takes."""
    if targets.shape == (photos,):
        return torch.from_numpy(targets).long()
    if targets.shape == (photos, num_classes):
        return torch.from_numpy(targets).float()
    raise ValueError(
        f"targets must be ({photos},) class indices or ({photos}, {num_classes}) probabilities, "
        f"got shape {targets.shape}"
    )


def choose_on_holdout(
    features: np.ndarray,
    targets: np.ndarray,
    grid: Sequence[Setting],
    fit: Callable[[np.ndarray, np.ndarray, Setting], nn.Linear],
) -> tuple[Setting, dict[Setting, float]]:
    """The grid setting whose head has the best top-1 on a fixed 20 % hold-out of the training photos (never the
    test split); ties go to the first in the grid.

    Args:
        features: (n, D) inputs of the training photos.
        targets: (n,) their class indices.
        grid: the settings to try.
        fit: ``fit(features, targets, setting)`` -> a head fitted on the other 80 % with that setting.

    Returns:
        The chosen setting and every setting's hold-out top-1.
    """
    held = np.random.default_rng(SEED).random(len(targets)) < 0.2
    scores = {}
    for setting in grid:
        head = fit(features[~held], targets[~held], setting)
        with torch.no_grad():
            pred = head(torch.from_numpy(features[held]).float()).argmax(1).numpy()
        scores[setting] = float((pred == targets[held]).mean())
        log.info("%s: hold-out top-1 %.3f", setting, scores[setting])
    return max(scores, key=scores.get), scores


def choose_weight_decay(
    features: np.ndarray, targets: np.ndarray, num_classes: int, grid: Sequence[float] = WEIGHT_DECAY_GRID
) -> tuple[float, dict[float, float]]:
    """The L2 strength of ``grid`` with the best hold-out top-1 (``choose_on_holdout``), and every one's top-1."""
    return choose_on_holdout(features, targets, grid, lambda x, y, wd: fit_linear_head(x, y, num_classes, wd))


def write_card(
    out_dir: Path, name: str, classes: pd.DataFrame, head: nn.Linear, base_card, stats: dict, kind: str = ""
) -> Path:
    """The head, its labels and its card; ``kind`` describes a head trained otherwise than the plain way."""
    from safetensors.torch import save_file

    head_file, labels_file = f"{name}_head.safetensors", f"{name}_labels.txt"
    save_file(
        {"_fc.weight": head.weight.detach().contiguous(), "_fc.bias": head.bias.detach().contiguous()},
        str(out_dir / head_file),
    )
    lines = [f"{row.scientificName} ({row.cub_name.replace('_', ' ')})" for row in classes.itertuples()]
    (out_dir / labels_file).write_text("\n".join(lines) + "\n", encoding="utf-8")
    card = {
        "name": name,
        "display_name": f"CUB birds: 100 species (EfficientNet-Lite0 + {kind or 'linear head'}, trained here)",
        "architecture": base_card.architecture,
        "weights": {
            "format": base_card.weights.format,
            "package": base_card.weights.package,
            "file": base_card.weights.file,
        },
        "head_weights": head_file,
        "labels_file": labels_file,
        "labels_format": "coral",
        "subject": "bird",
        "taxonomy": "inat",
        "taxon_scope": {"class": "Aves"},
        "input_size": base_card.input_size,
        "mean": list(base_card.mean),
        "std": list(base_card.std),
        "cam_layer": base_card.cam_layer,
        "license": "Head trained on CUB-200-2011 (Wah et al. 2011): non-commercial research and education only; "
        "base weights Apache-2.0",
        "source": f"explorer-train-head: linear head on frozen ImageNet EfficientNet-Lite0 features, "
        f"CUB-100 train split ({stats['train_photos']} photos, flag 1 in train_test_split.txt), "
        f"L2 {stats['weight_decay']:g} chosen on a 20 % hold-out of train, seed {SEED}"
        + (f"; {stats['how']}" if stats.get("how") else ""),
        "priority": 50,
        **stats.get("card", {}),
    }
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return path
