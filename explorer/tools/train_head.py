"""Train a linear species head on frozen features of a base model and register it as a model card.

    explorer-train-head [--cub-root ../shared/data/cub100] [--base efficientnet_lite0_imagenet]

Features are cached in checkpoints/.cache/features; the head (a few hundred KB), its label file and card are
written to checkpoints/ (the project's own output; CUB-200-2011's terms apply to anything trained on it).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd
import torch

from explorer.datasets import cub100_manifest
from explorer.represent.heads import SEED, choose_weight_decay, extract_features, fit_linear_head, write_card
from explorer.resources import load_classifier_for
from explorer.settings import DATA_DIR, add_model_arguments, settings_from_args

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cub-root", type=Path, default=DATA_DIR / "cub100")
    parser.add_argument("--base", default="efficientnet_lite0_imagenet")
    parser.add_argument("--head-module", default="_fc")
    parser.add_argument("--name", default="cub100_effnet_head")
    parser.add_argument("--out-dir", type=Path, default=None, help="default: the checkpoint folder")
    args = add_model_arguments(parser).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(SEED)
    settings = settings_from_args(args)
    classifier, _ = load_classifier_for(settings, args.base, [])
    train = cub100_manifest(args.cub_root, "train")
    paths = [str(args.cub_root / p) for p in train["path"]]
    cache = settings.resolved_cache_dir / "features" / f"{args.name}-train-{classifier.weights_sha256[:12]}.npy"
    features = extract_features(classifier, args.head_module, paths, cache)
    classes = pd.read_csv(args.cub_root / "classes_taxonomy.csv").sort_values("class_id")
    weight_decay, scores = choose_weight_decay(features, train["class_id"].to_numpy(), len(classes))
    log.info("hold-out accuracy by L2: %s -> %g", scores, weight_decay)
    head = fit_linear_head(features, train["class_id"].to_numpy(), len(classes), weight_decay)
    stats = {"train_photos": len(train), "weight_decay": weight_decay}
    card = write_card(args.out_dir or settings.checkpoint_dir, args.name, classes, head, classifier.card, stats)
    print(f"wrote {card}")


if __name__ == "__main__":
    main()
