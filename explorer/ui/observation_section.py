"""Several photos of one organism on the Identify tab: the fused answer in the tab's own outputs (headline,
suggestions, one map per suggestion and photo, the table of which photo carried each suggestion, each photo's own
answer), built from services.observation."""

from __future__ import annotations

import html
import json
from dataclasses import replace

import gradio as gr
import pandas as pd

from explorer.cam.gradcam import CLASS_AGNOSTIC
from explorer.identify.fusing import FUSION_RULES, MAX_PHOTOS
from explorer.identify.present import (
    cam_overlays,
    format_probability,
    prediction_title,
    predictions_frame,
    predictions_html,
    rollup_markdown,
    suggestions_heading,
    topk_label,
)
from explorer.services.observation import Observation, observation_to_json
from explorer.services.resources import Resources
from explorer.ui.temp_files import write_download

MORE_LABEL = f"More photos of this organism (optional; up to {MAX_PHOTOS} in all, fused into one answer)"


def more_photos_box() -> gr.File:
    """The box for more photos of the organism: several dropped at once, added to, removed one by one; HEIC and HEIF
    files taken by their names (a browser without a HEIF codec does not label them images)."""
    from explorer.ui.components import UploadPaths

    return UploadPaths(
        file_count="multiple",
        label=MORE_LABEL,
        file_types=["image", ".heic", ".heif"],
        elem_id="more_photos",
        height=120,
    )


def observation_verdict(found: Observation, model_label: str) -> str:
    """The fused headline, saying how many photos it fused."""
    fused = found.fused
    count = f"{len(fused.fused)} of {len(found.answers)} photos" if fused.fused else "no photo"
    text = rollup_markdown(fused.result, model_label, max(1, len(fused.fused)))
    text += f"\n\n<small>One organism, {count} fused.</small>"
    if fused.disagreeing:
        which = ", ".join(str(b + 1) for b in fused.disagreeing)
        text += f"\n\n**⚠ Photo {which} disagrees with this answer: the same organism? See the notes.**"
    return text


def observation_gallery(found: Observation, crop_pct: float, subject: str) -> list[tuple]:
    """One map per fused suggestion and photo, row by row (a row per suggestion, a column per photo):
    'photo 2 · 1. Poecile atricapillus (own 62.0%)'."""
    items = []
    result = found.fused.result
    for k, (prediction, suggestion) in enumerate(zip(result.predictions, found.fused.suggestions)):
        if k and result.cam_method in CLASS_AGNOSTIC:  # one map per photo, the same for every suggestion
            break
        own = {c.photo: c for c in suggestion.contributions}
        for b, (photo, maps) in enumerate(zip(found.photos, found.cams)):
            if maps.size == 0 or k >= len(maps):
                continue
            overlay = cam_overlays(photo.image, _with_maps(result, maps[k : k + 1]), crop_pct)[0]
            share = f"own {format_probability(own[b].probability)}" if b in own else "left out"
            name = prediction_title(prediction, subject) if prediction.is_background else prediction.scientific_name
            items.append((overlay, f"photo {b + 1} · {k + 1}. {name} ({share})"))
    return items


def _with_maps(result, maps):
    return replace(result, cams=maps)


def contributions_html(found: Observation, subject: str) -> str:
    """An escaped HTML table: each fused suggestion, its fused probability, each photo's own probability and rank
    of it, and the photo that carried it; then each photo's own top three and scope verdict."""
    esc = html.escape
    fused, n = found.fused, len(found.answers)
    head = "".join(f"<th>photo {b + 1}</th>" for b in range(n))
    rows = []
    for k, (p, s) in enumerate(zip(fused.result.predictions, fused.suggestions), 1):
        own = {c.photo: c for c in s.contributions}
        cells = "".join(
            f"<td>{format_probability(own[b].probability)} (#{own[b].rank})</td>" if b in own else "<td>left out</td>"
            for b in range(n)
        )
        rows.append(
            f"<tr><td>{k}</td><td>{esc(prediction_title(p, subject))}</td><td>{format_probability(p.probability)}"
            f"</td>{cells}<td>photo {s.carried_by + 1}</td></tr>"
        )
    rule = esc(FUSION_RULES[fused.rule])
    table = (
        f"<h4>Which photo carried each suggestion</h4><p><small>Fused by {rule}. Each photo's column: its own "
        "probability of the species from the image alone (and its rank in that photo's own answer); a place, when "
        "given, re-ranks the fused answer once.</small></p>"
        f"<table class='observation'><thead><tr><th>#</th><th>suggestion</th><th>fused</th>{head}"
        f"<th>carried by</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return table + _each_photo_html(found, subject)


def _each_photo_html(found: Observation, subject: str) -> str:
    esc = html.escape
    items = []
    for b, answer in enumerate(found.answers, 1):
        own = ", ".join(
            f"{esc(prediction_title(p, subject))} {format_probability(p.probability)}" for p in answer.predictions[:3]
        )
        scope = ""
        if answer.scope is not None and not answer.scope.in_scope:
            scope = f" <strong>Outside the model's scope</strong>: {esc(answer.scope.explanation)}"
        items.append(f"<li><strong>Photo {b}</strong> on its own: {own}.{scope}</li>")
    return f"<h4>Each photo on its own</h4><ul class='observation-photos'>{''.join(items)}</ul>"


def observation_downloads(resources: Resources, found: Observation) -> tuple[str, str]:
    """(JSON file, CSV file): the API's JSON, and the fused suggestions with each photo's own probability and rank."""
    stem = f"observation-{found.model}"
    answer = json.dumps(observation_to_json(resources, found), indent=2, ensure_ascii=False)
    frame = predictions_frame(found.fused.result)
    extra = []
    for s in found.fused.suggestions:
        row = {"carried_by_photo": s.carried_by + 1}
        for c in s.contributions:
            row[f"photo_{c.photo + 1}_probability"] = c.probability
            row[f"photo_{c.photo + 1}_rank"] = c.rank
        extra.append(row)
    frame = pd.concat([frame, pd.DataFrame(extra)], axis=1)
    return write_download(f"{stem}.json", answer), write_download(f"{stem}.csv", frame.to_csv(index=False))


def observation_views(resources: Resources, found: Observation) -> dict:
    """Everything the tab's outputs show for an observation, by role (the tab maps them to its components)."""
    card = resources.get(found.model).card
    result, subject = found.fused.result, card.subject
    gallery = observation_gallery(found, card.crop_pct, subject)
    columns = max(1, len(found.photos))
    json_file, csv_file = observation_downloads(resources, found)
    return {
        "verdict": observation_verdict(found, card.label),
        "label": gr.Label(topk_label(result, subject), label=suggestions_heading(result, subject) + " (fused)"),
        "gallery": gr.Gallery(
            gallery,
            columns=columns,
            label=f"What the model looked at in each photo ({result.cam_method}): a row per fused suggestion",
        ),
        "table": contributions_html(found, subject) + predictions_html(result, subject),
        "notes": "\n".join(f"- {html.escape(n)}" for n in (*found.notes, *result.notes)),
        "json_file": gr.DownloadButton(value=json_file, visible=True),
        "csv_file": gr.DownloadButton(value=csv_file, visible=True),
    }
