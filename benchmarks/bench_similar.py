"""Latency of a similar-photos query (preprocessing, one forward pass that also gives the embedding, top-5, and
one matrix product over the stored embeddings of the model's labelled photos) against a bare forward pass, side
by side in one process.

    python benchmarks/bench_similar.py [--model inat_bird] [--photo PATH] [--repeats 50]

Last line: similar_vs_forward (target <= 1.2).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from bench_identify import interleaved_medians_ms  # same timing: interleaved rounds, medians

from explorer.identify.answer import identify
from explorer.photos.images import load_image
from explorer.represent.embeddings import nearest
from explorer.services.resources import load_resources
from explorer.services.similar import similar_photos
from explorer.settings import CORAL_DIR, parse_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="inat_bird")
    parser.add_argument("--photo", type=Path, default=CORAL_DIR / "bird.bmp")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    resources = load_resources(parse_settings([]))
    classifier = resources.get(args.model)
    index = resources.photo_indexes.get(classifier.name)
    if index is None:
        raise SystemExit(f"{classifier.name} has no stored embeddings: run explorer-shipped or explorer-evaluate")
    settings = resources.settings
    image = load_image(args.photo, settings.max_upload_bytes, settings.max_image_pixels).image
    x = classifier.preprocess(image)
    query = identify(classifier, image, 5, cam_method=None).embedding

    def bare_forward():
        with torch.no_grad(), classifier.autocast():
            classifier.module(x)

    def similar():  # preprocessing + forward (embedding and top-5 from it) + the search, as the API runs it
        similar_photos(resources, identify(classifier, image, 5, cam_method=None))

    print(
        f"model {classifier.name} on {classifier.device}, photo {args.photo.name} {image.size}, "
        f"{len(index.photos)} stored photos x {index.store.dim} dimensions, torch threads "
        f"{torch.get_num_threads()}, median of {args.repeats}"
    )
    ms = interleaved_medians_ms({"forward": bare_forward, "similar": similar}, args.repeats)
    search_ms = interleaved_medians_ms({"search": lambda: nearest(index.store, query, 8)}, args.repeats)["search"]
    print(f"bare_forward_ms: {ms['forward']:.1f}")
    print(f"similar_query_ms: {ms['similar']:.1f}")
    print(f"matrix_product_and_top8_ms: {search_ms:.2f}")
    print(f"similar_vs_forward: {ms['similar'] / ms['forward']:.2f}")


if __name__ == "__main__":
    main()
