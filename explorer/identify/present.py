"""Turning identify results into what people read: label dicts, captions, escaped HTML, overlays.

No gradio here: plain values in, plain values (str, dict, arrays) out, so it can be tested directly.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
from PIL import Image

from explorer.cam.gradcam import CLASS_AGNOSTIC, overlay_cams
from explorer.identify.answer import IdentifyResult, Prediction
from explorer.identify.provenance import headline_provenance, suggestion_provenance
from explorer.models.classifier import centre_square, resize_rgb
from explorer.taxa.taxonomy import RANKS

OVERLAY_MAX_SIDE = 384  # gallery tiles are ~250 px; the preview stays sharp at this size


def prediction_title(pred: Prediction, subject: str = "organism") -> str:
    """'Poecile atricapillus (Black-capped Chickadee)', or 'No bird found' for the background class."""
    if pred.is_background:
        return f"No {subject} found"
    return f"{pred.scientific_name} ({pred.common_name})" if pred.common_name else pred.scientific_name


def topk_label(result: IdentifyResult, subject: str = "organism") -> dict[str, float]:
    """{'1. title: 0.4%': probability} in rank order (numbered so that equal names stay distinct). The label
    component rounds to whole percents (0.4 % shows as "0%"), so the key carries the probability as the table
    writes it and the page's CSS hides the rounded figure."""
    return {
        f"{n}. {prediction_title(p, subject)}: {format_probability(p.probability)}": p.probability
        for n, p in enumerate(result.predictions, 1)
    }


def cam_gallery_title(result: IdentifyResult) -> str:
    if result.cam_method in CLASS_AGNOSTIC:
        return (
            f"What the model looked at ({result.cam_method}): one map for the photo; it ignores the class, so it is "
            "the same for every suggestion"
        )
    return f"What the model looked at ({result.cam_method}): one CAM per suggestion"


def cam_captions(result: IdentifyResult, subject: str = "organism") -> list[str]:
    """Short enough for a thumbnail, the probability first: '1. 73.8% Poecile atricapillus'; a class-agnostic
    method's one map: 'every suggestion (eigencam)'."""
    if result.cam_method in CLASS_AGNOSTIC:
        return [f"every suggestion ({result.cam_method})"]
    names = [prediction_title(p, subject) if p.is_background else p.scientific_name for p in result.predictions]
    return [
        f"{n}. {format_probability(p.probability)} {name}"
        for n, (p, name) in enumerate(zip(result.predictions, names), 1)
    ]


def framed(image: Image.Image, crop_pct: float) -> Image.Image:
    """The part of the photo the model sees: all of it, or the central square of ``crop_pct`` of the short side."""
    return image if crop_pct >= 1 else Image.fromarray(centre_square(image, crop_pct))


def display_copy(image: Image.Image, max_side: int = OVERLAY_MAX_SIDE) -> np.ndarray:
    """(H, W, 3) uint8 copy of the photo, downscaled so its long side is at most ``max_side``."""
    scale = min(1.0, max_side / max(image.size))
    if scale == 1.0:
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    return resize_rgb(image, (max(1, round(image.width * scale)), max(1, round(image.height * scale))))


def cam_overlays(image: Image.Image, result: IdentifyResult, crop_pct: float = 1.0) -> list[np.ndarray]:
    """One heat-map overlay per suggestion, on what the model saw: the whole photo (resized, uncropped), or with a
    card's crop_pct < 1 its central square."""
    cams = result.cams[:1] if result.cam_method in CLASS_AGNOSTIC else result.cams  # one map, drawn once
    return overlay_cams(display_copy(framed(image, crop_pct)), cams)


def lineage_text(pred: Prediction) -> str:
    """'Animalia › Chordata › … › Poecile' with '?' for unknown ranks (plain text)."""
    return " › ".join(pred.lineage.get(rank) or "?" for rank in RANKS[:-1])


def resolution_text(pred: Prediction) -> str:
    if pred.is_background:
        return "not a taxon"
    if pred.resolved_rank is None:
        return pred.note or "lineage unknown"
    text = f"resolved at {pred.resolved_rank}"
    return f"{text}; {pred.note}" if pred.note else text


def predictions_html(result: IdentifyResult, subject: str = "organism") -> str:
    """An escaped HTML table: rank, name, common name, probability, lineage and how it was resolved; with a place,
    also the image-only probability, the geo score and the rank the image alone gave."""
    esc = html.escape
    with_place = result.place is not None
    rows = []
    for n, p in enumerate(result.predictions, 1):
        name = esc(prediction_title(p, subject)) if p.is_background else f"<i>{esc(p.scientific_name)}</i>"
        taxon = f" <small>iNat {p.taxon_id}</small>" if p.taxon_id else ""
        flag = " <b title='the image supports it, the geo-prior does not know it here'>⚠ out of known range</b>"
        if p.kept_unusual:
            flag = (
                " <b title='the image supports it and the place did not push it down'>⚠ unusual here: out of known "
                "range for this week</b>"
            )
        lineage = " › ".join(_rank_span(rank, p.lineage.get(rank)) for rank in RANKS[:-1])
        geo_cells = ""
        if with_place:
            geo = "unknown" if p.geo_score is None else f"{p.geo_score:.2f}"
            moved = "" if p.vision_rank in (None, n) else f" (was {p.vision_rank})"
            geo_cells = (
                f"<td style='text-align:right'>{format_probability(p.vision_probability or 0.0)}</td>"
                f"<td style='text-align:right'>{geo}</td><td>{n}{moved}</td>"
            )
        rows.append(
            f"<tr><td>{n}</td><td>{name}{taxon}{flag if p.out_of_range else ''}</td><td>{esc(p.common_name)}</td>"
            f"<td style='text-align:right'>{format_probability(p.probability)}</td>{geo_cells}<td>{lineage}</td>"
            f"<td><small>{esc(resolution_text(p))}</small></td><td><small>{esc(suggestion_provenance(result, p))}"
            "</small></td></tr>"
        )
    extra = "<th>Image only</th><th>Geo score</th><th>Rank (was, on the image alone)</th>" if with_place else ""
    probability = "Image × place" if with_place else "Probability"
    head = (
        f"<tr><th>#</th><th>Scientific name</th><th>Common name</th><th>{probability}</th>{extra}"
        "<th>Lineage (kingdom › … › genus)</th><th>Taxonomy</th><th>Decided by</th></tr>"
    )
    return f"<table class='predictions'>{head}{''.join(rows)}</table>"


def predictions_frame(result: IdentifyResult) -> pd.DataFrame:
    """The suggestions as a table for download: one row per suggestion with its lineage and, with a place, the
    image-only probability, the geo score and the image-only rank."""
    rows = []
    for n, p in enumerate(result.predictions, 1):
        row = {
            "rank": n,
            "scientific_name": p.scientific_name,
            "common_name": p.common_name,
            "probability": p.probability,
            "is_background": p.is_background,
            "taxon_id": p.taxon_id,
            "resolved_rank": p.resolved_rank,
            **{r: p.lineage.get(r) for r in RANKS[:-1]},
            "provenance": suggestion_provenance(result, p),
        }
        if result.place is not None:
            row |= {"image_only_probability": p.vision_probability, "geo_score": p.geo_score}
            row |= {"image_only_rank": p.vision_rank, "out_of_known_range": p.out_of_range}
        rows.append(row)
    return pd.DataFrame(rows)


def _rank_span(rank: str, name: str | None) -> str:
    esc = html.escape
    return f"<span title='{esc(rank)}: {esc(name or 'unknown')}'>{esc(name or '?')}</span>"


def format_probability(probability: float) -> str:
    """'72.6%', or '<0.1%' rather than a misleading '0.0%'."""
    return "<0.1%" if probability < 0.0005 else f"{probability:.1%}"


def rollup_markdown(result: IdentifyResult, model_label: str, photos: int = 1) -> str:
    """The headline answer, what decided it (``photos``: an observation's photos fused), the model chosen (and
    why), the scope verdict, the threshold and the model's vocabulary made explicit."""
    r, scope = result.rollup, result.scope
    lines = [
        f"### {md_escape(r.text)}",
        f"<small>Decided by: **{md_escape(headline_provenance(result, photos))}**</small>",
    ]
    if result.routing and result.routing != r.text:
        lines.append(f"<small>{md_escape(result.routing)}</small>")
    if scope is not None:
        verdict = "in scope" if scope.in_scope else "out of scope"
        lines.append(
            f"<small>Scope check: {verdict} (score {scope.score:.2f}, threshold {scope.threshold:.2f}). "
            + (
                "The suggestions below are the closest classes only; none is likely right. "
                if not scope.in_scope
                else ""
            )
            + "</small>"
        )
    lines.append(
        f"<small>Roll-up threshold {r.threshold:.0%} (summed probability); "
        f"probabilities are relative to the classes of **{md_escape(model_label)}**.</small>"
    )
    return "\n\n".join(lines)


def suggestions_heading(result: IdentifyResult, subject: str = "organism") -> str:
    """The top-k list's title: demoted when the photo is out of the model's scope."""
    if result.scope is not None and not result.scope.in_scope:
        return f"Closest classes (this does not look like a {subject}; treat these as unlikely)"
    if result.scope is not None and result.scope.known_species is False:
        return "Closest known species (probably none of them)"
    return "Top suggestions"


def md_escape(text: str) -> str:
    out = html.escape(text, quote=False)
    for char in "\\*_`[]|":
        out = out.replace(char, "\\" + char)
    return out


def rank_heads_html(result: IdentifyResult) -> str:
    """Each rank's own head beside the species head rolled up to that rank, with disagreements flagged; '' for a
    model without rank heads. Out of scope, no clade is claimed (the heads, too, only know their own taxa)."""
    if not result.rank_answers:
        return ""
    esc = html.escape
    title = "<h4>Per-rank heads: each rank's own linear head on the model's features (image alone)</h4>"
    if result.scope is not None and not result.scope.in_scope:
        return (
            f"<div id='rank_heads'>{title}<p>Not shown: this photo is outside what the model knows, and the rank "
            "heads only know the clades of their training photos.</p></div>"
        )
    caveat = ""
    if result.scope is not None and result.scope.known_species is False:
        caveat = (
            "<p>This is probably a species the model does not know: each head can only name the clades of its "
            "training photos, so read these as the nearest of those.</p>"
        )
    rows = []
    for a in result.rank_answers:
        if a.top1_name is None:
            verdict = "—"
        elif a.consistent:
            verdict = "agrees"
        else:
            verdict = f"<b>⚠ inconsistent</b>: the top species is in {esc(a.top1_name)}"
        rolled = (
            "—" if a.rollup_name is None else f"<i>{esc(a.rollup_name)}</i> {format_probability(a.rollup_probability)}"
        )
        rows.append(
            f"<tr><td>{esc(a.rank)}</td><td><i>{esc(a.head_name)}</i> {format_probability(a.head_probability)}</td>"
            f"<td>{rolled}</td><td>{verdict}</td></tr>"
        )
    head = (
        "<tr><th>Rank</th><th>Its own head says</th><th>Species head, summed at this rank</th><th>Top species</th></tr>"
    )
    return f"<div id='rank_heads'>{title}{caveat}<table class='predictions'>{head}{''.join(rows)}</table></div>"
