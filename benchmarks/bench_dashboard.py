"""Regrouping every dashboard chart under a new filter, on the shipped table resampled to 1,000,000 rows.

    python benchmarks/bench_dashboard.py [--table assets/eval/inat_bird.parquet] [--rows 1000000]

Baseline in the same run: the same computations on the shipped table as it is. Last line: dashboard_regroup_s.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from explorer.diagnose.calibration import CalibrationData, fit_temperature, reliability
from explorer.diagnose.geo_effect import geo_effect, geo_effect_by_clade, geo_rows
from explorer.diagnose.metrics import (
    Filters,
    accuracy_by_clade,
    clade_tree,
    confused_pairs,
    error_rows,
    errors_by_rank,
    filter_table,
    for_dashboard,
    rollup_tradeoff,
    summary,
)
from explorer.diagnose.schema import load_table
from explorer.settings import PROJECT_ROOT


def regroup(table, filters: Filters) -> None:
    """Everything the Diagnose tab computes when a filter changes (figures' data, not their rendering)."""
    view = filter_table(table, filters)
    summary(view)
    errors_by_rank(view)
    clade_tree(view)  # the sunburst
    accuracy_by_clade(view, "family")  # the clade table
    confused_pairs(view)
    calibration = CalibrationData.from_table(view)  # the arrays once, for the fit and both diagrams
    fit = fit_temperature(calibration)
    reliability(calibration)
    reliability(calibration, fit.temperature)
    rollup_tradeoff(view)
    error_rows(view).head(24)
    geo_effect(view)  # the geo-prior section: summary, per-clade table, the photos behind a count
    geo_effect_by_clade(view, "family", 5)
    geo_rows(view, "fixed")


def timed(table, filters, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        regroup(table, filters)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", type=Path, default=PROJECT_ROOT / "assets" / "eval" / "inat_bird.parquet")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    table = for_dashboard(load_table(args.table))  # as the app keeps it
    rng = np.random.default_rng(0)
    big = table.iloc[rng.integers(0, len(table), args.rows)].reset_index(drop=True)
    big["photo_id"] = big["photo_id"] + ":" + big.index.astype(str)  # resampled rows are distinct photos
    big = load_table_like(big)
    filters = Filters(clade_rank="order", clade_name="Passeriformes", min_confidence=0.1, outcome="all")
    regroup(big, filters)  # warm-up
    small_s = timed(table, filters, args.repeats)
    big_s = timed(big, filters, args.repeats)
    print(
        f"table {args.table.name}: {len(table)} rows; resampled to {len(big)} rows; filter: order Passeriformes, "
        f"confidence >= 0.1"
    )
    print(f"shipped_table_regroup_s: {small_s:.3f}")
    print(f"million_rows_vs_shipped: {big_s / small_s:.1f}")
    print(f"dashboard_regroup_s: {big_s:.2f}")


def load_table_like(frame):
    """The same dtypes load_table gives (categories for the names)."""
    from explorer.diagnose.schema import optimise_dtypes

    return optimise_dtypes(frame)


if __name__ == "__main__":
    main()
