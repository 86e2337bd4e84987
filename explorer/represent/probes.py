"""Linear heads on the frozen features of a base model (default: ImageNet EfficientNet-Lite0 on the CUB-100 train
split), registered as a model card. The command line is ``explorer-train-head`` (``explorer.tools.train_head``).

Features are cached in checkpoints/.cache/features; the head (a few hundred KB), its label file and card are
written to checkpoints/ (the project's own output; CUB-200-2011's terms apply to anything trained on it).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from explorer.models.batches import photo_loader
from explorer.models.classifier import Classifier

log = logging.getLogger(__name__)
SEED = 0


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
    """Multinomial logistic regression (full-batch L-BFGS, L2 on the weights), deterministic for a seed."""
    torch.manual_seed(SEED)
    x = torch.from_numpy(features).float()
    y = torch.from_numpy(targets).long()
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


def choose_weight_decay(
    features: np.ndarray, targets: np.ndarray, num_classes: int, grid=(1e-4, 1e-3, 1e-2)
) -> tuple[float, dict]:
    """Pick the L2 strength on a fixed 20 % hold-out of the training photos (never the test split)."""
    rng = np.random.default_rng(SEED)
    held = rng.random(len(targets)) < 0.2
    scores = {}
    for wd in grid:
        head = fit_linear_head(features[~held], targets[~held], num_classes, wd)
        with torch.no_grad():
            pred = head(torch.from_numpy(features[held]).float()).argmax(1).numpy()
        scores[wd] = float((pred == targets[held]).mean())
    return max(scores, key=scores.get), scores


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
