"""The dashboard at the size of a real validation set: 100,000 photos over 10,000 species (iNat 2021's validation
set), made by validation_sized.py from the shipped table's rows, against the shipped table itself in the same run.

    python benchmarks/bench_validation_set.py [--rows 100000] [--classes 10000] [--repeats 5]

For each table: loading it as the app does (parquet -> the dashboard's pandas and polars frames); the regroup of
every chart under three filters (everything; one class; the wrong top-1s), the sections side by side as the app
runs them (bench_dashboard.regroup); and the representation map of every photo in view: the points chosen
(diagnose.representation.map_points, at most MAP_MAX_POINTS drawn), the figure, its JSON (what the page receives
per redraw). The big table's map layout is synthetic (each family a cluster), since no 100,000-photo embedding
ships. Last line: validation_set_regroup_s (the median regroup of the big table).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from bench_dashboard import median_s, regroup
from validation_sized import validation_sized

from explorer.diagnose.figures import plot_embedding_map
from explorer.diagnose.frames import to_frame
from explorer.diagnose.metrics import Filters, for_dashboard
from explorer.diagnose.representation import MAP_MAX_POINTS, map_points
from explorer.diagnose.schema import load_table
from explorer.represent.taxonomy_fit import load_representation
from explorer.settings import PROJECT_ROOT
from explorer.ui.fast_plot import figure_json

SHIPPED = PROJECT_ROOT / "assets" / "eval" / "inat_bird.parquet"


def synthetic_layout(table: pd.DataFrame, seed: int = 0) -> dict:
    """A 2-D map for every photo: each family a Gaussian cluster (what UMAP of a good embedding looks like)."""
    rng = np.random.default_rng(seed)
    family = pd.factorize(table["true_family"])[0]
    xy = rng.normal(0, 10, (family.max() + 1, 2))[family] + rng.normal(0, 0.7, (len(table), 2))
    return {"map": {"photo_id": table["photo_id"].to_numpy(), "x": xy[:, 0].round(3), "y": xy[:, 1].round(3)}}


def measure(path: Path, report: dict, repeats: int) -> dict:
    """Load, regroup and map figures of one table file."""
    load = median_s(lambda: to_frame(for_dashboard(load_table(path))), max(3, repeats // 2))
    table = for_dashboard(load_table(path))
    frame = to_frame(table)
    clade = table["true_class"].value_counts().index[0]
    filters = [Filters(), Filters(clade_rank="class", clade_name=clade), Filters(outcome="incorrect")]
    times = [median_s(lambda f=f: regroup(frame, f), repeats) for f in filters]

    def draw_map() -> str:
        return figure_json(plot_embedding_map(map_points(table, report, "family"), "family"))

    payload = draw_map()
    return {
        "photos": len(table),
        "species": table["true_name"].nunique(),
        "load_s": load,
        "regroup_s": statistics.median(times),
        "regroup_each_s": times,
        "map_s": median_s(draw_map, repeats),
        "map_mb": len(payload) / 1e6,
        "map_drawn": len(map_points(table, report, "family")),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    shipped = load_representation(SHIPPED.with_name("inat_bird.representation.json"))
    found = {"shipped inat_bird": measure(SHIPPED, shipped, args.repeats)}
    big = validation_sized(pd.read_parquet(SHIPPED), args.rows, args.classes)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "validation_sized.parquet"
        big.to_parquet(path)
        found["validation-sized"] = measure(path, synthetic_layout(big), args.repeats)
    for name, row in found.items():
        each = " / ".join(f"{t:.3f}" for t in row["regroup_each_s"])
        print(
            f"{name}: {row['photos']:,} photos, {row['species']:,} species; load {row['load_s']:.2f} s; regroup "
            f"{row['regroup_s']:.3f} s (all / one class / wrong: {each}); map of every photo: {row['map_drawn']:,} "
            f"drawn (at most {MAP_MAX_POINTS:,}), {row['map_s']:.3f} s, {row['map_mb']:.2f} MB"
        )
    big_row = found["validation-sized"]
    print(f"validation_set_load_s: {big_row['load_s']:.2f}")
    print(f"validation_set_map_mb: {big_row['map_mb']:.2f}")
    print(f"validation_set_map_s: {big_row['map_s']:.3f}")
    print(f"validation_set_regroup_s: {big_row['regroup_s']:.3f}")


if __name__ == "__main__":
    main()
