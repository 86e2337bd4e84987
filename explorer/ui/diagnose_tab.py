"""The Diagnose tab: the error dashboard, built only from the evaluation tables (a model runs only in the
inspector, on demand). This module puts the layout (dashboard_layout and the sections' builders) together and
wires each event to its handler (dashboard_handlers); every event reads the filters by name (dashboard_state)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import gradio as gr

from explorer.services.resources import Resources
from explorer.ui.causes_section import make_pair_photos
from explorer.ui.changed import Sent
from explorer.ui.class_report_section import build_class_report, make_cell_photos
from explorer.ui.components import MODEL_QUEUE, make_inspector
from explorer.ui.dashboard_handlers import Handler, make_refresh, map_view, section_handlers
from explorer.ui.dashboard_layout import DashboardOutputs, build_charts, build_errors, build_filters
from explorer.ui.dashboard_state import DashboardInputs
from explorer.ui.diagnose_sections import build_comparison, view_csv_files
from explorer.ui.faithfulness_section import build_faithfulness_section
from explorer.ui.geo_section import build_geo_section, make_geo_drilldown
from explorer.ui.representation_section import build_representation_section, wire_map_clicks, wire_map_opening

NO_TABLES = (
    "No evaluation tables found. Make one with `explorer-evaluate --model NAME --images MANIFEST "
    "--out assets/eval/NAME.parquet` (see docs/guide/bring-your-own-model.md)."
)


@dataclass
class DashboardView:
    """The built dashboard: its inputs by name, its outputs, and the filters' handler (``refresh(filters,
    session)``), also run at start-up for the opening dashboard (explorer.ui.demo)."""

    inputs: DashboardInputs
    outputs: DashboardOutputs
    refresh: Handler


def build_diagnose_tab(resources: Resources) -> DashboardView | None:
    """The dashboard's components, wired; None (and a note saying how to make one) without evaluation tables."""
    if not resources.tables:
        gr.Markdown(NO_TABLES)
        return None
    top = build_filters(resources)
    charts, chart_filters, csv = build_charts()
    errors, error_filters, inspector_text, inspector = build_errors()
    build_faithfulness_section(resources)
    geo, geo_filters = build_geo_section(resources)
    comparison, compare_filter = build_comparison(resources)
    report, report_filter = build_class_report()
    representation, map_filter, map_parts = build_representation_section(resources)
    controls = {**top, **chart_filters, **error_filters, **geo_filters, **compare_filter, **report_filter, **map_filter}
    filter_outputs = {name: controls[name] for name in ("min_conf", "max_conf", "clade")}  # their notes, the menu
    out = DashboardOutputs(
        **charts,
        **errors,
        **geo,
        **comparison,
        **report,
        **representation,
        **filter_outputs,
        clade_key=gr.State(""),
        sent=gr.State(Sent()),
    )
    states = dict(map_open=map_parts["map_open"], clade_key=out.clade_key, sent=out.sent)
    inputs = DashboardInputs(controls, states)  # ValueError if a control and DashboardFilters' fields differ
    refresh = make_refresh(resources, out)
    _wire_filters(resources, inputs, out, refresh)
    _wire_inspectors(resources, inputs, out, (inspector_text, inspector))
    wire_map_opening(resources, inputs, out, map_parts, partial(map_view, resources))
    wire_map_clicks(resources, out.map_state, map_parts)
    csv_button, csv_files = csv
    csv_button.click(
        inputs.filters_handler(partial(view_csv_files, resources)),
        inputs.components,
        csv_files,
        api_visibility="private",
    )
    return DashboardView(inputs, out, refresh)


def _wire_filters(resources: Resources, inputs: DashboardInputs, out: DashboardOutputs, refresh: Handler) -> None:
    """Each filter to the handler that redraws what it changes: the filters every chart obeys to the whole dashboard,
    a section's own control to that section alone (its outputs only are computed and sent)."""
    own = section_handlers(resources, out)
    for name, control in inputs.controls.items():
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
        event(inputs.handler(handler), inputs.components, outputs, api_visibility="private", show_progress="minimal")


def _wire_inspectors(resources: Resources, inputs: DashboardInputs, out: DashboardOutputs, inspector: tuple) -> None:
    """A click on an error (gallery or table) or on a geo-prior photo opens it in the inspector; a click on a clade
    of the geo-prior's table shows that clade's photos."""
    for source, rows, place_changed in (
        (out.gallery, out.errors_state, False),
        (out.error_table, out.errors_state, False),
        (out.geo_gallery, out.geo_state, True),
        (out.cell_gallery, out.cell_state, False),
    ):
        inspect = make_inspector(resources, place_changed)
        source.select(inspect, [rows], list(inspector), api_visibility="private", **MODEL_QUEUE)
    drilldown = inputs.select_handler(make_geo_drilldown(resources))
    out.geo_clades.select(drilldown, inputs.components, [out.geo_gallery, out.geo_state], api_visibility="private")
    pair_photos = inputs.select_handler(make_pair_photos(resources, out))
    errors = [out.gallery, out.error_table, out.errors_state]
    out.pairs.select(pair_photos, inputs.components, errors, api_visibility="private", show_progress="minimal")
    cell_photos = inputs.select_handler(make_cell_photos(resources))
    out.confusion_cells.select(
        cell_photos, inputs.components, [out.cell_gallery, out.cell_state], api_visibility="private"
    )
