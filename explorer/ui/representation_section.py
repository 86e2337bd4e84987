"""Diagnose's "Representation" section: does the model learn taxonomy? The per-rank figures of every loaded table
side by side (from explorer-represent's reports) and a 2-D map of the photos in view, coloured by clade, where a
click on a photo opens it in the inspector."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from explorer.diagnose.figures import plot_embedding_map
from explorer.diagnose.frames import View, to_pandas
from explorer.diagnose.representation import fits_frame, map_points, rank_head_accuracy, sources_line
from explorer.services.inspection import inspect_error
from explorer.services.resources import Resources
from explorer.ui.components import MODEL_QUEUE, refused
from explorer.ui.dashboard_state import DEFAULTS, DashboardFilters, DashboardInputs
from explorer.ui.fast_plot import FastPlot

MAP_RANKS = ("order", "family", "genus", "species")
NO_REPORT = (
    "No representation report for this table, so no map: `explorer-represent --only {name}` writes one from the "
    "embeddings `explorer-evaluate` stored beside it."
)


@dataclass(frozen=True)
class MapPoints:
    """What the map shows, kept per session (a gr.State) for its clicks: the table and the photo of each point,
    in the order of the points' positions."""

    table: str = ""
    photo_ids: tuple[str, ...] = ()


def build_representation_section(resources: Resources) -> tuple[dict, dict, dict]:
    """(outputs the dashboard handler fills, the map's colour filter ({filter name: control}), the click box and
    its inspector)."""
    with gr.Accordion(
        "Representation: does the model learn taxonomy?", open=False, elem_id="dash_representation"
    ) as accordion:
        gr.Markdown(fits_markdown(resources.representations), elem_id="dash_fits_text")
        fits = fits_frame(resources.representations)
        shown = fits.astype(object).where(fits.notna(), "n/a")  # a missing figure said, in a column of numbers
        gr.Dataframe(shown if not fits.empty else None, label="Per rank, every table", elem_id="dash_fits")
        heads_text = gr.Markdown(elem_id="dash_heads_text")
        heads_table = gr.Dataframe(label="Per-rank heads vs the species head, photos in view", elem_id="dash_heads")
        map_rank = gr.Dropdown(
            list(MAP_RANKS), value=DEFAULTS.map_rank, label="Colour the map by", elem_id="dash_map_rank"
        )
        map_text = gr.Markdown(elem_id="dash_map_text")
        map_plot = FastPlot(elem_id="dash_map")
        pick = gr.Textbox(visible="hidden", elem_id="dash_map_pick")
        inspector_text = gr.HTML(elem_id="map_inspector_text")
        inspector = gr.Gallery(
            label="The photo you clicked: its truth, the model's answer and their Grad-CAMs",
            columns=4,
            height=300,
            object_fit="contain",
            elem_id="map_inspector",
        )
    outputs = dict(
        map_plot=map_plot,
        map_text=map_text,
        map_state=gr.State(MapPoints()),
        heads_text=heads_text,
        heads_table=heads_table,
    )
    parts = dict(pick=pick, inspector_text=inspector_text, inspector=inspector, accordion=accordion)
    parts["map_open"] = gr.State(False)  # the map (0.6 MB for 4,000 photos) is drawn only while it can be seen
    return outputs, dict(map_rank=map_rank), parts


def wire_map_clicks(resources: Resources, state: gr.State, parts: dict) -> None:
    def on_pick(picked, shown):
        row = picked_row(resources, picked, shown)
        if row is None:
            return "", []
        try:
            found = inspect_error(resources, row)
        except ValueError as err:
            raise refused(str(err)) from err
        return found.html, found.images

    parts["pick"].change(
        on_pick,
        [parts["pick"], state],
        [parts["inspector_text"], parts["inspector"]],
        api_visibility="private",
        **MODEL_QUEUE,
    )


def picked_row(resources: Resources, picked: str, shown: MapPoints | None) -> dict | None:
    """The table row of the point a click named ('<position>:<nonce>'), or None for anything else."""
    try:
        position = int(str(picked).split(":", 1)[0])
    except ValueError:
        return None
    shown = shown or MapPoints()
    ids = shown.photo_ids
    table = resources.tables.get(shown.table)
    if table is None or not 0 <= position < len(ids):
        return None
    rows = table[table["photo_id"].astype(str) == ids[position]]
    return rows.iloc[0].to_dict() if len(rows) else None


def wire_map_opening(
    resources: Resources, inputs: DashboardInputs, out, parts: dict, view_of: Callable[[DashboardFilters], View]
) -> None:
    """Opening the section draws the map for the current filters (one request); closing it stops redrawing it
    on every filter change. ``view_of(filters)`` gives the photos in view."""

    def on_open(filters: DashboardFilters) -> dict:
        return {**map_outputs(resources, out, view_of(filters), filters), parts["map_open"]: True}

    outputs = [out.map_plot, out.map_text, out.map_state, parts["map_open"]]
    parts["accordion"].expand(inputs.filters_handler(on_open), inputs.components, outputs, api_visibility="private")
    parts["accordion"].collapse(lambda: False, None, parts["map_open"], api_visibility="private")


def representation_outputs(resources: Resources, out, view: View, filters: DashboardFilters, map_open: bool) -> dict:
    """The per-rank heads, and the map while its section is open."""
    heads = _heads_outputs(out, view, filters.table)
    if not map_open:
        return {**heads, out.map_plot: None, out.map_text: "", out.map_state: MapPoints()}
    return {**heads, **map_outputs(resources, out, view, filters)}


MAP_COLUMNS = ["photo_id", "true_name", "true_common_name", "pred_name", "confidence", "correct_1"]


def map_outputs(resources: Resources, out, view: View, filters: DashboardFilters) -> dict:
    """The map of the photos in view, coloured by the clades of ``filters.map_rank``, and what it shows."""
    name, rank = filters.table, filters.map_rank
    report = resources.representations.get(name)
    if report is None:
        return {out.map_plot: None, out.map_text: NO_REPORT.format(name=html.escape(name)), out.map_state: MapPoints()}
    rank = rank if rank in MAP_RANKS else "family"
    view = to_pandas(view, MAP_COLUMNS + [f"true_{rank}"])
    points = map_points(view, report, rank)
    on_map = points.attrs.get("on_map", len(points))
    sample = (
        f" {len(points):,} of them are drawn, a fixed sample: a photo drawn stays drawn as you filter, and a "
        "narrower filter (one order, one family) draws every photo it holds, up to that many."
        if len(points) < on_map
        else ""
    )
    text = (
        f"{on_map:,} of the {len(view):,} photos in view are on the map of `{html.escape(name)}`'s "
        f"{len(report['map']['photo_id']):,} photos.{sample} Each point is a photo, placed by UMAP (cosine) from the "
        "model's embedding of it: photos the model sees as alike sit close together. The layout is computed once "
        "per table (`explorer-represent`), so points stay where they are as you filter. Colours: the "
        f"{points['clade'].nunique() - int('other' in set(points['clade']))} largest {rank} clades in view "
        "(the rest grey); × marks a wrong top-1. Hover for names; **click a photo to inspect it**."
    )
    state = MapPoints(table=name, photo_ids=tuple(points["photo_id"].tolist()))
    return {out.map_plot: plot_embedding_map(points, rank), out.map_text: text, out.map_state: state}


def _heads_outputs(out, view: View, name: str) -> dict:
    frame = rank_head_accuracy(view)
    if frame.empty:
        text = (
            f"`{html.escape(name)}` has no per-rank heads: `explorer-train-head --rank-heads --base MODEL` trains "
            "them on the model's embedding, and the card's `rank_heads` names them."
        )
        return {out.heads_text: text, out.heads_table: gr.update(value=None, visible=False)}
    text = (
        "**Does the model learn taxonomy? Per-rank heads against the species head.** For each rank, a linear head "
        "trained on the model's features to name that rank's clade directly, against the species head's "
        "probabilities "
        "summed over each clade of that rank (its roll-up) and the clade of its top-1 species, on the photos in "
        "view whose true clade the rank head knows. A rank head that beats the summed species head has found "
        "more of that rank in the embedding than the species head uses."
    )
    return {out.heads_text: text, out.heads_table: gr.update(value=frame.round(3), visible=True)}


def fits_markdown(reports: dict[str, dict]) -> str:
    if not reports:
        return (
            "No representation reports yet: `explorer-represent` measures each table's embeddings against the "
            "taxonomy (it needs the embeddings `explorer-evaluate` writes)."
        )
    return (
        "How well each model's embeddings (its pooled features before the last layer) follow the taxonomy of the "
        "photos' true species. **AMI / NMI**: Ward clusters, as many as there are true taxa at the rank, after UMAP "
        "to 50 dimensions, against the true taxa (1 = the clusters are the taxa, 0 = no better than chance). "
        "**Recall@k**: for each photo, is one of its k nearest other photos (cosine) of the same taxon; photos "
        "alone in their taxon are left out (queries); 95 % bootstrap interval. These are few photos: "
        f"{html.escape(sources_line(reports))}. Overlap with the Coral models' training photos is unknown "
        "(the CUB-100 head saw only the CUB-100 train split; what its ImageNet backbone saw is unknown). Tables "
        "hold different photos and taxa, so compare ranks within a table, and tables only with care."
    )
