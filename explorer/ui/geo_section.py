"""The dashboard's "What the place changed" section: one geo-prior's fixes and breaks at a time (the prior chosen
in the section), and every prior of the table side by side on the same photos."""

from __future__ import annotations

import html

import gradio as gr

from explorer.diagnose.geo_effect import (
    GEO_KINDS,
    compare_priors,
    geo_effect,
    geo_effect_by_clade,
    geo_rows,
    geo_view,
    has_geo,
    table_priors,
)
from explorer.diagnose.texts import geo_markdown
from explorer.photos.thumbnails import thumbnails
from explorer.services.resources import Resources
from explorer.ui.components import row_refs
from explorer.ui.dashboard_state import DEFAULTS, DashboardFilters
from explorer.ui.diagnose_sections import filtered_view
from explorer.ui.light_table import LightTable
from explorer.ui.thumb_gallery import ThumbGallery

NO_GEO = (
    "This table has no places (no `lat`/`lon` columns and geo-prior re-ranking), so there is nothing to show here. "
    "`explorer-evaluate` adds them when the manifest has `lat`, `lon` (and `date`) and the model has a geo-prior."
)
SAME_PHOTOS = (
    "Every prior re-ranks the same photos at the same places: held-out eBird records of our own prior, which "
    "BirdNET's (trained on eBird data at large) may have seen. That favours BirdNET."
)


def build_geo_section(resources: Resources) -> tuple[dict, dict]:
    """The geo-prior's fixes and breaks and the side-by-side table (outputs), and the section's filters: which
    prior, which photos ({filter name: control})."""
    priors = list(dict.fromkeys(p for table in resources.tables.values() for p in table_priors(table)))
    with gr.Accordion("What the place changed: the geo-prior's fixes and breaks", open=True):
        geo_compare = LightTable(
            label="Each geo-prior on the same photos with a place (photos in view)",
            elem_id="dash_geo_compare",
            max_height=200,
        )
        gr.Markdown(f"<small>{html.escape(SAME_PHOTOS)}</small>")
        with gr.Row():
            geo_prior = gr.Radio(
                priors, value=priors[0] if priors else None, label="Geo-prior", elem_id="dash_geo_prior"
            )
            geo_kind = gr.Radio(
                list(GEO_KINDS), value=DEFAULTS.geo_kind, label="Photos the prior...", elem_id="dash_geo_kind"
            )
        geo_summary = gr.Markdown(elem_id="dash_geo_summary")
        geo_clades = LightTable(
            label="Per clade (clade-table rank), most affected first: click a row for its photos",
            elem_id="dash_geo_clades",
            max_height=300,
        )
        geo_gallery = ThumbGallery(
            label="What the place did to the top-1 (click one to inspect it)", elem_id="dash_geo_gallery"
        )
    outputs = dict(
        geo_summary=geo_summary,
        geo_clades=geo_clades,
        geo_gallery=geo_gallery,
        geo_state=gr.State(row_refs("", None)),
        geo_compare=geo_compare,
    )
    return outputs, dict(geo_kind=geo_kind, geo_prior=geo_prior)


GALLERY_COLUMNS = ["path", "true_name", "pred_name", "geo_pred_name", "correct_1", "geo_correct_1"]  # the caption's


def _geo_caption(row) -> str:
    """Short enough to read on a thumbnail (the inspector has the rest): what the place did to the top-1."""
    if row.geo_correct_1:
        return f"fixed: {row.geo_pred_name}"
    if row.correct_1:
        return f"broke: {row.true_name} → {row.geo_pred_name}"
    return f"{row.pred_name} → {row.geo_pred_name}"


def geo_outputs(resources: Resources, out, view, filters: DashboardFilters) -> dict:
    """Summary, per-clade table, gallery and rows (references: see row_refs) of the geo-prior section for a
    filtered view of table ``filters.table``, for its geo-prior and kind of photos, per clade of the clade tables'
    rank; and every prior side by side."""
    name, prior = filters.table, filters.geo_prior
    if not has_geo(view):
        return {
            out.geo_summary: NO_GEO,
            out.geo_clades: None,
            out.geo_gallery: [],
            out.geo_state: row_refs(name, None, prior),
            out.geo_compare: None,
        }
    compared = compare_priors(view).round(3)
    if prior and prior not in table_priors(view):
        note = f"This table has no answers from the geo-prior `{html.escape(prior)}`; it has " + ", ".join(
            f"`{html.escape(p)}`" for p in table_priors(view)
        )
        return {
            out.geo_summary: note,
            out.geo_clades: None,
            out.geo_gallery: [],
            out.geo_state: row_refs(name, None, prior),
            out.geo_compare: compared,
        }
    view = geo_view(view, prior)
    rows = geo_rows(view, filters.geo_kind, keep_row=True, only=GALLERY_COLUMNS)
    shown = prior or table_priors(view)[0]
    return {
        out.geo_summary: f"**Geo-prior `{html.escape(shown)}`.** " + geo_markdown(geo_effect(view)),
        out.geo_clades: geo_effect_by_clade(view, filters.list_rank, int(filters.min_photos)).round(3),
        out.geo_gallery: thumbnails(resources, rows, _geo_caption),
        out.geo_state: row_refs(name, rows, prior),
        out.geo_compare: compared,
    }


def make_geo_drilldown(resources: Resources):
    """The select handler of the per-clade table, ``on_clade(filters, evt)``: the photos of the clicked clade in the
    section's gallery (always sent: see explorer.ui.changed)."""

    def on_clade(filters: DashboardFilters, evt: gr.SelectData):
        name, prior = filters.table, filters.geo_prior
        view = filtered_view(resources, filters)
        if not has_geo(view) or not evt.row_value or (prior and prior not in table_priors(view)):
            return [], row_refs(name, None, prior)
        clade = evt.row_value[0]
        rows = geo_rows(
            geo_view(view, prior), filters.geo_kind, filters.list_rank, clade, keep_row=True, only=GALLERY_COLUMNS
        )
        return thumbnails(resources, rows, _geo_caption), row_refs(name, rows, prior)

    return on_clade
