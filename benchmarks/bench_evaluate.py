"""Evaluation throughput (photos/s) against a bare decode + forward loop over the same photos, same process.

    python benchmarks/bench_evaluate.py [--model inat_bird] [--photos 256] [--batch-size 64] [--workers N]

The bare loop decodes each photo with PIL, resizes it, normalises it and runs the model in batches on the main
thread: the least a script can do. evaluate() adds validation of every photo, a DataLoader, and the whole table
(lineages, roll-up sums, ...). Last line: evaluate_vs_bare (evaluate's photos/s over the bare loop's; target >= 0.9).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from explorer.diagnose.model_pass import evaluate
from explorer.models.batches import default_workers
from explorer.photos.manifests import read_manifest
from explorer.services.resources import load_classifier_for
from explorer.settings import DATA_DIR, parse_settings


def bare_loop(classifier, paths: list[str], batch_size: int) -> None:
    card = classifier.card
    mean = np.asarray(card.mean, np.float32)
    std = np.asarray(card.std, np.float32)
    for start in range(0, len(paths), batch_size):
        batch = []
        for path in paths[start : start + batch_size]:
            pixels = np.asarray(Image.open(path).convert("RGB").resize((card.input_size,) * 2), np.float32) / 255
            batch.append(torch.from_numpy(((pixels - mean) / std).transpose(2, 0, 1).copy()))
        with torch.no_grad(), classifier.autocast():
            classifier.module(torch.stack(batch).to(classifier.device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="inat_bird")
    parser.add_argument("--manifest", type=Path, default=DATA_DIR / "birds525-valid" / "manifest.csv")
    parser.add_argument("--photos", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="default: evaluate's own choice")
    args = parser.parse_args()
    manifest = read_manifest(args.manifest).head(args.photos)
    classifier, taxonomy = load_classifier_for(parse_settings([]), args.model, manifest["scientific_name"])
    paths = manifest["abs_path"].tolist()
    bare_loop(classifier, paths[: args.batch_size], args.batch_size)  # warm-up (page cache, kernels)
    start = time.perf_counter()
    bare_loop(classifier, paths, args.batch_size)
    bare_s = time.perf_counter() - start
    start = time.perf_counter()
    evaluate(
        classifier, manifest, taxonomy, engine="local", batch_size=args.batch_size, workers=args.workers, progress=False
    )
    evaluate_s = time.perf_counter() - start
    workers = default_workers() if args.workers is None else args.workers
    print(
        f"model {classifier.name} on {classifier.device}, {len(paths)} photos, batch {args.batch_size}, "
        f"{workers} DataLoader workers, torch threads {torch.get_num_threads()}"
    )
    print(f"bare_photos_per_s: {len(paths) / bare_s:.1f}")
    print(f"evaluate_photos_per_s: {len(paths) / evaluate_s:.1f}")
    print(f"evaluate_vs_bare: {bare_s / evaluate_s:.2f}")


if __name__ == "__main__":
    main()
