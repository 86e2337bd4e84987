"""Train a geo-prior on presence records, judged on held-out 1-degree cells.

    explorer-train-geo --occurrences CSV [--occurrences CSV ...] --taxa checkpoints/inat_bird.json \
        --out checkpoints/geo/inat_bird.safetensors
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from explorer.geo.range_model import GeoPriorConfig
from explorer.geo.training import train_and_evaluate
from explorer.models.cards import load_model_card, read_card_labels, read_labels
from explorer.settings import Settings, add_model_arguments, settings_from_args
from explorer.tools.cli import one_line_errors


def taxa_from_card(card_path: Path, settings: Settings) -> list[str]:
    """The scientific names of a model card's classes (its background class excluded), or of a label file's
    lines ('Scientific name (Common name)' or plain names; a 'background' line is left out)."""
    if Path(card_path).suffix.lower() != ".json":
        return [n for n, _ in read_labels(Path(card_path), "coral") if n != "background"]
    card = load_model_card(card_path)
    return [n for n, _ in read_card_labels(card, settings) if n != card.background_label]


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--occurrences", type=Path, action="append", required=True)
    parser.add_argument(
        "--taxa", type=Path, required=True, help="a model card (its classes are the taxa) or a label file"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=GeoPriorConfig.epochs)
    parser.add_argument("--held-out", type=float, default=0.2, help="share of 1-degree cells held out")
    args = add_model_arguments(parser).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = settings_from_args(args)
    taxa = taxa_from_card(args.taxa, settings)
    metrics = train_and_evaluate(
        args.occurrences, taxa, args.out, GeoPriorConfig(epochs=args.epochs), args.held_out, settings.data_root
    )
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
