"""Ray Data against the local engine for explorer-evaluate's model pass, same photos, same process.

    python benchmarks/bench_ray_engine.py [--model inat_bird] [--photos 256] [--batch-size 64]

Both engines run the model over the same photos with embeddings kept (what explorer-evaluate does by default);
Ray's time includes starting a local Ray the first time, then a second, warm run is timed on its own. Last line:
ray_vs_local (Ray's seconds over the local engine's, warm; below 1 means Ray pays on this machine).
"""

from __future__ import annotations

import argparse
import os
import time

from explorer.diagnose.model_pass import evaluate_photos
from explorer.photos.manifests import read_manifest
from explorer.services.resources import load_classifier_for
from explorer.settings import DATA_DIR, parse_settings


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="inat_bird")
    parser.add_argument("--photos", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    settings = parse_settings([])
    manifest = read_manifest(DATA_DIR / "birds525-valid" / "manifest.csv").head(args.photos)
    classifier, taxonomy = load_classifier_for(settings, args.model, manifest["scientific_name"])
    common = dict(taxonomy=taxonomy, batch_size=args.batch_size, progress=False, embed=True)
    local = timed(lambda: evaluate_photos(classifier, manifest, engine="local", **common))
    first = timed(lambda: evaluate_photos(classifier, manifest, engine="ray", **common))
    warm = timed(lambda: evaluate_photos(classifier, manifest, engine="ray", **common))
    print(f"{len(manifest)} photos, {args.model}, batch {args.batch_size}, {os.cpu_count()} cores")
    print(f"local: {local:.1f} s ({len(manifest) / local:.0f} photos/s)")
    print(f"ray, first run (starts a local Ray): {first:.1f} s")
    print(f"ray, warm: {warm:.1f} s ({len(manifest) / warm:.0f} photos/s)")
    print(f"ray_vs_local {warm / local:.2f}")


if __name__ == "__main__":
    main()
