"""Identify's "similar labelled photos": the nearest photos of the model's evaluation set in its embedding space,
and real photos of each suggestion, from the identification's own forward pass; a click opens the inspector."""

from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr

from explorer.photos.thumbnails import thumbnails
from explorer.services.resources import Resources
from explorer.services.similar import SimilarPhotos, similar_photos
from explorer.ui.components import MODEL_QUEUE, make_inspector

NEIGHBOURS_LABEL = "Nearest labelled photos (cosine similarity; ✓: its species is among the suggestions)"
EXAMPLES_LABEL = "Real photos of each suggestion (#rank, the nearest of that species first)"


@dataclass
class SimilarView:
    note: gr.Markdown
    neighbours: gr.Gallery
    examples: gr.Gallery
    neighbour_rows: gr.State
    example_rows: gr.State
    inspector_text: gr.HTML
    inspector: gr.Gallery

    @property
    def outputs(self) -> list:
        return [self.note, self.neighbours, self.examples, self.neighbour_rows, self.example_rows]


def build_similar_section() -> SimilarView:
    with gr.Accordion("Similar labelled photos: what the model puts next to this one", open=True):
        note = gr.Markdown(elem_id="similar_note")
        gallery = dict(columns=4, height="auto", allow_preview=False, object_fit="contain")
        neighbours = gr.Gallery(label=NEIGHBOURS_LABEL, elem_id="similar", **gallery)
        examples = gr.Gallery(label=EXAMPLES_LABEL, elem_id="suggestion_examples", **gallery)
        inspector_text = gr.HTML(elem_id="similar_inspector_text")
        inspector = gr.Gallery(
            label="The photo you clicked: its truth, the model's answer and their Grad-CAMs",
            columns=4,
            height="auto",
            object_fit="contain",
            elem_id="similar_inspector",
        )
    return SimilarView(note, neighbours, examples, gr.State([]), gr.State([]), inspector_text, inspector)


def wire_similar(resources: Resources, view: SimilarView) -> None:
    for gallery, rows in ((view.neighbours, view.neighbour_rows), (view.examples, view.example_rows)):
        outputs = [view.inspector_text, view.inspector]
        gallery.select(make_inspector(resources), [rows], outputs, api_visibility="private", **MODEL_QUEUE)


def cleared(view: SimilarView) -> dict:
    return {view.note: "", view.neighbours: None, view.examples: None, view.neighbour_rows: [], view.example_rows: []}


def similar_outputs(resources: Resources, view: SimilarView, result) -> dict:
    """The section for an identification (no second forward pass: the stored embeddings are searched with the
    identification's own)."""
    found = similar_photos(resources, result)
    if found is None:
        note = (
            f"No stored embeddings of labelled photos for `{html.escape(result.model)}`, so no similar photos "
            "(`explorer-evaluate` writes them beside its table)."
        )
        return {**cleared(view), view.note: note}
    return {
        view.note: _note(found, result),
        view.neighbours: thumbnails(resources, found.neighbours, _neighbour_caption),
        view.examples: thumbnails(resources, found.examples, _example_caption),
        view.neighbour_rows: found.neighbours.to_dict("records"),
        view.example_rows: found.examples.to_dict("records"),
    }


def _note(found: SimilarPhotos, result) -> str:
    if result.scope is not None and not result.scope.in_scope:
        return (
            f"<small>This photo is outside what `{html.escape(found.model)}` knows, so the nearest of its "
            f"{found.photos} labelled photos are only the least unlike: they say little about this photo.</small>"
        )
    return (
        f"<small>Searched the {found.photos} labelled photos of the `{html.escape(found.table)}` evaluation table "
        f"in `{html.escape(found.model)}`'s embedding space (its pooled features before the last layer). A photo "
        "close to this one looks alike to the model: where a neighbour's species is not among the suggestions, "
        "the model may confuse the two. Click a photo to inspect it.</small>"
    )


def _neighbour_caption(row) -> str:
    return f"{row.similarity:.2f} {row.true_name}{' ✓' if row.in_suggestions else ''}"


def _example_caption(row) -> str:
    return f"#{row.suggestion} {row.true_name} ({row.similarity:.2f})"
