"""The Diagnose tab's layout: the filters at the top, the charts and tables, and the error gallery with its
inspector, as components (what they show is the handlers' work: explorer.ui.dashboard_handlers)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import gradio as gr

from explorer.diagnose.metrics import OUTCOMES
from explorer.services.resources import Resources
from explorer.taxa.taxonomy import RANKS
from explorer.ui.causes_section import build_cause_controls
from explorer.ui.components import LenientSlider, row_refs
from explorer.ui.dashboard_state import ALL_RANKS, ALL_SETS, DEFAULTS
from explorer.ui.fast_plot import FastPlot
from explorer.ui.light_table import LightTable
from explorer.ui.thumb_gallery import ThumbGallery


@dataclass
class DashboardOutputs:
    """Everything a filter change redraws."""

    summary: gr.Markdown
    errors_plot: FastPlot
    sunburst: FastPlot
    clades: LightTable
    pairs: LightTable
    reliability_plot: FastPlot
    tradeoff_plot: FastPlot
    calibration: gr.Markdown
    scope_plot: FastPlot
    scope_text: gr.Markdown
    gallery: ThumbGallery
    error_table: LightTable
    errors_state: gr.State
    cause_totals: LightTable
    cause_plot: FastPlot
    surroundings: LightTable
    geo_summary: gr.Markdown
    geo_clades: LightTable
    geo_gallery: ThumbGallery
    geo_state: gr.State
    geo_compare: LightTable
    compare_plot: FastPlot
    compare_ranks_plot: FastPlot
    compare_text: gr.Markdown
    disagreements: gr.Dataframe
    map_plot: FastPlot
    map_text: gr.Markdown
    map_state: gr.State
    heads_text: gr.Markdown
    heads_table: gr.Dataframe
    class_scores: LightTable
    confusion_plot: FastPlot
    confusion_cells: LightTable
    cell_gallery: ThumbGallery
    cell_state: gr.State
    min_conf: gr.Slider  # also filters: a refused range is said beside them
    max_conf: gr.Slider
    clade: gr.Dropdown  # also a filter: its choices follow the table and the rank
    clade_key: gr.State  # DashboardSession.clade_key: the (table, rank) whose clades the menu lists
    sent: gr.State  # DashboardSession.sent: what the page shows (explorer.ui.changed.Sent)

    def __iter__(self):
        return iter(getattr(self, f.name) for f in fields(self))


def build_filters(resources: Resources) -> dict:
    """The filters every chart obeys, at the top of the tab ({DashboardFilters field: control})."""
    tables = list(resources.tables)
    first = resources.default_model if resources.default_model in tables else tables[0]  # as Identify opens
    with gr.Row():
        table = gr.Dropdown(tables, value=first, label="Evaluation table", elem_id="dash_table")
        clade_rank = gr.Dropdown(
            [ALL_RANKS, *RANKS[:-1]], value=DEFAULTS.clade_rank, label="Clade rank", elem_id="dash_rank"
        )
        clade = gr.Dropdown([], value=DEFAULTS.clade, label="Clade", allow_custom_value=False, elem_id="dash_clade")
        outcome = gr.Radio(list(OUTCOMES), value=DEFAULTS.outcome, label="Photos", elem_id="dash_outcome")
    with gr.Row():
        min_conf = LenientSlider(
            0, 1, value=DEFAULTS.min_conf, step=0.01, label="Min top-1 confidence", elem_id="dash_min_conf"
        )
        max_conf = LenientSlider(
            0, 1, value=DEFAULTS.max_conf, step=0.01, label="Max top-1 confidence", elem_id="dash_max_conf"
        )
        exclude_noted = gr.Checkbox(
            DEFAULTS.exclude_noted, label="Exclude photos with doubtful labels", elem_id="dash_noted"
        )
        in_vocab = gr.Checkbox(DEFAULTS.in_vocab, label="Only species the model knows")
        photo_set = gr.Dropdown(
            [ALL_SETS, *photo_sets(resources)], value=DEFAULTS.photo_set, label="Photo set", elem_id="dash_photo_set"
        )
    return dict(
        photo_set=photo_set,
        table=table,
        clade_rank=clade_rank,
        clade=clade,
        min_conf=min_conf,
        max_conf=max_conf,
        outcome=outcome,
        exclude_noted=exclude_noted,
        in_vocab=in_vocab,
    )


def photo_sets(resources: Resources) -> list[str]:
    """Every photo set (``source``) of the loaded tables, sorted: the photo-set menu."""
    return sorted({str(s) for table in resources.tables.values() for s in table["source"].unique()})


def build_charts() -> tuple[dict, dict, tuple[gr.Button, gr.File]]:
    """The charts and tables (outputs), the two filters that sit beside the clade table ({DashboardFilters field:
    control}), and the CSV export's button and files."""
    summary_text = gr.Markdown(elem_id="dash_summary")
    with gr.Accordion("Download this view's tables (CSV)", open=False):
        csv_button = gr.Button("Prepare the CSV files", size="sm", elem_id="dash_csv_button")
        csv_files = gr.File(label="The photos in view and each table below", file_count="multiple", elem_id="dash_csv")
    with gr.Row():
        errors_plot = FastPlot(label="Errors by taxonomic rank", elem_id="dash_errors")
        sunburst = FastPlot(label="Accuracy per clade", elem_id="dash_sunburst")
    with gr.Row():
        list_rank = gr.Dropdown(
            list(RANKS[1:-1]), value=DEFAULTS.list_rank, label="Clade table rank", elem_id="dash_list_rank"
        )
        min_photos = gr.Slider(1, 50, value=DEFAULTS.min_photos, step=1, label="Min photos per clade")
    clades = LightTable(
        label="Clades, best first by the lower end of the 95 % interval (click a column to sort)",
        elem_id="dash_clades",
        max_height=300,
    )
    pairs = LightTable(
        label="Most confused pairs (click one: its photos in the error gallery below)",
        elem_id="dash_pairs",
        max_height=300,
    )
    with gr.Row():
        reliability_plot = FastPlot(label="Calibration", elem_id="dash_reliability")
        tradeoff_plot = FastPlot(label="Roll-up trade-off", elem_id="dash_tradeoff")
    calibration = gr.Markdown(elem_id="dash_calibration")
    scope_plot = FastPlot(label="Scope and unknown species", elem_id="dash_scope")
    scope_text = gr.Markdown(elem_id="dash_scope_text")
    charts = dict(
        summary=summary_text,
        errors_plot=errors_plot,
        sunburst=sunburst,
        clades=clades,
        pairs=pairs,
        reliability_plot=reliability_plot,
        tradeoff_plot=tradeoff_plot,
        calibration=calibration,
        scope_plot=scope_plot,
        scope_text=scope_text,
    )
    return charts, dict(list_rank=list_rank, min_photos=min_photos), (csv_button, csv_files)


def build_errors() -> tuple[dict, dict, gr.HTML, gr.Gallery]:
    """The error gallery and table with their causes (outputs), the section's controls ({DashboardFilters field:
    control}) and the inspector they open."""
    gr.Markdown("### Errors: why each happened; click one to inspect it and see the evidence")
    controls, counts = build_cause_controls()
    gallery = ThumbGallery(label="Errors", elem_id="dash_gallery")
    error_table = LightTable(label="Errors (click a row to inspect)", elem_id="dash_error_table", max_height=260)
    with gr.Row(elem_id="inspector_row"):  # on a narrow screen: the lineage table above the photos (CSS)
        inspector_text = gr.HTML(elem_id="inspector_text")
        inspector = gr.Gallery(
            label="Inspector: photo, Grad-CAMs (prediction, truth, why not the truth), nearest labelled photos",
            columns=4,
            height=380,
            elem_id="inspector",
            object_fit="contain",
        )
    outputs = dict(gallery=gallery, error_table=error_table, errors_state=gr.State(row_refs("", None)), **counts)
    return outputs, controls, inspector_text, inspector
