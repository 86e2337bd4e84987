"""The Representation section's data: the photos in view placed on their table's stored 2-D map (one layout per
table, so points stay put as the filters change), and the per-rank figures of every loaded table side by side."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl

from explorer.diagnose.frames import OK, View, columns, select

OTHER = "other"
COLOURED = 10  # the largest clades in view get a colour each; the rest are grey
MAP_MAX_POINTS = 12_000  # photos drawn on the map at most (a fixed sample beyond): ~1.3 MB a redraw at any size


def map_points(
    view: pd.DataFrame, report: dict, rank: str, coloured: int = COLOURED, limit: int | None = MAP_MAX_POINTS
) -> pd.DataFrame:
    """One row per photo in view that the map holds, in the view's order: x, y, its true clade at ``rank`` (the
    ``coloured`` largest clades in view by name, the rest ``other``), whether the top-1 is wrong, a hover text.

    At most ``limit`` photos (None: all): beyond it, a fixed sample, the photos whose ids hash lowest, so that a
    photo drawn stays drawn as the filters narrow and the payload stays bounded at any table size (a 100,000-photo
    table would otherwise send ~14 MB per redraw). The colours are chosen over every photo in view, sample or not.
    ``attrs["on_map"]`` says how many photos in view the map holds."""
    ids = view["photo_id"].astype(str)
    where = pd.Index(np.asarray(report["map"]["photo_id"]).astype(str)).get_indexer(ids)
    held = where >= 0
    rows, where = view[held], where[held]
    clade = rows[f"true_{rank}"].astype(object).fillna("(unknown)").astype(str)
    largest = clade.value_counts().sort_values(ascending=False, kind="stable").index[:coloured]
    if limit is not None and len(rows) > limit:
        priority = pd.util.hash_array(ids[held].to_numpy(dtype=object))
        keep = np.sort(np.argsort(priority, kind="stable")[:limit])  # the sample, in the view's order
        rows, where, clade = rows.iloc[keep], where[keep], clade.iloc[keep]
    points = pd.DataFrame(
        {
            "photo_id": rows["photo_id"].astype(str).to_numpy(),
            "x": np.asarray(report["map"]["x"], dtype=np.float64)[where],
            "y": np.asarray(report["map"]["y"], dtype=np.float64)[where],
            "clade": clade.where(clade.isin(largest), OTHER).to_numpy(),
            "wrong": (~rows["correct_1"].astype(bool)).to_numpy(),
            "hover": _hover(rows, rank, clade).to_numpy(),
        },
        columns=["photo_id", "x", "y", "clade", "wrong", "hover"],
    )
    points.attrs["on_map"] = int(held.sum())
    return points


def _hover(rows: pd.DataFrame, rank: str, clade: pd.Series) -> pd.Series:
    common = rows["true_common_name"].astype(object).fillna("").astype(str)
    return (
        rows["true_name"].astype(str)
        + common.where(common == "", " (" + common + ")")
        + "<br>"
        + rank
        + ": "
        + clade
        + "<br>top-1: "
        + rows["pred_name"].astype(str)
        + " "
        + (rows["confidence"] * 100).round(1).astype(str)
        + " %"
    )


def fits_frame(reports: dict[str, dict]) -> pd.DataFrame:
    """Per rank, every table's figures side by side (rank order: order, family, genus, species)."""
    rows = []
    for name, report in reports.items():
        for fit in report["ranks"]:
            rows.append(
                {
                    "rank": fit.rank,
                    "table": name,
                    "photos": fit.photos,
                    "taxa": fit.taxa,
                    "AMI": fit.ami,
                    "NMI": fit.nmi,
                    "Recall@1": _with_interval(fit.recall_1, fit.recall_1_low, fit.recall_1_high),
                    "Recall@5": _with_interval(fit.recall_5, fit.recall_5_low, fit.recall_5_high),
                    "queries": fit.queries,
                }
            )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    order = {"order": 0, "family": 1, "genus": 2, "species": 3}
    frame = frame.sort_values(["rank", "table"], key=lambda s: s.map(order) if s.name == "rank" else s)
    return frame.round({"AMI": 3, "NMI": 3}).reset_index(drop=True)


def _with_interval(value: float, low: float, high: float) -> str:
    if value != value:
        return "n/a"
    return f"{value:.3f} ({low:.3f}–{high:.3f})"


def sources_line(reports: dict[str, dict]) -> str:
    """Which photos each table's figures come from."""
    parts = []
    for name, report in reports.items():
        sets = ", ".join(f"{count:,} {source}" for source, count in report["sources"].items())
        parts.append(f"`{name}`: {sets}")
    return "; ".join(parts)


def rank_head_accuracy(view: View) -> pd.DataFrame:
    """Per rank, on the photos whose true clade the rank's own head knows: the accuracy of that head, of the
    species head's clade with the largest summed probability (its roll-up), and of the top-1 species' clade, with
    the photos only one of the first two gets right. Empty for a table without rank heads."""
    ranks = [r for r in ("order", "family", "genus", "species") if f"head_{r}" in columns(view)]
    exprs = {}
    for rank in ranks:
        truth = pl.col(f"true_{rank}")
        part = (pl.col(f"head_knows_{rank}").fill_null(False) & truth.is_not_null() & OK).fill_null(False)
        own = (pl.col(f"head_{rank}") == truth).fill_null(False)
        rolled = pl.col("correct_1" if rank == "species" else f"rollup_correct_{rank}").fill_null(False)
        top1 = (pl.col(f"pred_{rank}") == truth).fill_null(False)
        exprs |= {
            f"{rank}|photos": part.sum(),
            f"{rank}|own": (part & own).sum(),
            f"{rank}|rolled": (part & rolled).sum(),
            f"{rank}|top1": (part & top1).sum(),
            f"{rank}|only_own": (part & own & ~rolled).sum(),
            f"{rank}|only_rolled": (part & ~own & rolled).sum(),
        }
    counts = select(view, **exprs).row(0, named=True) if ranks else {}
    rows = []
    for rank in ranks:
        n = int(counts[f"{rank}|photos"])
        share = lambda key: counts[f"{rank}|{key}"] / n if n else float("nan")  # noqa: E731, B023
        rows.append(
            {
                "rank": rank,
                "photos": n,
                "own head": share("own"),
                "species head summed": share("rolled"),
                "top-1 species' clade": share("top1"),
                "only the own head right": int(counts[f"{rank}|only_own"]),
                "only the summed species head right": int(counts[f"{rank}|only_rolled"]),
            }
        )
    return pd.DataFrame(rows)
