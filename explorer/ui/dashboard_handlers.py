"""The Diagnose tab's handlers: the filters' handler that redraws the whole dashboard (``make_refresh``), the
handlers of the controls that belong to one section and redraw that section alone (``section_handlers``), and the
photos in view when the map's section opens. Each takes the filters and the session by name
(explorer.ui.dashboard_state) and returns {component: value}, sending only what changed (explorer.ui.changed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

import gradio as gr

from explorer.diagnose.figures import plot_clade_sunburst, plot_errors_by_rank
from explorer.diagnose.frames import View, side_by_side
from explorer.diagnose.metrics import accuracy_by_clade, confused_pairs, errors_by_rank, summary
from explorer.diagnose.texts import summary_markdown
from explorer.services.resources import Resources
from explorer.ui.causes_section import cause_outputs, cause_plot_output, error_outputs
from explorer.ui.changed import only_changed, slider_update
from explorer.ui.class_report_section import class_report_outputs
from explorer.ui.dashboard_layout import DashboardOutputs
from explorer.ui.dashboard_state import ALL_RANKS, NEW_SESSION, DashboardFilters, DashboardSession
from explorer.ui.diagnose_sections import (
    calibration_outputs,
    comparison_outputs,
    filtered_view,
    scope_outputs,
)
from explorer.ui.geo_section import geo_outputs
from explorer.ui.light_table import best_and_worst
from explorer.ui.representation_section import map_outputs, representation_outputs

NO_MATCH = "**No photos match these filters.** Widen the confidence range, the clade or the outcome."

# outputs written only by the dashboard's refresh and section handlers: sent only when they changed
REMEMBERED = (
    *("summary", "errors_plot", "sunburst", "clades", "pairs", "reliability_plot", "tradeoff_plot", "calibration"),
    *(
        "scope_plot",
        "scope_text",
        "geo_summary",
        "geo_clades",
        "geo_compare",
    ),  # not the errors: a pair click writes them
    *("compare_plot", "compare_ranks_plot", "compare_text", "disagreements", "heads_text"),
    *("class_scores", "confusion_plot", "confusion_cells", "cause_totals", "cause_plot"),
    "surroundings",
)

Handler = Callable[[DashboardFilters, DashboardSession], dict]


def remembered(out: DashboardOutputs) -> dict:
    """{component: name} of the outputs whose last value each session remembers (``REMEMBERED``)."""
    return {getattr(out, name): name for name in REMEMBERED}


def make_refresh(resources: Resources, out: DashboardOutputs) -> Handler:
    """The filters' handler, ``refresh(filters, session)``: every output for the filters, and the sliders' notes;
    only the sliders' notes when the confidence range is refused (the charts keep the last valid view)."""
    kept = remembered(out)

    def refresh(filters: DashboardFilters, session: DashboardSession = NEW_SESSION) -> dict:
        filters, min_note, max_note = filters.clamped()
        if filters.min_conf > filters.max_conf:
            return _refused(out, filters, session)
        clade, menu = _clade_menu(resources, out, filters, session.clade_key)
        filters = replace(filters, clade=clade)
        drawn = _whole_dashboard(resources, out, filtered_view(resources, filters), filters, session.map_open)
        sliders = {
            out.min_conf: slider_update(filters.min_conf, min_note, session.sent.min_note),
            out.max_conf: slider_update(filters.max_conf, max_note, session.sent.max_note),
        }
        shown = only_changed({**drawn, **sliders, **menu}, kept, session.sent, out.sent)
        shown[out.sent] = replace(shown[out.sent], min_note=min_note, max_note=max_note)
        return shown

    return refresh


def _refused(out: DashboardOutputs, filters: DashboardFilters, session: DashboardSession) -> dict:
    """The note at the min slider that no photo could match; nothing else is redrawn."""
    low, high = filters.min_conf, filters.max_conf
    refused = f"{low:g} is above the max ({high:g}), so no photo could match: lower it."
    return {
        out.min_conf: gr.update(value=low, info=refused),
        out.max_conf: gr.update(value=high),
        out.sent: replace(session.sent, min_note=refused, max_note=""),
    }


def section_handlers(resources: Resources, out: DashboardOutputs) -> dict[str, tuple[Handler, list]]:
    """{filter name: (handler, outputs)} for the controls that belong to one section."""
    geo = [out.geo_summary, out.geo_clades, out.geo_gallery, out.geo_state, out.geo_compare]
    comparison = [out.compare_plot, out.compare_ranks_plot, out.compare_text, out.disagreements]
    report = [out.class_scores, out.confusion_plot, out.confusion_cells, out.cell_gallery, out.cell_state]
    by_rank = _section(
        resources,
        out,
        lambda view, filters, session: {
            **_clade_tables(resources, out, view, filters, session),
            **cause_plot_output(out, view, filters),
        },
    )
    geo_section = _section(resources, out, partial(_geo_section, resources, out))
    compared = _section(resources, out, partial(_compared, resources, out))
    mapped = _section(resources, out, partial(_mapped, resources, out))
    reported = _section(resources, out, lambda view, filters, _session: class_report_outputs(out, view, filters))
    listed = _section(resources, out, lambda view, filters, _session: error_outputs(resources, out, view, filters))
    errors = [out.gallery, out.error_table, out.errors_state, out.sent]
    return {
        "list_rank": (by_rank, [out.clades, out.geo_clades, out.cause_plot, out.surroundings, out.sent]),
        "min_photos": (by_rank, [out.clades, out.geo_clades, out.cause_plot, out.surroundings, out.sent]),
        "geo_kind": (geo_section, [*geo, out.sent]),
        "geo_prior": (geo_section, [*geo, out.sent]),
        "other": (compared, [*comparison, out.sent]),
        "report_rank": (reported, [*report, out.sent]),
        "cause": (listed, errors),
        "error_order": (listed, errors),
        "map_rank": (mapped, [out.map_plot, out.map_text, out.map_state, out.sent]),
    }


def _section(resources: Resources, out: DashboardOutputs, draw) -> Handler:
    """A handler that filters as the dashboard does and draws one section (``draw(view, filters, session)``),
    sending what changed; nothing when the confidence range is refused (the dashboard's handler says so at the
    sliders)."""
    kept = remembered(out)

    def on_change(filters: DashboardFilters, session: DashboardSession = NEW_SESSION) -> dict:
        filters = filters.clamped()[0]
        if filters.min_conf > filters.max_conf:
            return {}
        shown = draw(filtered_view(resources, filters), filters, session)
        return only_changed(shown, kept, session.sent, out.sent) if shown else {}

    return on_change


def _clade_tables(resources: Resources, out: DashboardOutputs, view: View, filters: DashboardFilters, _session) -> dict:
    """The two tables whose rank and minimum photos the clade-table controls set."""
    geo = geo_outputs(resources, out, view, filters)
    return {out.clades: clade_table(view, filters), out.geo_clades: geo[out.geo_clades]}


def clade_table(view: View, filters: DashboardFilters):
    """Accuracy per clade at the list's rank, best first; a long one cut to its best and worst rows."""
    table = accuracy_by_clade(view, filters.list_rank, filters.min_photos).round(3)
    return best_and_worst(table, f"{filters.list_rank} clades")


def _geo_section(resources: Resources, out: DashboardOutputs, view: View, filters: DashboardFilters, _session) -> dict:
    return geo_outputs(resources, out, view, filters)


def _compared(resources: Resources, out: DashboardOutputs, view: View, filters: DashboardFilters, _session) -> dict:
    return comparison_outputs(resources, out, view, filters)


def _mapped(
    resources: Resources, out: DashboardOutputs, view: View, filters: DashboardFilters, session: DashboardSession
) -> dict:
    return map_outputs(resources, out, view, filters) if session.map_open else {}


def _whole_dashboard(
    resources: Resources, out: DashboardOutputs, view: View, filters: DashboardFilters, map_open: bool
) -> dict:
    """Every chart, table and text of the dashboard for the view, the sections computed side by side
    (frames.side_by_side)."""
    name = filters.table
    table = resources.tables[name]
    model = str(table["model"].iloc[0]) if len(table) else name

    def headline() -> dict:
        counts = summary(view)
        return {
            out.summary: _flagged(resources.stale_note(name), summary_markdown(counts, name, model))
            if counts.photos
            else NO_MATCH,
            out.errors_plot: plot_errors_by_rank(errors_by_rank(view)),
        }

    return side_by_side(
        headline,
        lambda: {out.sunburst: plot_clade_sunburst(view)},
        lambda: {
            out.clades: clade_table(view, filters),
            out.pairs: confused_pairs(view).round(3),
        },
        lambda: calibration_outputs(out, view),
        lambda: scope_outputs(resources, out, view, model),
        lambda: error_outputs(resources, out, view, filters),
        lambda: cause_outputs(out, view, filters),
        lambda: geo_outputs(resources, out, view, filters),
        lambda: comparison_outputs(resources, out, view, filters),
        lambda: class_report_outputs(out, view, filters),
        lambda: representation_outputs(resources, out, view, filters, map_open),
    )


def _flagged(note: str, text: str) -> str:
    """The text under a warning (a table made by other weights than the loaded model's), when there is one."""
    return f"⚠ {note}\n\n{text}" if note else text


def map_view(resources: Resources, filters: DashboardFilters) -> View:
    """The photos in view when the map's section opens: the confidences moved into 0..1, and a max below the min
    taken as the min (the filters' handler says why at the sliders)."""
    filters = filters.clamped()[0]
    return filtered_view(resources, replace(filters, max_conf=max(filters.min_conf, filters.max_conf)))


def _clade_menu(
    resources: Resources, out: DashboardOutputs, filters: DashboardFilters, shown: str
) -> tuple[str | None, dict]:
    """(the clade to filter by, the clade menu's update): the menu lists the table's clades at the rank, sent only
    when the table or the rank differ from those it lists (``shown``); a clade the table lacks there is dropped."""
    key = f"{filters.table}|{filters.clade_rank}"
    if key == shown:
        return filters.clade, {}
    choices = clade_choices(resources, filters.table, filters.clade_rank)
    clade = filters.clade if filters.clade in choices else None
    return clade, {out.clade: gr.update(choices=choices, value=clade), out.clade_key: key}


def clade_choices(resources: Resources, name: str, rank: str | None) -> list[str]:
    """The true clades of table ``name`` at ``rank`` (none for "(all)")."""
    if not rank or rank == ALL_RANKS or name not in resources.tables:
        return []
    return sorted(str(v) for v in resources.tables[name][f"true_{rank}"].dropna().unique())
