"""Train linear heads on frozen features of a base model on the CUB-100 train split (flag 1 in
train_test_split.txt, 2,903 photos; never the test split).

    explorer-train-head                       # the plain species head: card cub100_effnet_head
    explorer-train-head --taxonomy-smoothing  # the same with taxonomy-aware label smoothing: cub100_effnet_taxsmooth
    explorer-train-head --rank-heads          # order/family/genus/species heads on cub100_effnet_head's embedding

Features are cached in checkpoints/.cache/features; heads (a few hundred KB), label files and cards are written to
checkpoints/ (the project's own output; CUB-200-2011's terms apply to anything trained on it). --rank-heads also
adds "rank_heads" to the base model's card.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from explorer.diagnose.table import truth_lineages
from explorer.models.batches import run_outputs
from explorer.models.rank_heads import HEAD_RANKS, save_rank_heads
from explorer.photos.manifests import cub100_manifest
from explorer.represent.probes import SEED, choose_weight_decay, extract_features, fit_linear_head, write_card
from explorer.represent.rank_training import choose_smoothing, fit_rank_heads, taxonomy_targets
from explorer.services.resources import load_classifier_for
from explorer.settings import DATA_DIR, add_model_arguments, settings_from_args
from explorer.tools.cli import one_line_errors

log = logging.getLogger(__name__)


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cub-root", type=Path, default=DATA_DIR / "cub100")
    parser.add_argument(
        "--base", default=None, help="default: efficientnet_lite0_imagenet (cub100_effnet_head for --rank-heads)"
    )
    parser.add_argument(
        "--head-module",
        default="_fc",
        help="the species head (its input is the features); with --rank-heads, "
        "'embedding' trains on the pooled CAM layer instead",
    )
    parser.add_argument("--name", default=None, help="the new card's name")
    parser.add_argument("--out-dir", type=Path, default=None, help="default: the checkpoint folder")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--taxonomy-smoothing", action="store_true", help="label smoothing over the taxonomy")
    kind.add_argument("--rank-heads", action="store_true", help="per-rank heads on the base model's embedding")
    args = add_model_arguments(parser).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.manual_seed(SEED)
    settings = settings_from_args(args)
    out_dir = args.out_dir or settings.checkpoint_dir
    train = cub100_manifest(args.cub_root, "train")
    paths = [str(args.cub_root / p) for p in train["path"]]
    if args.rank_heads:
        print(f"wrote {train_rank_heads(settings, args, train, paths, out_dir)}")
        return
    print(f"wrote {train_species_head(settings, args, train, paths, out_dir)}")


def train_species_head(settings, args, train: pd.DataFrame, paths: list[str], out_dir: Path) -> Path:
    """A 100-species head on the base model's head input, plain or taxonomy-smoothed; its card's path."""
    classifier, _ = load_classifier_for(settings, args.base or "efficientnet_lite0_imagenet", [])
    cache = (
        settings.resolved_cache_dir
        / "features"
        / f"cub100-train-{args.head_module}-{classifier.weights_sha256[:12]}.npy"
    )
    features = extract_features(classifier, args.head_module, paths, cache)
    classes = pd.read_csv(args.cub_root / "classes_taxonomy.csv").sort_values("class_id").reset_index(drop=True)
    targets = train["class_id"].to_numpy()
    weight_decay, scores = choose_weight_decay(features, targets, len(classes))
    log.info("hold-out accuracy by L2: %s -> %g", scores, weight_decay)
    stats = {"train_photos": len(train), "weight_decay": weight_decay}
    if args.taxonomy_smoothing:
        (epsilon, decay), tried = choose_smoothing(features, targets, classes, weight_decay)
        soft = taxonomy_targets(classes, epsilon, decay)[targets]  # (photos, classes) target probabilities
        head = fit_linear_head(features, soft, len(classes), weight_decay)
        stats["how"] = (
            f"taxonomy-aware label smoothing epsilon {epsilon:g}, decay {decay:g} per rank up the tree (genus, "
            f"family, order as classes_taxonomy.csv gives them, then the rest), chosen on the same hold-out by top-1 "
            f"among {len(tried)} settings"
        )
        stats["card"] = {"geo_prior": "geo/inat_bird.safetensors", "priority": 60}
        card = write_card(
            out_dir,
            args.name or "cub100_effnet_taxsmooth",
            classes,
            head,
            classifier.card,
            stats,
            "taxonomy-smoothed head",
        )
    else:
        head = fit_linear_head(features, targets, len(classes), weight_decay)
        stats["card"] = {"geo_prior": "geo/inat_bird.safetensors"}
        card = write_card(out_dir, args.name or "cub100_effnet_head", classes, head, classifier.card, stats)
    return card


def train_rank_heads(settings, args, train: pd.DataFrame, paths: list[str], out_dir: Path) -> Path:
    """Order/family/genus/species heads on what the base model's species head reads (``--head-module``; or its
    embedding with ``--head-module embedding``) for the training photos; the base card (in ``out_dir``) gets a
    "rank_heads" entry naming them."""
    base = args.base or "cub100_effnet_head"
    classifier, taxonomy = load_classifier_for(settings, base, train["scientific_name"])
    reads = "" if args.head_module == "embedding" else args.head_module
    name = f"cub100-train-{reads or 'embedding'}-{classifier.weights_sha256[:12]}.npy"
    features = _embeddings(classifier, paths, settings.resolved_cache_dir / "features" / name, reads)
    lineages = truth_lineages(train["scientific_name"].tolist(), taxonomy, classifier.card.taxon_scope or None)
    frame = pd.DataFrame({rank: [lin.at(rank) for lin in lineages] for rank in HEAD_RANKS})
    what = f"the input of {base}'s {reads} (what its species head reads)" if reads else f"{base}'s embedding"
    source = (
        f"explorer-train-head --rank-heads: linear heads (L-BFGS, L2 chosen per rank on a 20 % hold-out, seed "
        f"{SEED}) on {what}, CUB-100 train split ({len(train)} photos; lineages from the iNat taxonomy)"
    )
    heads, stats = fit_rank_heads(features, frame, source)
    path = save_rank_heads(out_dir / "rank_heads" / f"{base}.json", replace(heads, input_module=reads))
    card_path = out_dir / f"{base}.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["rank_heads"] = f"rank_heads/{path.name}"
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    log.info("rank heads: %s", stats)
    return path


def _embeddings(classifier, paths: list[str], cache: Path, module: str) -> np.ndarray:
    """The photos' features: the input of ``module``, or the embedding when it is ''; cached."""
    if module:
        return extract_features(classifier, module, paths, cache)
    if cache.is_file():
        return np.load(cache)
    _logits, statuses, embeddings = run_outputs(classifier, paths, embed=True)
    if any(s != "ok" for s in statuses):
        raise ValueError(f"unreadable training photos: {[s for s in statuses if s != 'ok'][:3]}")
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, embeddings)
    return embeddings


if __name__ == "__main__":
    main()
