"""What the dashboard says in words: headline numbers, lineage comparisons, escaped for the page."""

from __future__ import annotations

import html

from explorer.diagnose.calibration import TemperatureFit
from explorer.diagnose.geo_effect import GeoEffect
from explorer.diagnose.metrics import TableSummary
from explorer.present import format_probability
from explorer.taxonomy import RANKS


def summary_markdown(stats: TableSummary, table_name: str, model: str) -> str:
    """Headline numbers of a (filtered) evaluation table, with what is not known said plainly."""
    return (
        f"**{html.escape(table_name)}** (model `{html.escape(model)}`): {stats.readable} photos of "
        f"{stats.species} species in view; top-1 **{stats.top1:.1%}**, top-5 {stats.topk:.1%} "
        f"(on the {stats.readable - stats.out_of_vocabulary} photos whose species the model knows). "
        f"{stats.out_of_vocabulary} out-of-vocabulary, {stats.unreadable} unreadable, "
        f"{stats.noted} with a doubtful label. Overlap of these photos with the model's training photos is "
        f"unknown."
    )


def comparison_html(row) -> str:
    """Truth and top-1 lineages side by side; the first rank that differs is marked."""
    esc = html.escape
    cells = []
    diverged = False
    for rank in RANKS:
        truth, pred = row[f"true_{rank}"], row[f"pred_{rank}"]
        differs = truth is not None and pred is not None and truth != pred and not diverged
        diverged |= differs
        style = " style='background:#fde2e2'" if differs else ""
        cells.append(
            f"<tr{style}><td>{rank}</td><td>{esc(str(truth or '?'))}</td><td>{esc(str(pred or '?'))}</td></tr>"
        )
    head = (
        "<tr><th>rank</th><th>truth</th><th>top-1 prediction "
        f"({format_probability(float(row['confidence']))})</th></tr>"
    )
    return f"<table class='predictions'>{head}{''.join(cells)}</table>"


def geo_markdown(effect: GeoEffect) -> str:
    """Headline of what the geo-prior did to the photos that had a place."""
    n = effect.photos_with_place
    if not n:
        return "No photo in view has a place, so the geo-prior did nothing here."
    sources = "; ".join(f"{html.escape(k)}: {v}" for k, v in effect.location_sources.items())
    return (
        f"On the **{n}** photos in view that have a place ({sources}; {effect.photos_without_place} others have "
        f"none), top-1 goes from **{effect.top1_vision:.1%}** on the image alone to "
        f"**{effect.top1_geo:.1%}** with the geo-prior. It changed the top-1 on {effect.changed} "
        f"({effect.changed / n:.1%}): **fixed {effect.fixed}**, **broke {effect.broke}** "
        f"(net {effect.fixed - effect.broke:+d}), and moved {effect.wrong_to_other_wrong} from one wrong "
        "answer to another."
    )


def calibration_markdown(fit: TemperatureFit) -> str:
    if not fit.held_out_photos:
        return "Too few photos in view to fit a temperature."
    return (
        f"Temperature fitted on half of the photos in view ({fit.fit_photos}, split by a hash of the photo "
        f"id): **T = {fit.temperature:.2f}**. On the other half ({fit.held_out_photos} photos) the expected "
        f"calibration error on that half goes from {fit.ece_before:.3f} to {fit.ece_after:.3f} "
        f"(the chart's legend gives it over all photos in view). Logits are divided by T "
        f"before the softmax; T > 1 means the model was over-confident."
    )
