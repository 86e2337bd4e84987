"""What the tools that measure a model on its own evaluation table share (explorer-faithfulness, explorer-fusion,
explorer-fit-prior): the --model, --table and --eval-dir flags, and the table and classifier they name."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from explorer.diagnose.schema import load_table
from explorer.services.resources import load_classifier_for, table_paths
from explorer.settings import SHIPPED_TABLES, Settings


def add_table_arguments(parser: argparse.ArgumentParser) -> None:
    """--model (required), --table and --eval-dir."""
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


def model_table(args: argparse.Namespace, settings: Settings) -> tuple[Path, pd.DataFrame, object]:
    """(the table's path, the table, the model's classifier) the flags name. ValueError for a table that is not
    there or is another model's; a note on stderr when other weights made it."""
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
    return Path(path), table, classifier
