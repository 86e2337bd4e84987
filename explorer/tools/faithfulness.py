"""explorer-faithfulness: can you trust the maps? Each CAM method's faithfulness for a model, measured on a sample of
its evaluation table's photos (ROAD, deletion, insertion; a random map as the floor), written beside the table as
NAME.faithfulness.json, which the Diagnose tab and the results pages read.

    explorer-faithfulness --model inat_bird [--table assets/eval/inat_bird.parquet] [--sample 16] [--seed 0]

About 20 s a photo on 2 CPU cores (six methods and the random map, eight ROAD imputations each).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from explorer.diagnose.map_faithfulness import (
    SAMPLE,
    SEED,
    faithfulness_frame,
    faithfulness_path,
    measure_table,
    save_faithfulness,
)
from explorer.diagnose.schema import load_table
from explorer.services.resources import load_classifier_for, table_paths
from explorer.settings import SHIPPED_TABLES, add_model_arguments, settings_from_args
from explorer.tools.cli import one_line_errors


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="explorer-faithfulness",
        description=(__doc__ or "").split("\n\n")[0].split(": ", 1)[1].replace("can", "Can", 1),
    )
    parser.add_argument("--model", required=True, help="the model card's name (its table is the one of that name)")
    parser.add_argument(
        "--table", type=Path, help="the evaluation table (default: MODEL.parquet in the tables' folders)"
    )
    parser.add_argument(
        "--eval-dir",
        type=Path,
        action="append",
        help="a folder of evaluation tables, looked in after the shipped assets/eval/; repeatable",
    )
    parser.add_argument("--sample", type=int, default=SAMPLE, help=f"photos measured (default {SAMPLE})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"which photos (default {SEED})")
    add_model_arguments(parser)
    return parser


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.sample < 2:
        raise ValueError(f"--sample must be at least 2 (a mean and its interval), got {args.sample}")
    settings = settings_from_args(args)
    folders = [*([] if args.no_shipped else [SHIPPED_TABLES]), *(args.eval_dir or [])]
    path = args.table or table_paths(folders).get(args.model)
    if path is None or not Path(path).is_file():
        raise ValueError(f"no evaluation table for {args.model}: make one with explorer-evaluate, or give --table")
    table = load_table(Path(path))
    if str(table["model"].iloc[0]) != args.model:
        raise ValueError(f"{path} is {table['model'].iloc[0]}'s table, not {args.model}'s")
    classifier, _ = load_classifier_for(settings, args.model, table["true_name"].astype(str).unique().tolist())
    if classifier.weights_sha256 != str(table["weights_sha256"].iloc[0]):
        print(f"note: {path} was made by other weights than the loaded {args.model}", file=sys.stderr)
    with tqdm(total=min(args.sample, len(table)), desc="photos", unit="photo", file=sys.stderr) as bar:
        report = measure_table(
            classifier, table, settings.data_root, args.sample, args.seed, progress=lambda done, _n: bar.update(1)
        )
    if report["photos"] < 2:
        raise ValueError(f"only {report['photos']} of the sample's photos are on this machine (--data-root?)")
    out = save_faithfulness(report, faithfulness_path(Path(path)))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(faithfulness_frame(report)[["method", "road_combined", "deletion", "insertion"]].to_string(index=False))
    print(f"{report['photos']} photos in {report['seconds']} s -> {out}")


if __name__ == "__main__":
    main()
