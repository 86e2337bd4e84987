"""Run a model over labelled photos and write its evaluation table (parquet), the dashboard's only input.

    explorer-evaluate --model inat_bird --images MANIFEST_OR_FOLDER [--images ...] \
        --out assets/eval/inat_bird.parquet [--engine local|ray] [--batch-size 64] [--workers N]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from explorer.diagnose.model_pass import evaluate_photos
from explorer.diagnose.schema import save_table
from explorer.photos.manifests import read_manifest
from explorer.represent.embeddings import embeddings_path, save_embeddings
from explorer.services.resources import load_classifier_for, load_priors_for, load_scope_for
from explorer.settings import add_model_arguments, settings_from_args


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model card name")
    parser.add_argument("--images", type=Path, action="append", required=True, help="manifest CSV or folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--engine", choices=["local", "ray"], default="local")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: 0 on <= 2 cores)")
    parser.add_argument("--exclude-noted", action="store_true", help="drop photos whose manifest note flags them")
    parser.add_argument(
        "--no-geo",
        action="store_true",
        help="do not re-rank with the model's geo-prior (by default photos with lat/lon in the manifest are)",
    )
    parser.add_argument(
        "--no-embeddings",
        action="store_true",
        help="do not write OUT's embeddings file (by default NAME.embeddings.npz beside the table; local engine)",
    )
    parser.add_argument(
        "--no-scope",
        action="store_true",
        help="leave out the scope columns (by default added when checkpoints/scope/MODEL.json exists)",
    )
    return add_model_arguments(parser)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = settings_from_args(args)
    manifest = pd.concat([read_manifest(p, settings.data_root) for p in args.images], ignore_index=True)
    if args.exclude_noted:
        manifest = manifest[manifest["note"].fillna("") == ""].reset_index(drop=True)
    classifier, taxonomy = load_classifier_for(settings, args.model, manifest["scientific_name"])
    prior = None if args.no_geo else load_priors_for(settings, classifier)  # every prior, the default first
    scope, gate = (None, None) if args.no_scope else load_scope_for(settings, classifier)
    found = evaluate_photos(
        classifier,
        manifest,
        taxonomy,
        settings.data_root,
        args.engine,
        args.batch_size,
        args.workers,
        args.address,
        prior=prior,
        scope=scope,
        gate=gate,
        embed=args.engine == "local" and not args.no_embeddings,
    )
    table = found.table
    save_table(table, args.out)
    if found.embeddings is not None:
        save_embeddings(found.embeddings, embeddings_path(args.out))
    print(
        f"{len(table)} photos, top-1 {table['correct_1'].mean():.3f}, in vocabulary {table['in_vocab'].mean():.3f}"
        f" -> {args.out}"
    )


if __name__ == "__main__":
    main()
