"""Diagnose's "Per class" section: precision, recall and F1 per class at a chosen rank, and the confusion matrix as
its largest cells (a heatmap and a table); a click on a cell shows that cell's photos, and a click on a photo opens
it in the inspector."""

from __future__ import annotations

import gradio as gr

from explorer.diagnose.class_report import cell_filter, class_scores, confusion_cells, plot_confusion
from explorer.diagnose.frames import narrowed
from explorer.diagnose.metrics import error_rows
from explorer.photos.thumbnails import thumbnails
from explorer.services.resources import Resources
from explorer.taxa.taxonomy import RANKS
from explorer.ui.components import row_refs
from explorer.ui.dashboard_state import DEFAULTS, DashboardFilters
from explorer.ui.diagnose_sections import ERROR_COLUMNS, filtered_view
from explorer.ui.fast_plot import FastPlot
from explorer.ui.light_table import MAX_ROWS, LightTable
from explorer.ui.thumb_gallery import ThumbGallery

REPORT_RANKS = tuple(reversed(RANKS[2:]))  # species, genus, family, order, class


def build_class_report() -> tuple[dict, dict]:
    """The section's outputs and its own control, the rank ({filter name: control})."""
    with gr.Accordion("Per class: precision, recall, F1 and the largest confusions", open=False):
        rank = gr.Dropdown(list(REPORT_RANKS), value=DEFAULTS.report_rank, label="Rank", elem_id="dash_report_rank")
        gr.Markdown(
            "Photos whose species the model knows, in view. **photos**: of that class (support); **predicted**: "
            "photos called it; precision = correct / predicted, recall = correct / photos. Worst F1 first; click a "
            "column to sort."
        )
        scores = LightTable(label="Per class", elem_id="dash_class_scores", max_height=320)
        plot = FastPlot(elem_id="dash_confusion")
        cells = LightTable(
            label="Largest confusions (click one to see its photos)", elem_id="dash_confusion_cells", max_height=260
        )
        gallery = ThumbGallery(label="Photos of the confusion (click one to inspect it)", elem_id="dash_cell_gallery")
    outputs = dict(
        class_scores=scores,
        confusion_plot=plot,
        confusion_cells=cells,
        cell_gallery=gallery,
        cell_state=gr.State(row_refs("", None)),
    )
    return outputs, {"report_rank": rank}


def class_report_outputs(out, view, filters: DashboardFilters) -> dict:
    """The per-class table, the heatmap and the table of the largest cells, for the view at the chosen rank; the
    photos of a cell clicked before are cleared (the cells follow the filters)."""
    rank = filters.report_rank
    cells = confusion_cells(view, rank)
    return {
        out.class_scores: listed(class_scores(view, rank).round(3), rank),
        out.confusion_plot: plot_confusion(cells, rank),
        out.confusion_cells: cells.round(3),
        out.cell_gallery: [],
        out.cell_state: row_refs(filters.table, None),
    }


def listed(scores, rank: str, limit: int = MAX_ROWS):
    """The ``limit`` worst classes (the table is sorted worst F1 first), saying how many more there are: a
    10,000-class table would send ~0.6 MB of rows per filter change."""
    if len(scores) <= limit:
        return scores
    shown = scores.head(limit).copy()
    shown.attrs["note"] = (
        f"The {limit:,} worst of {len(scores):,} {rank} classes in view (by F1; a header sorts these). Narrow the "
        "filters (a clade, a confidence range) to list the others."
    )
    return shown


def make_cell_photos(resources: Resources):
    """The select handler of the cells' table, ``on_cell(filters, evt)``: the photos of the clicked cell (most
    confident first) in the section's gallery, with their references for the inspector."""

    def on_cell(filters: DashboardFilters, evt: gr.SelectData):
        view = filtered_view(resources, filters)
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        cells = confusion_cells(view, filters.report_rank)
        if index is None or not 0 <= int(index) < len(cells):
            return [], row_refs(filters.table, None)
        cell = cells.iloc[int(index)]
        where = cell_filter(filters.report_rank, cell["truth"], cell["predicted"])
        rows = error_rows(narrowed(view, where), keep_row=True, only=ERROR_COLUMNS)
        return thumbnails(resources, rows), row_refs(filters.table, rows)

    return on_cell
