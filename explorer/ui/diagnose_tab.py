"""The Diagnose tab: the error dashboard, built only from the evaluation tables (a model runs only in the
inspector, on demand)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import partial

import gradio as gr

from explorer.diagnose.figures import (
    plot_clade_sunburst,
    plot_errors_by_rank,
)
from explorer.diagnose.frames import View, side_by_side
from explorer.diagnose.metrics import (
    OUTCOMES,
    accuracy_by_clade,
    confused_pairs,
    error_rows,
    errors_by_rank,
    summary,
)
from explorer.diagnose.texts import summary_markdown
from explorer.photos.thumbnails import thumbnails
from explorer.services.resources import Resources
from explorer.taxa.taxonomy import RANKS
from explorer.ui.changed import only_changed, slider_update
from explorer.ui.components import MODEL_QUEUE, LenientSlider, clamp, make_inspector, row_refs
from explorer.ui.diagnose_sections import (
    ERROR_COLUMNS,
    build_comparison,
    calibration_outputs,
    comparison_outputs,
    filtered_view,
    make_csv_handler,
    scope_outputs,
)
from explorer.ui.fast_plot import FastPlot
from explorer.ui.geo_section import build_geo_section, geo_outputs, make_geo_drilldown
from explorer.ui.light_table import LightTable
from explorer.ui.representation_section import (
    build_representation_section,
    map_outputs,
    representation_outputs,
    wire_map_clicks,
    wire_map_opening,
)
from explorer.ui.thumb_gallery import ThumbGallery

NO_TABLES = (
    "No evaluation tables found. Make one with `explorer-evaluate --model NAME --images MANIFEST "
    "--out assets/eval/NAME.parquet` (see README)."
)


@dataclass
class FilterControls:
    """What every chart obeys (in the order the handlers take them)."""

    table: gr.Dropdown
    clade_rank: gr.Dropdown
    clade_name: gr.Dropdown
    min_conf: gr.Slider
    max_conf: gr.Slider
    outcome: gr.Radio
    exclude_noted: gr.Checkbox
    in_vocab: gr.Checkbox
    list_rank: gr.Dropdown
    min_photos: gr.Slider
    geo_kind: gr.Radio
    other: gr.Dropdown  # the second model to compare with (None: no comparison)
    map_rank: gr.Dropdown  # the rank that colours the representation map
    geo_prior: gr.Radio  # whose fixes and breaks the geo section shows

    def __iter__(self):
        return iter(getattr(self, f.name) for f in fields(self))


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
    min_conf: gr.Slider  # also filters: a refused range is said beside them
    max_conf: gr.Slider
    clade_name: gr.Dropdown  # also a filter: its choices follow the table and the rank
    clade_key: gr.State  # the (table, rank) whose clades the menu lists
    sent: gr.State  # fingerprints of what the page shows (explorer.ui.changed), and the sliders' last notes

    def __iter__(self):
        return iter(getattr(self, f.name) for f in fields(self))


@dataclass
class DashboardView:
    filters: FilterControls
    outputs: DashboardOutputs
    refresh: object  # the filter handler, also run when the page loads


def build_diagnose_tab(resources: Resources) -> DashboardView | None:
    if not resources.tables:
        gr.Markdown(NO_TABLES)
        return None
    top = _build_filters(resources)
    charts, chart_filters = _build_charts()
    csv_files, csv_button = charts.pop("csv_files"), charts.pop("csv_button")
    errors, inspector_text, inspector = _build_errors()
    geo, geo_filters = build_geo_section(resources)
    comparison, compare_filter = build_comparison(resources)
    representation, map_filter, map_parts = build_representation_section(resources)
    filters = FilterControls(**top, **chart_filters, **{**geo_filters, **compare_filter, **map_filter})
    controls = dict(min_conf=top["min_conf"], max_conf=top["max_conf"], clade_name=top["clade_name"])
    out = DashboardOutputs(
        **charts, **errors, **geo, **comparison, **representation, **controls, clade_key=gr.State(""), sent=gr.State({})
    )
    refresh = _make_dashboard_handler(resources, out)
    _wire_filters(resources, filters, out, map_parts, refresh)
    wire_map_opening(_map_view(resources), out, list(filters), map_parts)
    for source, rows, place_changed in (
        (out.gallery, out.errors_state, False),
        (out.error_table, out.errors_state, False),
        (out.geo_gallery, out.geo_state, True),
    ):
        inspect = make_inspector(resources, place_changed)
        source.select(inspect, [rows], [inspector_text, inspector], api_visibility="private", **MODEL_QUEUE)
    out.geo_clades.select(
        make_geo_drilldown(resources), list(filters), [out.geo_gallery, out.geo_state], api_visibility="private"
    )
    wire_map_clicks(resources, out.map_state, map_parts)
    csv_button.click(make_csv_handler(resources), list(filters), csv_files, api_visibility="private")
    return DashboardView(filters, out, refresh)


def _wire_filters(resources: Resources, filters: FilterControls, out: DashboardOutputs, map_parts: dict, refresh):
    """Each filter to the handler that redraws what it changes: the filters every chart obeys to the whole dashboard,
    a section's own control to that section alone (its outputs only are computed and sent)."""
    inputs = [*filters, map_parts["map_open"], out.clade_key, out.sent]
    own = _section_handlers(resources, out)
    for name in (f.name for f in fields(filters)):
        control = getattr(filters, name)
        # the user's own changes only (release, select, input): the handler's updates of the clade menu and the
        # sliders must not start it again, so one action is one request (a menu's input event comes twice per choice)
        event = (
            control.release
            if isinstance(control, gr.Slider)
            else control.select
            if isinstance(control, gr.Dropdown)
            else control.input
        )
        handler, outputs = own.get(name, (refresh, list(out)))
        # one small spinner instead of a pending overlay on each output (each one lays the page out)
        event(handler, inputs, outputs, api_visibility="private", show_progress="minimal")


def _section_handlers(resources: Resources, out: DashboardOutputs) -> dict:
    """{filter name: (handler, outputs)} for the controls that belong to one section."""
    geo = [out.geo_summary, out.geo_clades, out.geo_gallery, out.geo_state, out.geo_compare]
    comparison = [out.compare_plot, out.compare_ranks_plot, out.compare_text, out.disagreements]
    clade_tables = _section(resources, out, partial(_clade_tables, resources, out))
    geo_section = _section(resources, out, partial(_geo_section, resources, out))
    compared = _section(resources, out, partial(_compared, resources, out))
    mapped = _section(resources, out, partial(_mapped, resources, out))
    return {
        "list_rank": (clade_tables, [out.clades, out.geo_clades, out.sent]),
        "min_photos": (clade_tables, [out.clades, out.geo_clades, out.sent]),
        "geo_kind": (geo_section, [*geo, out.sent]),
        "geo_prior": (geo_section, [*geo, out.sent]),
        "other": (compared, [*comparison, out.sent]),
        "map_rank": (mapped, [out.map_plot, out.map_text, out.map_state, out.sent]),
    }


# outputs written only by the dashboard's refresh and section handlers: sent only when they changed
REMEMBERED = (
    *("summary", "errors_plot", "sunburst", "clades", "pairs", "reliability_plot", "tradeoff_plot", "calibration"),
    *("scope_plot", "scope_text", "gallery", "error_table", "geo_summary", "geo_clades", "geo_compare"),
    *("compare_plot", "compare_ranks_plot", "compare_text", "disagreements", "heads_text"),
)


def remembered(out: DashboardOutputs) -> dict:
    return {getattr(out, name): name for name in REMEMBERED}


@dataclass(frozen=True)
class SectionArguments:
    name: str
    list_rank: str
    min_photos: int
    kind: str
    other: str | None
    map_rank: str
    prior: str | None
    map_open: bool


def _section(resources: Resources, out: DashboardOutputs, draw):
    """A handler that filters as the dashboard does and draws one section (``draw(view, SectionArguments)``), sending
    what changed; nothing when the confidence range is refused (the dashboard's handler says so at the sliders)."""
    kept = remembered(out)

    def on_change(name, rank, clade, low, high, outcome, noted, in_vocab, list_rank, min_photos, kind, other, *more):
        map_rank, prior, map_open, _key, sent = (list(more) + MORE_DEFAULTS[2 + len(more) :])[:5]
        low, high = clamp(low, 0, 1)[0], clamp(high, 0, 1)[0]
        if low > high:
            return {}
        view = filtered_view(resources, name, rank, clade, low, high, outcome, noted, in_vocab)
        shown = draw(view, SectionArguments(name, list_rank, int(min_photos), kind, other, map_rank, prior, map_open))
        return only_changed(shown, kept, sent, out.sent) if shown else {}

    return on_change


def _clade_tables(resources: Resources, out: DashboardOutputs, view: View, a: SectionArguments) -> dict:
    """The two tables whose rank and minimum photos the clade-table controls set."""
    geo = geo_outputs(resources, out, view, a.list_rank, a.min_photos, a.kind, a.prior, a.name)
    clades = accuracy_by_clade(view, a.list_rank, a.min_photos).round(3)
    return {out.clades: clades, out.geo_clades: geo[out.geo_clades]}


def _geo_section(resources: Resources, out: DashboardOutputs, view: View, a: SectionArguments) -> dict:
    return geo_outputs(resources, out, view, a.list_rank, a.min_photos, a.kind, a.prior, a.name)


def _compared(resources: Resources, out: DashboardOutputs, view: View, a: SectionArguments) -> dict:
    return comparison_outputs(resources, out, view, a.name, a.other, a.list_rank)


def _mapped(resources: Resources, out: DashboardOutputs, view: View, a: SectionArguments) -> dict:
    return map_outputs(resources, out, view, a.name, a.map_rank) if a.map_open else {}


def _build_filters(resources: Resources) -> dict:
    tables = list(resources.tables)
    first = resources.default_model if resources.default_model in tables else tables[0]  # as Identify opens
    with gr.Row():
        table = gr.Dropdown(tables, value=first, label="Evaluation table", elem_id="dash_table")
        clade_rank = gr.Dropdown(["(all)", *RANKS[:-1]], value="(all)", label="Clade rank", elem_id="dash_rank")
        clade_name = gr.Dropdown([], value=None, label="Clade", allow_custom_value=False, elem_id="dash_clade")
        outcome = gr.Radio(list(OUTCOMES), value="all", label="Photos", elem_id="dash_outcome")
    with gr.Row():
        min_conf = LenientSlider(0, 1, value=0, step=0.01, label="Min top-1 confidence", elem_id="dash_min_conf")
        max_conf = LenientSlider(0, 1, value=1, step=0.01, label="Max top-1 confidence", elem_id="dash_max_conf")
        exclude_noted = gr.Checkbox(True, label="Exclude photos with doubtful labels", elem_id="dash_noted")
        in_vocab = gr.Checkbox(False, label="Only species the model knows")
    return dict(
        table=table,
        clade_rank=clade_rank,
        clade_name=clade_name,
        min_conf=min_conf,
        max_conf=max_conf,
        outcome=outcome,
        exclude_noted=exclude_noted,
        in_vocab=in_vocab,
    )


def _build_charts() -> tuple[dict, dict]:
    """The charts and tables, and the two filters that sit beside the clade table."""
    summary_text = gr.Markdown(elem_id="dash_summary")
    with gr.Accordion("Download this view's tables (CSV)", open=False):
        csv_button = gr.Button("Prepare the CSV files", size="sm", elem_id="dash_csv_button")
        csv_files = gr.File(label="The photos in view and each table below", file_count="multiple", elem_id="dash_csv")
    with gr.Row():
        errors_plot = FastPlot(label="Errors by taxonomic rank", elem_id="dash_errors")
        sunburst = FastPlot(label="Accuracy per clade", elem_id="dash_sunburst")
    with gr.Row():
        list_rank = gr.Dropdown(list(RANKS[1:-1]), value="family", label="Clade table rank")
        min_photos = gr.Slider(1, 50, value=5, step=1, label="Min photos per clade")
    clades = LightTable(
        label="Clades, best first by the lower end of the 95 % interval (click a column to sort)",
        elem_id="dash_clades",
        max_height=300,
    )
    pairs = LightTable(label="Most confused pairs", elem_id="dash_pairs", max_height=300)
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
    charts["csv_files"], charts["csv_button"] = csv_files, csv_button
    return charts, dict(list_rank=list_rank, min_photos=min_photos)


def _build_errors() -> tuple[dict, gr.HTML, gr.Gallery]:
    """The error gallery and table (outputs) and the inspector they open."""
    gr.Markdown("### Errors: click one to inspect it")
    gallery = ThumbGallery(label="Errors (most confident first)", elem_id="dash_gallery")
    error_table = LightTable(label="Errors (click a row to inspect)", elem_id="dash_error_table", max_height=260)
    with gr.Row(elem_id="inspector_row"):  # on a narrow screen: the lineage table above the photos (CSS)
        inspector_text = gr.HTML(elem_id="inspector_text")
        inspector = gr.Gallery(
            label="Inspector: photo, Grad-CAM of the prediction, of the truth, and of "
            "'why the prediction and not the truth'",
            columns=4,
            height=300,
            elem_id="inspector",
            object_fit="contain",
        )
    outputs = dict(gallery=gallery, error_table=error_table, errors_state=gr.State(row_refs("", None)))
    return outputs, inspector_text, inspector


NO_MATCH = "**No photos match these filters.** Widen the confidence range, the clade or the outcome."


def _make_dashboard_handler(resources: Resources, out: DashboardOutputs):
    kept = remembered(out)

    def on_filters(name, rank, clade, min_conf, max_conf, outcome, noted, in_vocab, list_rank, min_photos, *more):
        kind, other, map_rank, prior, map_open, clade_key, sent = (list(more) + MORE_DEFAULTS[len(more) :])[:7]
        sent = sent or {}
        (min_conf, min_note), (max_conf, max_note) = clamp(min_conf, 0, 1), clamp(max_conf, 0, 1)
        if min_conf > max_conf:  # refused at the field; the charts keep showing the last valid view
            refused = f"{min_conf:g} is above the max ({max_conf:g}), so no photo could match: lower it."
            updates = {out.min_conf: gr.update(value=min_conf, info=refused), out.max_conf: gr.update(value=max_conf)}
            return {**updates, out.sent: {**sent, "min_note": refused, "max_note": ""}}
        clade, menu = _clade_menu(resources, out, name, rank, clade, clade_key)
        view = filtered_view(resources, name, rank, clade, min_conf, max_conf, outcome, noted, in_vocab)
        drawn = _whole_dashboard(
            resources,
            out,
            view,
            SectionArguments(name, list_rank, int(min_photos), kind, other, map_rank, prior, bool(map_open)),
        )
        sliders = {
            out.min_conf: slider_update(min_conf, min_note, sent.get("min_note", "")),
            out.max_conf: slider_update(max_conf, max_note, sent.get("max_note", "")),
        }
        shown = only_changed({**drawn, **sliders, **menu}, kept, sent, out.sent)
        shown[out.sent].update(min_note=min_note, max_note=max_note)
        return shown

    return on_filters


# the handler's arguments after the filters: geo kind, second table, map rank, geo-prior, map open, clade key, sent
MORE_DEFAULTS = ["fixed", None, "family", None, False, "", None]


def _whole_dashboard(resources: Resources, out: DashboardOutputs, view: View, a: SectionArguments) -> dict:
    """Every chart, table and text of the dashboard for the view, the sections computed side by side
    (frames.side_by_side)."""
    table = resources.tables[a.name]
    model = str(table["model"].iloc[0]) if len(table) else a.name

    def headline() -> dict:
        counts = summary(view)
        return {
            out.summary: summary_markdown(counts, a.name, model) if counts.photos else NO_MATCH,
            out.errors_plot: plot_errors_by_rank(errors_by_rank(view)),
        }

    def errors() -> dict:
        rows = error_rows(view, keep_row=True, only=ERROR_COLUMNS)
        return {
            out.gallery: thumbnails(resources, rows),
            out.error_table: rows[ERROR_COLUMNS].round(3),
            out.errors_state: row_refs(a.name, rows),
        }

    return side_by_side(
        headline,
        lambda: {out.sunburst: plot_clade_sunburst(view)},
        lambda: {
            out.clades: accuracy_by_clade(view, a.list_rank, a.min_photos).round(3),
            out.pairs: confused_pairs(view).round(3),
        },
        lambda: calibration_outputs(out, view),
        lambda: scope_outputs(resources, out, view, model),
        errors,
        lambda: geo_outputs(resources, out, view, a.list_rank, a.min_photos, a.kind, a.prior, a.name),
        lambda: comparison_outputs(resources, out, view, a.name, a.other, a.list_rank),
        lambda: representation_outputs(resources, out, view, a.name, a.map_rank, a.map_open),
    )


def _map_view(resources: Resources):
    def view_of(name, rank, clade, min_conf, max_conf, outcome, noted, in_vocab, _list, _min, _kind, _o, map_rank, _p):
        low, high = clamp(min_conf, 0, 1)[0], clamp(max_conf, 0, 1)[0]
        view = filtered_view(resources, name, rank, clade, low, min(max(low, high), 1), outcome, noted, in_vocab)
        return resources, view, name, map_rank

    return view_of


def _clade_menu(resources: Resources, out: DashboardOutputs, name, rank, clade, shown: str) -> tuple[str | None, dict]:
    """(the clade to filter by, the clade menu's update): the menu lists the table's clades at the rank, sent only
    when the table or the rank differ from those it lists (``shown``); a clade the table lacks there is dropped."""
    key = f"{name}|{rank}"
    if key == shown:
        return clade, {}
    choices = clade_choices(resources, name, rank)
    clade = clade if clade in choices else None
    return clade, {out.clade_name: gr.update(choices=choices, value=clade), out.clade_key: key}


def clade_choices(resources: Resources, name: str, rank) -> list[str]:
    """The true clades of table ``name`` at ``rank`` (none for "(all)")."""
    if not rank or rank == "(all)" or name not in resources.tables:
        return []
    return sorted(str(v) for v in resources.tables[name][f"true_{rank}"].dropna().unique())
