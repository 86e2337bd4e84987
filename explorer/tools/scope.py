"""Fit and measure a species model's scope rule ("is this a bird at all?", "one of its species?"), for any card.

    explorer-scope [--only MODEL ...] [--images MY_PHOTOS ...] [--data-root ../shared/data] [--out-dir DIR]

Photos, each with the group it shows (bird, insect, other):
- birds: birds525-valid (1,110) and the CUB-100 test split (2,999); insects: Leeds butterflies (145) (from the
  shared data folder, when it is there);
- the Coral sample photos (3 birds, a dragonfly, a bee on a sunflower, a cat, a person);
- other: the photos shipped inside scikit-image, scikit-learn and matplotlib (a cat, people, a rocket, coffee,
  coins, textures, a page of text, ...), read from the installed packages;
- your own labelled photos (``--images``, any layout explorer-evaluate reads): photos of the model's subject, their
  labels matched to its classes (a species it has no class for is evidence for the open-set threshold).
In scope for a model = photos of its subject (the card's ``subject``; for a subject other than bird or insect, your
photos alone); out of scope = the rest. ``identify.scope_check.fit_rule`` chooses the score and threshold on one
half (a stable hash of the photo id) and reports on the other. The rule is written beside the model's card
(``scope/<model>.json`` in the card's folder, or ``--out-dir``), where the app finds it: the model then says
"out of scope" for what it does not know, and "Best model for this photo" can route to it. Logits are cached in
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
from explorer.models.cards import card_folder
from explorer.models.label_matching import match_labels
from explorer.photos.images import IMAGE_SUFFIXES
from explorer.photos.labelled import read_labelled
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


SHARED_SETS = (
    ("birds525-valid/manifest.csv", "bird"),
    ("cub100:test", "bird"),
    ("leeds-butterflies/manifest.csv", "insect"),
)


def photo_sets(settings: Settings) -> pd.DataFrame:
    """abs_path, photo_id, group, set, scientific_name (None for photos without a species label); the shared
    labelled sets only when the data folder holds them."""
    root = settings.data_root
    frames = []
    for source, group in SHARED_SETS:
        marker = root / ("cub100/images.txt" if source.startswith("cub100:") else source) if root else None
        if marker is not None and marker.is_file():
            frames.append(shipped_manifest(root, [source]).assign(group=group))
    empty = pd.DataFrame(columns=["source", "path", "abs_path", "group", "scientific_name"])
    labelled = pd.concat(frames, ignore_index=True) if frames else empty
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


def own_photos(settings: Settings, sources: list[Path], classifier, taxonomy) -> pd.DataFrame:
    """The user's labelled photos (``--images``) as photos of the model's subject, their labels matched to its
    classes (``class_index`` -1: a species it has no class for, or a label that matches nothing)."""
    frames = []
    for source in sources:
        photos = read_labelled(source, data_root=settings.data_root)
        print(photos.describe())
        report = match_labels(photos.frame["label"].astype(str).tolist(), classifier.labels, taxonomy)
        print(report.summary())
        matches = [report.matches[label] for label in photos.frame["label"].astype(str)]
        matched = photos.frame.assign(
            scientific_name=[m.name for m in matches], true_class_index=[m.class_index for m in matches]
        )
        frames.append(scope_rows(matched, classifier.card.subject))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def scope_rows(photos: pd.DataFrame, subject: str) -> pd.DataFrame:
    """Labelled photos whose labels were matched (``scientific_name``, ``true_class_index``) as photos of the
    model's subject, in the columns the scope fit reads."""
    return pd.DataFrame(
        {
            "abs_path": photos["abs_path"],
            "photo_id": photos["source"].astype(str) + ":" + photos["path"].astype(str),
            "group": subject,
            "set": photos["source"].astype(str),
            "scientific_name": photos["scientific_name"],
            "class_index": photos["true_class_index"],
        }
    )


def fit_model(classifier, taxonomy, photos: pd.DataFrame, gate_logits, cache_dir: Path, workers=None):
    """The model's scope rule from the photos (its own logits cached, the gate's given: None without a gate)."""
    subject = classifier.card.subject
    own = max_logit(
        cached_logits(classifier, photos["abs_path"].tolist(), cache_dir, workers), classifier.background_index
    )
    gate = gate_probability(gate_logits, subject) if gate_logits is not None and subject in IMAGENET_GROUPS else None
    inside = (photos["group"] == subject).to_numpy()
    if not inside.any() or inside.all():
        raise ValueError(
            f"{classifier.name}: no photos {'of' if not inside.any() else 'other than'} its subject "
            f"({subject!r}) to fit a scope rule on; give photos of it with --images"
        )

    def evidence(mask):
        sets = photos.loc[mask, "set"].value_counts().sort_index().to_dict()
        return Evidence(own[mask], None if gate is None else gate[mask], photos.loc[mask, "photo_id"].tolist(), sets)

    labelled = inside & photos["scientific_name"].notna().to_numpy()
    in_vocab = _in_vocabulary(classifier, taxonomy, photos, labelled)
    return fit_rule(
        classifier.name,
        subject,
        evidence(inside),
        evidence(~inside),
        evidence(labelled & in_vocab),
        evidence(labelled & ~in_vocab),
    )


def _in_vocabulary(classifier, taxonomy, photos: pd.DataFrame, labelled: np.ndarray) -> np.ndarray:
    """Whether the model has a class for each labelled photo's species: the user's photos as their labels were
    matched (``class_index``), the shared sets' by name through synonyms."""
    matched = photos["class_index"].to_numpy(float) if "class_index" in photos else np.full(len(photos), np.nan)
    by_name = labelled & np.isnan(matched)
    names = photos["scientific_name"].fillna("").astype(str).to_numpy()[by_name].tolist()
    in_vocab = np.zeros(len(photos), bool)
    lineages = truth_lineages(names, taxonomy, classifier.card.taxon_scope)
    in_vocab[by_name] = match_truth(classifier, names, lineages) >= 0
    in_vocab[labelled & ~np.isnan(matched)] = matched[labelled & ~np.isnan(matched)] >= 0
    return in_vocab


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--out-dir", type=Path, default=None, help="where the rules go (default: scope/ beside each model's card)"
    )
    parser.add_argument(
        "--only",
        "--model",
        dest="only",
        action="append",
        metavar="MODEL",
        help=f"a model card's name, repeatable (default: {', '.join(MODELS)})",
    )
    parser.add_argument(
        "--images", type=Path, action="append", default=[], help="your labelled photos of the model's subject"
    )
    parser.add_argument("--workers", type=int, default=None)
    args = add_model_arguments(parser).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = settings_from_args(args)
    shared = photo_sets(settings)
    for model in args.only or MODELS:
        classifier, taxonomy = load_classifier_for(settings, model, shared["scientific_name"].dropna())
        mine = own_photos(settings, args.images, classifier, taxonomy)
        fit_and_save(settings, classifier, taxonomy, mine, shared, args.out_dir, args.workers)


def fit_and_save(settings: Settings, classifier, taxonomy, mine=None, shared=None, out_dir=None, workers=None):
    """Fit the model's scope rule on the shared photo sets and ``mine`` (the user's photos of its subject, as
    scope_rows gives them), write it (beside the card, or in ``out_dir``) and print what it used and found. Returns
    the rule file."""
    cache_dir = settings.resolved_cache_dir / "scope"
    shared = photo_sets(settings) if shared is None else shared
    gate, _ = load_classifier_for(settings, GATE_MODEL, [])
    photos = pd.concat([shared, mine], ignore_index=True) if mine is not None and len(mine) else shared
    gate_logits = cached_logits(gate, photos["abs_path"].tolist(), cache_dir, workers)
    rule = fit_model(classifier, taxonomy, photos, gate_logits, cache_dir, workers)
    model = classifier.name
    path = save_rule(rule, (out_dir or card_folder(classifier.card, settings) / "scope") / f"{model}.json")
    chosen = rule.figures["candidates"][rule.score]["held_out_half"]
    print(f"{model}: {rule.score} >= {rule.threshold:.3f} -> {relative_path(path, PROJECT_ROOT)}")
    print(f"  in scope: {_counts(rule.figures['in_scope_sets'])}")
    print(f"  out of scope: {_counts(rule.figures['out_of_scope_sets'])}")
    print(f"  held-out half: {json.dumps(chosen)}")
    if "open_set" in rule.figures:
        print(f"  open set: {json.dumps({k: v for k, v in rule.figures['open_set'].items() if k != 'sets'})}")
    return path


def _counts(sets: dict) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in sets.items()) or "none"


if __name__ == "__main__":
    main()
