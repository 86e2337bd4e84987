"""Regrouping every dashboard chart under a new filter, on the shipped table resampled to 1,000,000 rows (and
10,000,000), with the engine the dashboard uses (polars lazy queries, explorer.diagnose.frames), and the core of
the same work in DuckDB over the same Arrow data, to say why polars.

    python benchmarks/bench_dashboard.py [--table assets/eval/inat_bird.parquet] [--rows 1000000] [--big 10000000]

Baseline in the same run: the same computations on the shipped table as it is. Also printed: each section's own
time at --rows (what a faster regroup would have to cut), and at --big rows three ways of holding the table: in
memory as the app loads it, in memory with narrower types (float32, int32, 16-bit categories), and not in memory at
all (each chart a lazy query over a parquet file written to a temporary folder). Last line: dashboard_regroup_s
(the median at --rows).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from explorer.diagnose.calibration import CalibrationData, fit_temperature, reliability
from explorer.diagnose.causes import cause_totals, caused_errors, causes_by_clade
from explorer.diagnose.frames import ROW, side_by_side, to_frame
from explorer.diagnose.geo_effect import compare_priors, geo_effect, geo_effect_by_clade, geo_rows
from explorer.diagnose.metrics import (
    Filters,
    accuracy_by_clade,
    clade_tree,
    confused_pairs,
    error_rows,
    errors_by_rank,
    filter_view,
    for_dashboard,
    rollup_tradeoff,
    summary,
)
from explorer.diagnose.representation import rank_head_accuracy
from explorer.diagnose.schema import load_table
from explorer.diagnose.scope_effect import open_set_tradeoff, scope_effect, scope_scores, scope_tradeoff
from explorer.settings import PROJECT_ROOT

FILTERS = Filters(clade_rank="order", clade_name="Passeriformes", min_confidence=0.1, outcome="all")


def sections(view) -> list:
    """Everything the Diagnose tab computes when a filter changes (figures' data, not their rendering), in the
    sections it computes side by side (explorer.ui.dashboard_handlers._whole_dashboard)."""

    def calibration():
        data = CalibrationData.from_table(view)  # the arrays once, for the fit and both diagrams
        fit = fit_temperature(data)
        return {
            "reliability": reliability(data),
            "calibrated": reliability(data, fit.temperature),
            "rollup": rollup_tradeoff(view),
        }

    def scope():
        scores = scope_scores(view)  # read and sorted once, as the tab does
        return {"effect": scope_effect(scores), "tradeoff": scope_tradeoff(scores), "open": open_set_tradeoff(scores)}

    def geo():  # summary, per-clade table, the photos behind a count, the priors side by side
        rows = geo_rows(view, "fixed", only=["path", "true_name", "pred_name", "geo_pred_name"])
        return {
            "geo": geo_effect(view),
            "clades": geo_effect_by_clade(view, "family", 5),
            "rows": rows,
            "priors": compare_priors(view),
        }

    return [
        lambda: {"summary": summary(view), "errors_by_rank": errors_by_rank(view)},
        lambda: {"sunburst": clade_tree(view)},
        lambda: {"clades": accuracy_by_clade(view, "family"), "pairs": confused_pairs(view)},
        calibration,
        scope,
        lambda: {"errors": caused_errors(view, only=["true_name", "pred_name", "confidence", "path"])},
        lambda: {"causes": cause_totals(view), "per_clade": causes_by_clade(view, "family")},
        geo,
        lambda: {"heads": rank_head_accuracy(view)},
    ]


def regroup(frame: pl.DataFrame, filters: Filters) -> None:
    """The dashboard's regroup as the app runs it: its sections side by side (frames.side_by_side)."""
    side_by_side(*sections(filter_view(frame, filters)))


def one_after_another(frame: pl.DataFrame, filters: Filters) -> None:
    """The same sections run one after another (the comparison)."""
    for section in sections(filter_view(frame, filters)):
        section()


def core_polars(frame: pl.DataFrame, filters: Filters) -> None:
    """The engine-bound core of the regroup: counts, group-bys and the top errors."""
    view = filter_view(frame, filters)
    summary(view)
    errors_by_rank(view)
    clade_tree(view)
    accuracy_by_clade(view, "family")
    confused_pairs(view)
    error_rows(view)


CORE_SQL = {
    "summary": "SELECT count(*), sum(in_vocab::INT), avg(CASE WHEN in_vocab THEN correct_1::INT END), "
    "avg(CASE WHEN in_vocab THEN correct_k::INT END), count(DISTINCT true_name) FROM v",
    "errors_by_rank": "SELECT divergence_rank, count(*) FROM v GROUP BY 1",
    "clade_leaves": "SELECT true_class, true_order, true_family, true_genus, sum(correct_1::INT), count(*) "
    "FROM v GROUP BY ALL",
    "family": "SELECT true_family, sum(correct_1::INT), count(*) FROM v GROUP BY 1",
    "confused": "SELECT true_name, pred_name, divergence_rank, count(*) AS n FROM v WHERE NOT correct_1 AND in_vocab "
    "GROUP BY ALL ORDER BY n DESC, true_name, pred_name LIMIT 15",
    "errors": "SELECT * FROM v WHERE NOT correct_1 ORDER BY confidence DESC, _row LIMIT 200",
}


def core_duckdb(connection, filters: Filters) -> None:
    """The same core in DuckDB, as SQL over the same Arrow table (a view with the filters' WHERE)."""
    clade = str(filters.clade_name).replace("'", "''")  # a view cannot take parameters
    connection.execute(
        "CREATE OR REPLACE TEMP VIEW v AS SELECT * FROM t WHERE status = 'ok' AND confidence BETWEEN "
        f"{float(filters.min_confidence)} AND {float(filters.max_confidence)} AND true_order = '{clade}'"
    )
    for sql in CORE_SQL.values():
        connection.execute(sql).fetchall()


def median_s(work, repeats: int) -> float:
    work()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def resampled(frame: pl.DataFrame, rows: int) -> pl.DataFrame:
    """``rows`` rows drawn with replacement (seeded), each a distinct photo with its own position."""
    picks = pl.Series(np.random.default_rng(0).integers(0, len(frame), rows))
    big = frame.drop(ROW)[picks].with_row_index(ROW)
    return big.with_columns(pl.col("photo_id") + ":" + pl.col(ROW).cast(pl.String))


def peak_rss_gb(work) -> float:
    """The process's peak resident memory while ``work`` runs (Linux: the high-water mark is reset first)."""
    Path("/proc/self/clear_refs").write_text("5")
    work()
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 2**20


U16 = pl.Categorical(pl.Categories("bench_dashboard", physical=pl.UInt16))


def narrowed_types(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with float32 for every float but the coordinates, int32 for the class indices, and categories
    numbered in 16 bits (one shared set of categories, so that columns stay comparable with each other)."""
    casts = {}
    for name, dtype in frame.schema.items():
        if dtype == pl.Float64 and name not in ("lat", "lon"):
            casts[name] = pl.Float32
        elif dtype == pl.Int64:
            casts[name] = pl.Int32
        elif dtype == pl.Categorical:
            casts[name] = U16
    return frame.cast(casts)


def section_times(frame: pl.DataFrame, repeats: int) -> str:
    """Each section's own median time on the filtered view."""
    view = filter_view(frame, FILTERS)
    names = ["summary", "sunburst", "clades", "calibration", "scope", "errors", "causes", "geo", "heads"]
    times = [median_s(section, repeats) for section in sections(view)]
    return ", ".join(f"{name} {t:.3f}" for name, t in zip(names, times, strict=True))


def holding_line(label: str, view, repeats: int = 3) -> str:
    """A regroup's median time and the process's peak memory during one, for the table held as ``view``."""
    took = median_s(lambda: regroup(view, FILTERS), repeats)
    peak = peak_rss_gb(lambda: regroup(view, FILTERS))
    return f"  {label}: regroup {took:.2f} s, peak process memory {peak:.2f} GiB"


def big_lines(shipped: pl.DataFrame, rows: int) -> list[str]:
    """The three ways of holding ``rows`` rows: as loaded, with narrower types, over parquet (one after another,
    each freed before the next)."""
    huge = resampled(shipped, rows)
    lines = [f"{rows:,} rows (table as loaded {huge.estimated_size() / 2**30:.2f} GiB in memory):"]
    lines.append(holding_line("in memory as loaded", huge))
    huge = narrowed_types(huge)
    lines.append(holding_line(f"narrower types ({huge.estimated_size() / 2**30:.2f} GiB)", huge))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "table.parquet"
        huge.write_parquet(path, row_group_size=1_000_000)
        del huge
        lines.append(holding_line("over parquet, nothing held", pl.scan_parquet(path)))
    return lines


def engines_line(frame: pl.DataFrame, repeats: int) -> str:
    try:
        import duckdb
    except ImportError:
        return "duckdb: not installed (pip install -r requirements.txt installs it), so not compared"
    connection = duckdb.connect()
    connection.register("t", frame.to_arrow())
    polars_s = median_s(lambda: core_polars(frame, FILTERS), repeats)
    duck_s = median_s(lambda: core_duckdb(connection, FILTERS), repeats)
    return f"core (filter, counts, group-bys, top errors): polars {polars_s:.3f} s, duckdb {duck_s:.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", type=Path, default=PROJECT_ROOT / "assets" / "eval" / "inat_bird.parquet")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big", type=int, default=10_000_000, help="also time this many rows (0: skip)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    shipped = to_frame(for_dashboard(load_table(args.table)))  # as the app keeps it
    big = resampled(shipped, args.rows)
    print(f"table {args.table.name}: {len(shipped)} rows, resampled to {len(big):,}; filter: order Passeriformes,")
    print(f"confidence >= 0.1; polars {pl.__version__} on {pl.thread_pool_size()} threads")
    small_s = median_s(lambda: regroup(shipped, FILTERS), args.repeats)
    big_s = median_s(lambda: regroup(big, FILTERS), args.repeats)
    serial_s = median_s(lambda: one_after_another(big, FILTERS), args.repeats)
    print(
        f"{len(big):,} rows, the sections one after another: {serial_s:.3f} s (side by side: {big_s / serial_s:.2f}x)"
    )
    print(f"{len(big):,} rows, each section alone (s): {section_times(big, args.repeats)}")
    print(engines_line(big, args.repeats))
    if args.big:
        del big
        print("\n".join(big_lines(shipped, args.big)))
    print(f"shipped_table_regroup_s: {small_s:.3f}")
    print(f"million_rows_vs_shipped: {big_s / small_s:.1f}")
    print(f"dashboard_regroup_s: {big_s:.3f}")


if __name__ == "__main__":
    main()
