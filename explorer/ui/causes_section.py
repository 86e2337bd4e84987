"""The Diagnose tab's errors, by cause: which cause to show and in what order (the section's own controls), how many
errors each test explains and per clade, and the error gallery and table (explorer.diagnose.causes)."""

from __future__ import annotations

from dataclasses import replace

import gradio as gr
import pandas as pd
import polars as pl

from explorer.diagnose.causes import (
    ANY,
    CAUSE_CHOICES,
    ORDERS,
    cause_totals,
    caused_errors,
    causes_by_clade,
    surroundings_by_clade,
    untested,
    with_causes,
)
from explorer.diagnose.figures import plot_causes_by_clade
from explorer.diagnose.frames import View, columns
from explorer.diagnose.texts import q_text
from explorer.photos.thumbnails import thumbnails
from explorer.ui.components import row_refs
from explorer.ui.dashboard_state import DEFAULTS, DashboardFilters
from explorer.ui.diagnose_sections import ERROR_COLUMNS
from explorer.ui.fast_plot import FastPlot
from explorer.ui.light_table import LightTable

LABEL_COLUMN = "label_issue_score"


def build_cause_controls() -> tuple[dict, dict]:
    """The section's controls ({DashboardFilters field: control}) and its cause counts (outputs)."""
    with gr.Row():
        cause = gr.Dropdown(
            list(CAUSE_CHOICES), value=DEFAULTS.cause, label="Errors with this cause", elem_id="dash_cause"
        )
        error_order = gr.Dropdown(list(ORDERS), value=DEFAULTS.error_order, label="Order", elem_id="dash_error_order")
    with gr.Row():
        cause_totals_table = LightTable(label="What each test explains", elem_id="dash_cause_totals", max_height=260)
        cause_plot = FastPlot(label="Causes per clade", elem_id="dash_cause_plot")
    surroundings = LightTable(
        label="Clades most often recognised by their surroundings, at the clade tables' rank (flagged: their photos' "
        "maps lie off the organism more than other clades', q_value < 0.05; rests_on_surroundings: the share of "
        "photos whose answer rests on the surroundings, right or wrong)",
        elem_id="dash_surroundings",
        max_height=260,
    )
    outputs = dict(cause_totals=cause_totals_table, cause_plot=cause_plot, surroundings=surroundings)
    return dict(cause=cause, error_order=error_order), outputs


def error_outputs(resources, out, view: View, filters: DashboardFilters) -> dict:
    """The error gallery and table for the section's cause and order, and the rows they show (by position)."""
    shown_columns = ERROR_COLUMNS + ([LABEL_COLUMN] if LABEL_COLUMN in columns(view) else [])
    rows = caused_errors(view, filters.cause, filters.error_order, only=shown_columns)
    first = ["true_name", "pred_name", "confidence", *shown_columns[len(ERROR_COLUMNS) :], "causes"]
    shown = rows[[*first, *(c for c in ERROR_COLUMNS if c not in first)]]
    shown = shown.astype({c: float for c in shown.columns if shown[c].dtype.kind == "f"}).round(
        3
    )  # 0.938, not float32's
    return {
        out.gallery: thumbnails(resources, rows),
        out.error_table: shown,
        out.errors_state: row_refs(filters.table, rows),
    }


def make_pair_photos(resources, out):
    """The select handler of the most-confused-pairs table, ``on_pair(filters, evt)``: the clicked pair's errors
    in the error gallery and table (most confident first), for the inspector."""
    from explorer.diagnose.frames import narrowed
    from explorer.diagnose.metrics import confused_pairs
    from explorer.ui.diagnose_sections import filtered_view

    def on_pair(filters: DashboardFilters, evt: gr.SelectData):
        view = filtered_view(resources, filters)
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        pairs = confused_pairs(view)
        if index is None or not 0 <= int(index) < len(pairs):
            return {}
        pair = pairs.iloc[int(index)]
        where = (pl.col("true_name").cast(pl.String) == str(pair["true_name"])) & (
            pl.col("pred_name").cast(pl.String) == str(pair["pred_name"])
        )
        return error_outputs(resources, out, narrowed(view, where), replace(filters, cause=ANY))

    return on_pair


def cause_outputs(out, view: View, filters: DashboardFilters) -> dict:
    """How many errors each test explains (with the test, and those the table cannot answer), and per clade at the
    clade tables' rank."""
    found = with_causes(view, extra=(f"true_{filters.list_rank}",), texts=False)  # once, for both
    totals = cause_totals(view, found)
    missing = untested(view)
    if missing:
        untested_row = {"cause": ", ".join(c.label for c in missing), "errors": "", "test": "not tested here"}
        totals = pd.concat([totals.astype({"errors": object}), pd.DataFrame([untested_row])], ignore_index=True)
    return {out.cause_totals: totals, **cause_plot_output(out, view, filters, found)}


def cause_plot_output(out, view: View, filters: DashboardFilters, found=None) -> dict:
    """The causes per clade at the clade tables' rank (what that rank's menu redraws)."""
    counts = causes_by_clade(view, filters.list_rank, found=found)
    return {
        out.cause_plot: plot_causes_by_clade(counts, filters.list_rank),
        out.surroundings: surroundings_table(view, filters.list_rank, int(filters.min_photos)),
    }


SURROUNDINGS_SHOWN = 15  # clades in the dashboard's table (the CSV has them all)


def surroundings_table(view: View, rank: str, min_photos: int) -> pd.DataFrame:
    """``surroundings_by_clade`` as the page shows it: shares as rounded numbers, a note where nothing is measured."""
    found = surroundings_by_clade(view, rank, min_photos=max(1, min_photos), top=SURROUNDINGS_SHOWN)
    if found.empty and "off_subject_share" not in columns(view):
        return pd.DataFrame({"note": ["not measured for this table: python -m explorer.tools.subject_columns"]})
    return found.round(3).assign(q_value=found["q_value"].map(q_text))
