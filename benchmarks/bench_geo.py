"""A species' range on a 0.5-degree global grid: a full forward pass over all 259,200 cells (the baseline)
against the cached-trunk path (land cells' trunk features computed once; then one matrix-vector product).

    python benchmarks/bench_geo.py [--prior checkpoints/geo/inat_bird.safetensors] [--taxon "Poecile atricapillus"]

Last line: range_map_s (the grid computation for one species; target < 0.1 s). The folium HTML build is reported
separately.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from explorer.geo.maps import build_land_grid, range_map, range_scores, standalone_html
from explorer.geo.range_model import load_geo_prior, presence
from explorer.settings import PROJECT_ROOT

ROOT = PROJECT_ROOT


def median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prior", type=Path, default=ROOT / "checkpoints" / "geo" / "inat_bird.safetensors")
    parser.add_argument("--taxon", default="Poecile atricapillus")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model, taxa, _ = load_geo_prior(args.prior)
    taxon = taxa.index(args.taxon)
    lats = 89.75 - 0.5 * np.arange(360)
    lons = -179.75 + 0.5 * np.arange(720)
    grid_lon, grid_lat = np.meshgrid(lons, lats)
    full_s = median_s(lambda: presence(model, grid_lat.ravel(), grid_lon.ravel())[:, taxon], max(1, args.repeats // 2))
    start = time.perf_counter()
    grid = build_land_grid(model, step=0.5)
    setup_s = time.perf_counter() - start
    fast_s = median_s(lambda: range_scores(model, grid, taxon), args.repeats)
    scores = range_scores(model, grid, taxon)
    html_s = median_s(lambda: standalone_html(range_map(grid, scores, args.taxon, 43.65, -79.38)), args.repeats)
    document = standalone_html(range_map(grid, scores, args.taxon, 43.65, -79.38))
    print(f"prior {args.prior.name}: {len(taxa)} taxa; 0.5-degree grid: 259,200 cells, {len(grid.lat)} on land")
    print(f"full_forward_all_cells_s: {full_s:.3f}")
    print(f"land_grid_trunk_once_s: {setup_s:.3f}")
    print(f"folium_html_build_s (standalone, Leaflet inlined): {html_s:.3f} ({len(document) / 1e3:.0f} kB)")
    print(f"full_vs_cached: {full_s / fast_s:.0f}")
    print(f"range_map_s: {fast_s:.4f}")


if __name__ == "__main__":
    main()
