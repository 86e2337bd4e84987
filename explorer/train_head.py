"""Train a linear species head on frozen features of a base model (default: ImageNet EfficientNet-Lite0 on the
CUB-100 train split) and register it as a model card.

    python -m explorer.train_head --cub-root ../shared/data/cub100

Features are cached in checkpoints/.cache/features; the head (a few hundred KB), its label file and card are
written to checkpoints/ (the project's own output; CUB-200-2011's terms apply to anything trained on it).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from explorer.datasets import cub100_manifest
from explorer.evaluate import PhotoDataset, _single_threaded, default_workers, transform_for
from explorer.model import Classifier

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
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    captured: list[torch.Tensor] = []
    head = classifier.module.get_submodule(head_module)
    handle = head.register_forward_pre_hook(lambda _m, inputs: captured.append(inputs[0].detach().float().cpu()))
    loader = DataLoader(
        PhotoDataset(paths, transform_for(classifier)),
        batch_size=batch_size,
        num_workers=default_workers() if workers is None else workers,
        worker_init_fn=_single_threaded,
    )
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


def write_card(out_dir: Path, name: str, classes: pd.DataFrame, head: nn.Linear, base_card, stats: dict) -> Path:
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
        "display_name": "CUB birds: 100 species (EfficientNet-Lite0 + linear head, trained here)",
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
        "source": f"python -m explorer.train_head: linear head on frozen ImageNet EfficientNet-Lite0 features, "
        f"CUB-100 train split ({stats['train_photos']} photos, flag 1 in train_test_split.txt), "
        f"L2 {stats['weight_decay']:g} chosen on a 20 % hold-out of train, seed {SEED}",
        "priority": 50,
    }
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> None:
    import app
    from explorer.config import load_model_cards
    from explorer.model import load_classifier

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cub-root", type=Path, default=app.SHARED / "data" / "cub100")
    parser.add_argument("--base", default="efficientnet_lite0_imagenet")
    parser.add_argument("--head-module", default="_fc")
    parser.add_argument("--name", default="cub100_effnet_head")
    parser.add_argument("--out-dir", type=Path, default=app.ROOT / "checkpoints")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(SEED)
    settings = app.parse_settings([])
    base_card = next(c for c in load_model_cards(settings.checkpoint_dir) if c.name == args.base)
    classifier = load_classifier(base_card, settings)
    train = cub100_manifest(args.cub_root, "train")
    paths = [str(args.cub_root / p) for p in train["path"]]
    cache = settings.resolved_cache_dir / "features" / f"{args.name}-train-{classifier.weights_sha256[:12]}.npy"
    features = extract_features(classifier, args.head_module, paths, cache)
    classes = pd.read_csv(args.cub_root / "classes_taxonomy.csv").sort_values("class_id")
    weight_decay, scores = choose_weight_decay(features, train["class_id"].to_numpy(), len(classes))
    log.info("hold-out accuracy by L2: %s -> %g", scores, weight_decay)
    head = fit_linear_head(features, train["class_id"].to_numpy(), len(classes), weight_decay)
    card = write_card(
        args.out_dir, args.name, classes, head, base_card, {"train_photos": len(train), "weight_decay": weight_decay}
    )
    print(f"wrote {card}")


if __name__ == "__main__":
    main()
