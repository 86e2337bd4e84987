"""The Gradio app. The only module that imports gradio: handlers here are glue between components and
the core (images, identify, present), and turn core ValueErrors into gr.Error messages."""

from __future__ import annotations

import html
import logging
import shutil
from pathlib import Path

import gradio as gr

from explorer.cam import FAST_METHOD, METHODS
from explorer.identify import DEFAULT_THRESHOLD, MAX_TOP_K, identify, result_to_json
from explorer.images import load_image
from explorer.present import cam_captions, cam_overlays, predictions_html, rollup_markdown, topk_label
from explorer.resources import Resources

log = logging.getLogger(__name__)

EXAMPLES_CREDIT = (
    "Example photos: Google Coral test_data (Open Images, CC BY 2.0; US Navy, public domain). "
    "Found in the examples folder given at start-up."
)
CSS = "table.predictions td, table.predictions th {padding: 2px 8px; vertical-align: top}"

class PhotoInput(gr.Image):
    """gr.Image that hands the raw upload path to our own loader, so that a bad file gets our message
    (gr.Image would open it with PIL first and fail with a generic error)."""

    is_template = True  # use gr.Image's front end

    def preprocess(self, payload):
        if payload is None or payload.path is None:
            return super().preprocess(payload)
        return str(payload.path)
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component

def build_demo(resources: Resources) -> gr.Blocks:
    """The whole app: an Identify & explain tab, the models tab, and the `identify` API endpoint."""
    with gr.Blocks(title="Species ID explorer") as demo:
        gr.Markdown(
            "# Species ID explorer\nWhat does a species-identification model see, and where does it go "
            "wrong? Drop, paste or pick a photo."
        )
        with gr.Tabs():
            with gr.Tab("Identify & explain", id="identify"):
                _build_identify_tab(resources)
            # Next tabs plug in here: range maps (geo-prior) and the error dashboard.
            with gr.Tab("Models", id="models"):
                gr.Markdown(models_markdown(resources))
        _build_api(resources)
    return demo

def _build_identify_tab(resources: Resources) -> None:
    with gr.Row():
        with gr.Column(scale=2):
            photo = PhotoInput(
                type="filepath",
                sources=["upload", "clipboard"],
                label="Photo: drop, paste or click",
                height=360,
                elem_id="photo",
            )
            model = gr.Dropdown(
                _model_choices(resources), value=resources.default_model, label="Model", elem_id="model"
            )
            with gr.Row():
                top_k = gr.Slider(1, MAX_TOP_K, value=5, step=1, label="Suggestions (top-k)", elem_id="top_k")
                threshold = gr.Slider(
                    0.5,
                    0.99,
                    value=DEFAULT_THRESHOLD,
                    step=0.01,
                    label="'Not sure' roll-up threshold",
                    elem_id="threshold",
                )
            method = gr.Dropdown(
                list(METHODS),
                value=FAST_METHOD,
                label="CAM method",
                elem_id="cam_method",
                info="gradcam: all top-k maps from one forward pass; others run pytorch-grad-cam "
                "once per suggestion (slower)",
            )
            button = gr.Button("Identify", variant="primary", elem_id="identify_button")
            if resources.examples:
                gr.Examples([[str(p)] for p in resources.examples], inputs=[photo], label="Examples")
                gr.Markdown(f"<small>{EXAMPLES_CREDIT}</small>")
        with gr.Column(scale=3):
            verdict = gr.Markdown(elem_id="verdict")
            label = gr.Label(label="Top suggestions", elem_id="topk")
            gallery = gr.Gallery(
                label="What the model looked at: one CAM per suggestion", columns=3, height="auto", elem_id="cams"
            )
            table = gr.HTML(elem_id="lineages")
            notes = gr.Markdown(elem_id="notes")
    inputs, outputs = [photo, model, top_k, threshold, method], [verdict, label, gallery, table, notes]
    handler = _make_identify_handler(resources)
    photo.change(handler, inputs, outputs, api_visibility="private")
    button.click(handler, inputs, outputs, api_visibility="private")
    for control in (model, threshold, method):
        control.change(handler, inputs, outputs, api_visibility="private")
    top_k.release(handler, inputs, outputs, api_visibility="private")

def _make_identify_handler(resources: Resources):
    def on_identify(path, model_name, top_k, threshold, method):
        if not path:
            return "", None, None, "", ""
        classifier = _get(resources, model_name)
        loaded, result = _run(resources, path, model_name, top_k, threshold, method)
        for note in loaded.notes:
            gr.Warning(note)
        subject = classifier.card.subject
        gallery = list(zip(cam_overlays(loaded.image, result), cam_captions(result, subject)))
        notes = "\n".join(f"- {html.escape(n)}" for n in loaded.notes)
        return (
            rollup_markdown(result, classifier.card.label),
            topk_label(result, subject),
            gallery,
            predictions_html(result, subject),
            notes,
        )

    return on_identify

def _run(resources: Resources, path, model_name, top_k, threshold, method):
    """Load the photo and identify it; user mistakes become gr.Error with the core's message."""
    settings = resources.settings
    try:
        loaded = load_image(path, settings.max_upload_bytes, settings.max_image_pixels, settings.min_image_side)
        result = identify(_get(resources, model_name), loaded.image, top_k, threshold, method)
    except ValueError as err:
        raise gr.Error(str(err), title="Cannot identify this photo") from err
    result.notes.extend(loaded.notes)
    return loaded, result

def _get(resources: Resources, model_name):
    try:
        return resources.get(model_name or resources.default_model)
    except ValueError as err:
        raise gr.Error(str(err)) from err

def _build_api(resources: Resources) -> None:
    """`identify` endpoint: (image file, top_k, model, threshold) -> JSON. Hidden from the page."""
    with gr.Row(visible=False):
        file = gr.File(type="filepath", label="image")
        top_k = gr.Number(5, precision=0, label="top_k")
        model = gr.Textbox(resources.default_model, label="model")
        threshold = gr.Number(DEFAULT_THRESHOLD, label="threshold")
        output = gr.JSON(label="result")
        trigger = gr.Button("identify")

    def identify_api(path, top_k, model_name, threshold):
        if not path:
            raise gr.Error("No image given.")
        _loaded, result = _run(resources, path, model_name, top_k, threshold, FAST_METHOD)
        return result_to_json(result)

    trigger.click(identify_api, [file, top_k, model, threshold], output, api_name="identify")

def _model_choices(resources: Resources) -> list[tuple[str, str]]:
    return [(c.card.label, name) for name, c in resources.classifiers.items()]

def models_markdown(resources: Resources) -> str:
    """The loaded models with their sources and licences, and the ones that could not load (and why)."""
    esc = html.escape
    lines = ["## Loaded models", ""]
    for name, c in resources.classifiers.items():
        card = c.card
        lines.append(
            f"- **{esc(card.label)}** (`{esc(name)}`): {len(c.labels)} classes, {esc(card.architecture)}, "
            f"CAM layer `{esc(card.cam_layer)}`, on {c.device}. Licence: {esc(card.license)}. "
            f"Source: {esc(card.source)}"
        )
    if resources.unavailable:
        lines += ["", "## Not available", ""]
        lines += [f"- `{esc(n)}`: {esc(why)}" for n, why in resources.unavailable.items()]
    return "\n".join(lines)

def stage_examples(resources: Resources, folder: Path) -> None:
    """Copy example photos into an app-owned folder, so only that folder (not the source) is served."""
    if not resources.examples:
        return
    folder.mkdir(parents=True, exist_ok=True)
    staged = []
    for path in resources.examples:
        target = folder / path.name
        if not target.exists() or target.stat().st_size != path.stat().st_size:
            shutil.copyfile(path, target)
        staged.append(target)
    resources.examples = staged

def launch(demo: gr.Blocks, resources: Resources) -> None:
    """Start the server on the settings' host and port with the upload cap; only staged examples are served."""
    settings = resources.settings
    allowed = sorted({str(p.parent) for p in resources.examples})
    demo.queue(default_concurrency_limit=1)  # one model call at a time: the model already uses every core
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        max_file_size=settings.max_upload_bytes,
        allowed_paths=allowed,
        css=CSS,
    )
