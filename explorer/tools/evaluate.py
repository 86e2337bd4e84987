"""Run a model over labelled photos and write its evaluation table (parquet), the dashboard's only input.

    explorer-evaluate --model inat_bird --images PHOTOS [--images ...] --out assets/eval/inat_bird.parquet

PHOTOS is a folder of class folders (ImageFolder: the label is the folder's name as written), a table (.csv, .tsv,
.parquet: --path-column, --label-column) or a COCO / iNat 2021 JSON (the label is the category's name; an image's
latitude, longitude and date become its place). Labels are matched to the model's classes before any photo is run:
as the class name, a class index, a scientific name (through synonyms, also inside iNat 2021 or CUB folder names)
or an English name. What matched and how is printed; when most labels match nothing, nothing is written (exit 2).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from explorer.diagnose.causes import LABEL_THRESHOLD
from explorer.diagnose.model_pass import evaluate_photos
from explorer.diagnose.schema import save_table
from explorer.models.label_matching import LabelReport, candidate_names, match_labels
from explorer.models.registry import list_models
from explorer.photos.labelled import read_labelled
from explorer.represent.embeddings import embeddings_path, save_embeddings
from explorer.represent.report import representation_report
from explorer.represent.taxonomy_fit import representation_path, write_representation
from explorer.services.resources import load_classifier_for, load_priors_for, load_scope_for
from explorer.settings import add_model_arguments, settings_from_args
from explorer.tools.cli import one_line_errors
from explorer.tools.scope import fit_and_save, scope_rows
from explorer.tools.subject_columns import surroundings_line, with_surroundings


def _parser() -> argparse.ArgumentParser:
    architectures = ", ".join(list_models())
    epilog = f"A model card's architecture is one of: {architectures} (see the docs' model card reference)."
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="model card name")
    parser.add_argument(
        "--images",
        type=Path,
        action="append",
        required=True,
        help="labelled photos: a folder of class folders, a .csv/.tsv/.parquet table or a COCO / iNat 2021 .json "
        "(repeatable)",
    )
    name_help = "the photo set's name, one per --images (default: a folder's name; a table's or JSON's file name, "
    parser.add_argument("--name", action="append", help=name_help + "or its folder's for manifest/labels files)")
    parser.add_argument("--path-column", help="a table's column of photo paths (default: path, file_name, ...)")
    parser.add_argument(
        "--label-column", help="a table's column of labels (default: scientific_name, label, species, ...)"
    )
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
    return add_model_arguments(_add_view_options(parser))


def _add_view_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """What is made beside the table (embeddings, scope, the organism or its surroundings, the other views)."""
    parser.add_argument(
        "--no-embeddings",
        action="store_true",
        help="do not write OUT's embeddings file (by default NAME.embeddings.npz beside the table)",
    )
    parser.add_argument(
        "--all-views",
        action="store_true",
        help="everything the app shows for the model, in one go: first its scope rule, fitted on these photos "
        "(as explorer-scope --only MODEL --images ...), then the table with its embeddings and the organism-or-"
        "surroundings columns (as --surroundings), then the representation report (as explorer-represent)",
    )
    parser.add_argument(
        "--surroundings",
        action="store_true",
        help="also measure, per photo, how much of the answer's map lies outside the organism and the answer with "
        "the organism or its surroundings blurred away (about 0.2 s a photo on 2 cores; --all-views does it too)",
    )
    parser.add_argument(
        "--no-scope",
        action="store_true",
        help="leave out the scope columns (by default added when checkpoints/scope/MODEL.json exists)",
    )
    return parser


def read_photos(args: argparse.Namespace, data_root: Path | None) -> pd.DataFrame:
    """Every --images set as one frame of labelled photos (labels as written), saying how each was read."""
    names = args.name or []
    if names and len(names) != len(args.images):
        raise ValueError(f"--name given {len(names)} times for {len(args.images)} --images; give one per --images")
    frames = []
    for index, source in enumerate(args.images):
        name = names[index] if names else None
        photos = read_labelled(source, name, args.path_column, args.label_column, data_root)
        print(photos.describe())
        frames.append(photos.frame)
    return pd.concat(frames, ignore_index=True)


def with_matches(photos: pd.DataFrame, report: LabelReport, classifier) -> pd.DataFrame:
    """The photos with their truth as the model's class (or the species named, or the label when unmatched)."""
    matches = [report.matches[label] for label in photos["label"].astype(str)]
    photos = photos.assign(scientific_name=[m.name for m in matches], true_class_index=[m.class_index for m in matches])
    known = [classifier.labels[m.class_index].common_name if m.matched else "" for m in matches]
    photos["common_name"] = [given or own for given, own in zip(photos["common_name"], known)]
    return photos


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = settings_from_args(args)
    photos = read_photos(args, settings.data_root)
    if args.exclude_noted:
        photos = photos[photos["note"].fillna("") == ""].reset_index(drop=True)
    classifier, taxonomy = load_classifier_for(settings, args.model, sorted(candidate_names(photos["label"])))
    report = match_labels(photos["label"].astype(str).tolist(), classifier.labels, taxonomy)
    print(report.summary())
    for line in report.details():
        print(line)
    if report.refusal:
        raise ValueError(report.refusal)
    manifest = with_matches(photos, report, classifier)
    if args.all_views:
        fit_and_save(settings, classifier, taxonomy, scope_rows(manifest, classifier.card.subject))
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
        embed=not args.no_embeddings,
    )
    table = found.table
    if args.surroundings or args.all_views:
        files = manifest["abs_path"].astype(str).tolist()
        table = with_surroundings(table, classifier, settings, required=args.surroundings, paths=files)
    save_table(table, args.out)
    if found.embeddings is not None:
        save_embeddings(found.embeddings, embeddings_path(args.out))
    print(outcome(table, args.out))
    if args.all_views and found.embeddings is not None:
        write_report(args.out, table, found.embeddings)


def write_report(out: Path, table: pd.DataFrame, embeddings) -> None:
    """The representation report beside the table (what the dashboard's "Representation" section and map show)."""
    try:
        report = representation_report(table, embeddings)
    except ValueError as err:  # too few photos or taxa to measure
        print(f"no representation report: {err}")
        return
    print(f"representation report -> {write_representation(representation_path(out), report)}")


def outcome(table: pd.DataFrame, out: Path) -> str:
    """What the table says, over the photos it can say it for: top-1 and top-5 of the readable photos of species
    the model knows; the others counted."""
    readable = table["status"] == "ok"
    known = table[readable & table["in_vocab"]]
    parts = [f"{len(table)} photos"]
    if (~readable).any():
        parts.append(f"{int((~readable).sum())} unreadable")
    if (readable & ~table["in_vocab"]).any():
        parts.append(f"{int((readable & ~table['in_vocab']).sum())} of species the model has no class for")
    if len(known):
        scores = f"top-1 {known['correct_1'].mean():.1%}, top-5 {known['correct_k'].mean():.1%}"
        parts.append(f"{len(known)} of species it knows: {scores}")
    else:
        parts.append("none of a species the model knows, so no accuracy")
    if "off_subject_share" in table.columns and table["off_subject_share"].notna().any():
        parts.append(surroundings_line(table))
    if "label_issue_score" in table.columns and table["label_issue_score"].notna().any():
        doubted = int((table["label_issue_score"] >= LABEL_THRESHOLD).sum())
        parts.append(f"{doubted} labels look wrong (label_issue_score >= {LABEL_THRESHOLD}; Diagnose lists them)")
    return "; ".join(parts) + f" -> {out}"


if __name__ == "__main__":
    main()
