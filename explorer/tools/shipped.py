"""Regenerate the evaluation tables shipped in assets/eval/ from the real photos in the shared data folder.

    explorer-shipped [--data-root ../shared/data] [--only inat_bird]

inat_bird: birds525-valid (1,110 photos) + CUB-100 test split (2,999); inat_insect: Leeds butterflies (145);
cub100_effnet_head and cub100_effnet_taxsmooth (the taxonomy-smoothed head): CUB-100 test split (2,999; their heads
were trained on the train split only).

Photos have no recorded place, so for a model with a geo-prior each photo is given the place (and date) of one
held-out eBird record of its true species, chosen at random (seed 0) among the records of the 1-degree cells our
own prior never trained on (every prior of the card re-ranks the same photos at the same places; BirdNET's was
trained on eBird data at large, which may include these records); photos whose species has no held-out record
get no place. The geo columns then say what
the prior does to the top-1 at plausible, unseen places (an optimistic setting: a real photo can come from
anywhere in the range, or outside it).
"""

# The tables carry the exact-calibration columns (``top_nll_KK``, ``top_gap_KK``: a temperature fit over all the
# logits; explorer.diagnose.calibration). To add only those to existing tables, leaving every other column as it
# is, ``python -m explorer.tools.calibration_columns`` runs the models once more and nothing else (no geo-priors,
# gate, embeddings or representation reports; it took 14 minutes for the four tables on 2 cores shared with other
# jobs, 9 of them the iNat bird model over 4,109 photos). The organism-or-surroundings columns alone:
# ``python -m explorer.tools.subject_columns`` (about 45 minutes for the four tables on 2 cores shared with another
# job; explorer-shipped adds them itself). After either,
# ``explorer-results`` rewrites docs/results from the tables.

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from explorer.diagnose.geo_effect import compare_priors
from explorer.diagnose.model_pass import Evaluation, evaluate_photos
from explorer.diagnose.schema import save_table
from explorer.geo.records import held_out_places, training_records
from explorer.photos.manifests import cub100_manifest, read_manifest
from explorer.represent.embeddings import embeddings_path, save_embeddings
from explorer.represent.report import representation_report
from explorer.represent.taxonomy_fit import representation_path, write_representation
from explorer.services.resources import load_classifier_for, load_priors_for, load_scope_for
from explorer.settings import PROJECT_ROOT, Settings, add_model_arguments, settings_from_args
from explorer.tools.cli import one_line_errors
from explorer.tools.subject_columns import with_surroundings

SHIPPED = {
    "inat_bird": ["birds525-valid/manifest.csv", "cub100:test"],
    "inat_insect": ["leeds-butterflies/manifest.csv"],  # its note column only records name spellings
    "cub100_effnet_head": ["cub100:test"],
    "cub100_effnet_taxsmooth": ["cub100:test"],
}
# Same backbone as cub100_effnet_head, so the same embeddings: not stored twice (no similar photos or map of its own)
NO_EMBEDDINGS = {"cub100_effnet_taxsmooth"}


def shipped_manifest(data_root: Path, sources: list[str]) -> pd.DataFrame:
    frames = []
    for source in sources:
        if source.startswith("cub100:"):
            frame = cub100_manifest(data_root / "cub100", source.split(":", 1)[1])
            frame["abs_path"] = [str((data_root / "cub100" / p).resolve()) for p in frame["path"]]
            frames.append(frame)
        else:
            frames.append(read_manifest(data_root / source, data_root, keep_notes=not source.startswith("leeds")))
    return pd.concat(frames, ignore_index=True)


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=PROJECT_ROOT / "assets" / "eval")
    parser.add_argument("--only", choices=sorted(SHIPPED), action="append")
    parser.add_argument("--workers", type=int, default=None)
    args = add_model_arguments(parser).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = settings_from_args(args)
    for model in args.only or SHIPPED:
        found = shipped_evaluation(settings, model, args.workers)
        table = shipped_surroundings(settings, model, found.table)
        save_table(table, args.out_dir / f"{model}.parquet")
        if model not in NO_EMBEDDINGS:
            save_embeddings(found.embeddings, embeddings_path(args.out_dir / f"{model}.parquet"))
            report = representation_report(table, found.embeddings)
            write_representation(representation_path(args.out_dir / f"{model}.parquet"), report)
        print(f"{model}: {len(table)} photos, top-1 {table['correct_1'].mean():.3f} -> {args.out_dir / model}.parquet")
        if "geo_correct_1" in table:
            print(geo_line(table))


def shipped_surroundings(settings: Settings, model: str, table: pd.DataFrame) -> pd.DataFrame:
    """The table with its organism-or-surroundings columns (explorer.tools.subject_columns)."""
    classifier, _ = load_classifier_for(settings, model, table["true_name"].astype(str).unique().tolist())
    return with_surroundings(table, classifier, settings)


def shipped_evaluation(settings: Settings, model: str, workers: int | None = None) -> Evaluation:
    """One shipped table and its embeddings: the model over its photo sets, each photo at a held-out place of its
    true species."""
    data_root = settings.data_root
    manifest = shipped_manifest(data_root, SHIPPED[model])
    classifier, taxonomy = load_classifier_for(settings, model, manifest["scientific_name"])
    priors = load_priors_for(settings, classifier)  # every prior of the card, the default first
    ours = next((p for p in priors.values() if training_records(p, data_root) is not None), None)
    if ours is not None:  # the places: held out from our own prior's training (BirdNET's are unknown to us)
        places = held_out_places(manifest["scientific_name"].tolist(), ours.taxa, *training_records(ours, data_root))
        manifest = pd.concat([manifest, places], axis=1)
    scope, gate = load_scope_for(settings, classifier)
    return evaluate_photos(
        classifier, manifest, taxonomy, data_root, workers=workers, prior=priors, scope=scope, gate=gate, embed=True
    )


def geo_line(table: pd.DataFrame) -> str:
    """Per geo-prior: what it did to the top-1 of the photos with a held-out place."""
    return "\n".join(
        f"  {r.prior}: with a held-out place: {r.photos} photos; top-1 {r.top1_image:.3f} -> {r.top1_with_prior:.3f}; "
        f"top-1 changed on {r.changed}; fixed {r.fixed}, broke {r.broke}"
        for r in compare_priors(table).itertuples()
    )


if __name__ == "__main__":
    main()
