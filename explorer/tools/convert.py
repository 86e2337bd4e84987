"""Convert the Coral/AIY uint8 TFLite MobileNetV2 classifiers to float PyTorch safetensors.

explorer-convert path/to/model.tflite out.safetensors
explorer-convert --all [--model-dir ../shared/models/coral]   # every tflite card, into the cache
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from explorer.models.cards import load_cards_from, weights_source
from explorer.models.formats.tflite import convert_tflite, converted_tflite
from explorer.settings import add_model_arguments, settings_from_args
from explorer.tools.cli import one_line_errors


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tflite", nargs="?", type=Path, help="a Coral MobileNetV2 .tflite classifier")
    parser.add_argument("out", nargs="?", type=Path, help="output .safetensors")
    parser.add_argument("--all", action="store_true", help="convert every tflite model card into the cache")
    args = add_model_arguments(parser).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.all:
        settings = settings_from_args(args)
        for card in load_cards_from(settings.card_dirs):
            if card.weights.format == "tflite":
                print(converted_tflite(weights_source(card, settings)))
    elif args.tflite and args.out:
        print(convert_tflite(args.tflite, args.out))
    else:
        parser.error("give TFLITE OUT, or --all")


if __name__ == "__main__":
    main()
