"""The planted-shortcut experiment: does the organism-or-surroundings test flag species a model recognises by a mark
pasted beside them, and not those of a model trained on clean photos? (explorer.diagnose.shortcut_planting)

    python -m explorer.tools.shortcut_experiment [--cub-root ../shared/data/cub100] [--out assets/eval/...json]

About 6 minutes on 2 CPU cores for the 2,903 CUB-100 training photos through the backbone (once), then about 7 per
seed: two models trained and each tested on about 700 test photos. Writes the report the results page
(docs/results/surroundings.md) is made from.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from explorer.diagnose.shortcut_planting import Photos, run_experiment
from explorer.diagnose.surroundings import load_locator, locator_name
from explorer.photos.images import load_image
from explorer.photos.manifests import cub100_manifest
from explorer.services.resources import load_classifier_for
from explorer.settings import DATA_DIR, PROJECT_ROOT, add_model_arguments, settings_from_args
from explorer.tools.cli import one_line_errors

BASE = "cub100_effnet_head"  # its backbone and label order; its tail and head are trained anew, twice
REPORT = PROJECT_ROOT / "assets" / "eval" / "shortcut_experiment.json"


def load_photos(classifier, root: Path, split: str) -> Photos:
    """The split's photos at the classifier's input size, with their class in the classifier's label order."""
    manifest = cub100_manifest(root, split)
    index = {lab.scientific_name: lab.class_index for lab in classifier.labels}
    missing = sorted(set(manifest["scientific_name"]) - set(index))
    if missing:
        raise ValueError(f"{classifier.name} has no class for {missing[:3]}: is --cub-root CUB-100?")
    pixels = np.stack([classifier.resize(load_image(root / p, 64 << 20, 10**8).image) for p in manifest["path"]])
    return Photos(
        pixels,
        manifest["scientific_name"].map(index).to_numpy(),
        manifest["scientific_name"].to_numpy(str),
        manifest["path"].to_numpy(str),
    )


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m explorer.tools.shortcut_experiment", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--cub-root", type=Path, default=DATA_DIR / "cub100", help="the CUB-100 folder")
    parser.add_argument("--out", type=Path, default=REPORT, help=f"the report (default {REPORT.name})")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1], help="one run per seed, each its own planted species"
    )
    parser.add_argument(
        "--frames", type=Path, help="also write each model's per-photo measurements to FRAMES-<model>.parquet"
    )
    args = add_model_arguments(parser).parse_args(argv)
    if not (args.cub_root / "train_test_split.txt").is_file():
        raise ValueError(f"{args.cub_root} is not the CUB-100 folder (no train_test_split.txt)")
    settings = settings_from_args(args)
    start = time.perf_counter()
    base, _ = load_classifier_for(settings, BASE, [])
    locator = load_locator(settings, locator_name(base.card))
    train, test = load_photos(base, args.cub_root, "train"), load_photos(base, args.cub_root, "test")

    def progress(what: str) -> None:
        print(f"{time.perf_counter() - start:6.0f} s  {what}", file=sys.stderr)

    frames: dict = {}
    report = run_experiment(base, locator, train, test, progress, frames, tuple(args.seeds))
    if args.frames is not None:
        for name, frame in frames.items():
            frame.to_parquet(args.frames.with_name(f"{args.frames.name}-{name}.parquet"))
    report.update(base=BASE, locator=locator.name, seconds=round(time.perf_counter() - start))
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    for run in (report, *report["replications"]):
        for name, head in run["heads"].items():
            print(
                f"seed {run['seed']}, {name} model: {head['planted_flagged']} of {len(run['planted_species'])} "
                f"planted species flagged, {head['others_flagged']} others; map on the mark "
                f"{head['map_on_mark_median']:.0%} (median)"
            )
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
