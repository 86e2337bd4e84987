"""Fit and measure each species model's scope rule ("is this a bird at all?", "one of its species?").

    explorer-scope [--data-root ../shared/data] [--only inat_bird] [--out-dir checkpoints/scope]

Photos, each with the group it shows (bird, insect, other):
- birds: birds525-valid (1,110) and the CUB-100 test split (2,999); insects: Leeds butterflies (145);
- the Coral sample photos (3 birds, a dragonfly, a bee on a sunflower, a cat, a person);
- other: the photos shipped inside scikit-image, scikit-learn and matplotlib (a cat, people, a rocket, coffee,
  coins, textures, a page of text, ...), read from the installed packages.
In scope for a model = photos of its subject; out of scope = the rest. ``identify.scope_check.fit_rule`` chooses the
score and threshold on one half (a stable hash of the photo id) and reports on the other. Logits are cached in
``checkpoints/.cache/scope`` per model and weights hash, so a second run only computes new photos.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.diagnose.table import match_truth, truth_lineages
from explorer.identify.scope_check import (
    GATE_MODEL,
    IMAGENET_GROUPS,
    Evidence,
    fit_rule,
    gate_probability,
    max_logit,
    save_rule,
)
from explorer.models.batches import run_logits
from explorer.photos.images import IMAGE_SUFFIXES
from explorer.photos.manifests import relative_path
from explorer.services.resources import load_classifier_for
from explorer.settings import PROJECT_ROOT, Settings, add_model_arguments, settings_from_args
from explorer.tools.cli import one_line_errors
from explorer.tools.shipped import shipped_manifest

MODELS = ("inat_bird", "inat_insect", "cub100_effnet_head")
CORAL_GROUPS = {"bird.bmp": "bird", "owl.jpg": "bird", "parrot.jpg": "bird", "dragonfly.bmp": "insect"}
CORAL_GROUPS |= {"sunflower.bmp": "insect", "cat.bmp": "other", "grace_hopper.bmp": "other"}
PACKAGE_IMAGES = {"skimage": "data", "sklearn": "datasets/images", "matplotlib": "mpl-data/sample_data"}
MIN_PACKAGE_IMAGE_BYTES = 20_000  # leaves out icons and logos


def photo_sets(settings: Settings) -> pd.DataFrame:
    """abs_path, photo_id, group, set, scientific_name (None for photos without a species label)."""
    root = settings.data_root
    frames = []
    for source, group in (("birds525-valid/manifest.csv", "bird"), ("cub100:test", "bird")):
        frames.append(shipped_manifest(root, [source]).assign(group=group))
    frames.append(shipped_manifest(root, ["leeds-butterflies/manifest.csv"]).assign(group="insect"))
    labelled = pd.concat(frames, ignore_index=True)
    labelled = labelled.assign(set=labelled["source"], photo_id=labelled["source"] + ":" + labelled["path"])
    rows = [
        {"abs_path": str(p), "photo_id": f"coral-samples:{p.name}", "group": g, "set": "coral-samples"}
        for name, g in CORAL_GROUPS.items()
        for p in [next((d / name for d in settings.model_dirs if (d / name).is_file()), None)]
        if p is not None
    ]
    for package, folder in PACKAGE_IMAGES.items():
        for path in _package_images(package, folder):
            rows.append({"abs_path": str(path), "photo_id": f"{package}:{path.name}", "group": "other", "set": package})
    columns = ["abs_path", "photo_id", "group", "set", "scientific_name"]
    return pd.concat([labelled[columns], pd.DataFrame(rows)], ignore_index=True)


def _package_images(package: str, folder: str) -> list[Path]:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return []
    base = Path(next(iter(spec.submodule_search_locations))) / folder
    return sorted(
        p for p in base.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.stat().st_size >= MIN_PACKAGE_IMAGE_BYTES
    )


def cached_logits(classifier, paths: list[str], cache_dir: Path, workers=None) -> np.ndarray:
    """(n, N) logits for the paths, reusing those cached for this model and weights hash."""
    cache = cache_dir / f"{classifier.name}-{classifier.weights_sha256[:12]}.npz"
    known: dict[str, np.ndarray] = {}
    if cache.is_file():
        with np.load(cache) as stored:
            known = dict(zip(stored["paths"].tolist(), stored["logits"]))
    missing = [p for p in paths if p not in known]
    if missing:
        logits, statuses = run_logits(classifier, missing, workers=workers)
        bad = [p for p, s in zip(missing, statuses) if s != "ok"]
        if bad:
            raise ValueError(f"{len(bad)} photos could not be read, e.g. {bad[0]}")
        known.update(zip(missing, logits))
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, paths=np.array(list(known)), logits=np.stack(list(known.values())))
    return np.stack([known[p] for p in paths])


def fit_model(settings: Settings, model: str, photos: pd.DataFrame, gate_logits, cache_dir: Path, workers=None):
    classifier, taxonomy = load_classifier_for(settings, model, photos["scientific_name"].dropna())
    subject = classifier.card.subject
    own = max_logit(
        cached_logits(classifier, photos["abs_path"].tolist(), cache_dir, workers), classifier.background_index
    )
    gate = gate_probability(gate_logits, subject) if gate_logits is not None and subject in IMAGENET_GROUPS else None
    inside = (photos["group"] == subject).to_numpy()

    def evidence(mask):
        sets = photos.loc[mask, "set"].value_counts().sort_index().to_dict()
        return Evidence(own[mask], None if gate is None else gate[mask], photos.loc[mask, "photo_id"].tolist(), sets)

    names = photos["scientific_name"].fillna("").tolist()
    labelled = inside & photos["scientific_name"].notna().to_numpy()
    in_vocab = np.zeros(len(photos), bool)
    lineages = truth_lineages([names[i] for i in np.flatnonzero(labelled)], taxonomy, classifier.card.taxon_scope)
    in_vocab[labelled] = match_truth(classifier, [names[i] for i in np.flatnonzero(labelled)], lineages) >= 0
    return fit_rule(
        model,
        subject,
        evidence(inside),
        evidence(~inside),
        evidence(labelled & in_vocab),
        evidence(labelled & ~in_vocab),
    )


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=PROJECT_ROOT / "checkpoints" / "scope")
    parser.add_argument("--only", choices=MODELS, action="append")
    parser.add_argument("--workers", type=int, default=None)
    args = add_model_arguments(parser).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = settings_from_args(args)
    cache_dir = settings.resolved_cache_dir / "scope"
    photos = photo_sets(settings)
    gate, _ = load_classifier_for(settings, GATE_MODEL, [])
    gate_logits = cached_logits(gate, photos["abs_path"].tolist(), cache_dir, args.workers)
    for model in args.only or MODELS:
        rule = fit_model(settings, model, photos, gate_logits, cache_dir, args.workers)
        path = save_rule(rule, args.out_dir / f"{model}.json")
        chosen = rule.figures["candidates"][rule.score]["held_out_half"]
        print(f"{model}: {rule.score} >= {rule.threshold:.3f} -> {relative_path(path, PROJECT_ROOT)}")
        print(f"  held-out half: {json.dumps(chosen)}")
        if "open_set" in rule.figures:
            print(f"  open set: {json.dumps({k: v for k, v in rule.figures['open_set'].items() if k != 'sets'})}")


if __name__ == "__main__":
    main()
