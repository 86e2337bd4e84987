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
from explorer.settings import add_model_arguments, settings_from_args
from explorer.tools.cli import one_line_errors
from explorer.tools.model_table import add_table_arguments, model_table


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="explorer-faithfulness",
        description=(__doc__ or "").split("\n\n")[0].split(": ", 1)[1].replace("can", "Can", 1),
    )
    add_table_arguments(parser)
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
    path, table, classifier = model_table(args, settings)
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
