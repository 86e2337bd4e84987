"""The Gradio app. The only module that imports gradio: handlers here are glue between components and
the core (images, identify, present), and turn core ValueErrors into gr.Error messages."""

from __future__ import annotations

import contextlib
import html
import logging
import os
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

import gradio as gr
from PIL import Image

from explorer.cam import FAST_METHOD, METHODS, contrastive_cams, overlay_cams
from explorer.dashboard import (
    GEO_KINDS,
    OUTCOMES,
    CalibrationData,
    Filters,
    accuracy_by_clade,
    compare_models,
    confused_pairs,
    error_rows,
    errors_by_rank,
    filter_table,
    fit_temperature,
    geo_effect,
    geo_effect_by_clade,
    geo_rows,
    has_geo,
    plot_clade_sunburst,
    plot_errors_by_rank,
    plot_model_comparison,
    plot_reliability,
    plot_rollup_tradeoff,
    reliability,
    rollup_tradeoff,
    summary,
)
from explorer.geo import make_place
from explorer.identify import DEFAULT_THRESHOLD, MAX_TOP_K, identify, result_to_json
from explorer.images import load_image, read_place_time
from explorer.maps import map_iframe
from explorer.present import (
    calibration_markdown,
    cam_captions,
    cam_overlays,
    comparison_html,
    display_copy,
    geo_markdown,
    prediction_title,
    predictions_html,
    rollup_markdown,
    summary_markdown,
    topk_label,
)
from explorer.resources import Resources
from explorer.taxonomy import RANKS

log = logging.getLogger(__name__)

EXAMPLES_CREDIT = (
    "Example photos: Google Coral test_data (Open Images, CC BY 2.0; US Navy, public domain). "
    "Found in the examples folder given at start-up."
)
# Every event that runs the classifier shares one queue slot: torch already uses every core for one photo, so
# two model calls at once would only slow each other down (and multiply the memory). Other events (the
# dashboard, range maps, EXIF) have their own slot each (Gradio's default_concurrency_limit, set to 1 below).
MODEL_QUEUE = {"concurrency_id": "model", "concurrency_limit": 1}
QUEUE_MAX_SIZE = 256  # waiting requests beyond this are refused at once ("queue is full"), not left to time out
CSS = "table.predictions td, table.predictions th {padding: 2px 8px; vertical-align: top} #lineages {overflow-x: auto}"


class PhotoInput(gr.Image):
    """gr.Image that hands the raw upload path to our own loader, so that a bad file gets our message
    (gr.Image would open it with PIL first and fail with a generic error)."""

    is_template = True  # use gr.Image's front end

    def preprocess(self, payload):
        if payload is None or payload.path is None:
            return super().preprocess(payload)
        return str(payload.path)


class UploadPath(gr.File):
    """gr.File that hands over the uploaded file's path. (gr.File(type="filepath") also creates an empty temporary
    file per call that it never uses or deletes: a leak in a long session.)"""

    is_template = True  # use gr.File's front end

    def preprocess(self, payload):
        if payload is None or getattr(payload, "path", None) is None:
            return super().preprocess(payload)
        return str(payload.path)


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
            with gr.Tab("Diagnose", id="diagnose"):
                initial = _build_diagnose_tab(resources)
            # The range-map (geo-prior) tab plugs in here.
            with gr.Tab("Models", id="models"):
                gr.Markdown(models_markdown(resources))
        _build_api(resources)
        if initial is not None:  # draw the dashboard for the first table when the page opens
            demo.load(*initial, api_visibility="private")
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
            with gr.Accordion("Where and when (optional; read from the photo's EXIF when it has them)", open=True):
                with gr.Row():
                    # Textboxes, not gr.Number: an empty Number shows (and sends) 0, i.e. a place off West Africa
                    lat = gr.Textbox("", label="Latitude (-90..90)", elem_id="lat", max_lines=1, placeholder="43.65")
                    lon = gr.Textbox(
                        "", label="Longitude (-180..180)", elem_id="lon", max_lines=1, placeholder="-79.38"
                    )
                    date = gr.Textbox("", label="Date (YYYY-MM-DD)", elem_id="date", max_lines=1)
                gr.Markdown(
                    "<small>The geo-prior was trained on eBird records from a handful of observers: it "
                    "knows where they went, not each species' whole range.</small>"
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
            with gr.Group():
                map_choice = gr.Radio(
                    [], label="Range map (from the geo-prior) for", elem_id="map_choice", interactive=True
                )
                range_html = gr.HTML(elem_id="range_map")
    last_photo = gr.State(None)  # the photo identified last: a new one gets its EXIF place and date first
    inputs = [photo, model, top_k, threshold, method, lat, lon, date, last_photo]
    outputs = [verdict, label, gallery, table, notes, map_choice, range_html, lat, lon, date, last_photo]
    map_choice.input(
        _make_map_handler(resources), [map_choice, model, lat, lon, date], range_html, api_visibility="private"
    )
    handler = _make_identify_handler(resources)
    photo.change(handler, inputs, outputs, api_visibility="private", **MODEL_QUEUE)
    button.click(handler, inputs, outputs, api_visibility="private", **MODEL_QUEUE)
    for box in (lat, lon, date):
        box.submit(handler, inputs, outputs, api_visibility="private", **MODEL_QUEUE)
    for control in (model, threshold, method):
        control.change(handler, inputs, outputs, api_visibility="private", **MODEL_QUEUE)
    top_k.release(handler, inputs, outputs, api_visibility="private", **MODEL_QUEUE)


def _make_identify_handler(resources: Resources):
    def on_identify(path, model_name, top_k, threshold, method, lat, lon, date, last_photo):
        """Identify; a photo not seen before first gets its EXIF place and date (in the same call, so the
        first ranking already uses them; the user can then edit or clear them)."""
        if not path:
            return "", None, None, "", "", _no_map(), "", lat, lon, date, None
        new_photo = path != last_photo
        if new_photo:
            lat, lon, date = _exif_place_time(path)
        # the form is only written for a new photo: never overwrite what the user typed with a stale copy
        where = (lat, lon, date, path) if new_photo else (gr.skip(), gr.skip(), gr.skip(), path)
        classifier = _get(resources, model_name)
        try:
            loaded, result = _run(resources, path, model_name, top_k, threshold, method, (lat, lon, date))
        except ValueError as err:  # the user's photo or settings: say what is wrong, keep the page usable
            gr.Warning(str(err), title="Cannot identify this photo")
            message = f"### Cannot identify this photo\n{html.escape(str(err))}"
            return message, None, None, "", "", _no_map(), "", *where
        for note in loaded.notes:
            gr.Warning(note)
        subject = classifier.card.subject
        gallery = list(zip(cam_overlays(loaded.image, result), cam_captions(result, subject)))
        notes = "\n".join(f"- {html.escape(n)}" for n in loaded.notes)
        species = [(prediction_title(p, subject), p.scientific_name) for p in result.predictions if not p.is_background]
        first = species[0][1] if species else None
        return (
            rollup_markdown(result, classifier.card.label),
            topk_label(result, subject),
            gallery,
            predictions_html(result, subject),
            notes,
            gr.Radio(choices=species, value=first),
            range_map_html(resources, model_name, first, lat, lon, date) if first else "",
            *where,
        )

    return on_identify


def _no_map():
    return gr.Radio(choices=[], value=None)  # an update (built inside an event, it is not a new component)


def _make_map_handler(resources: Resources):
    def on_map_choice(name, model_name, lat, lon, date):
        return range_map_html(resources, model_name, name, lat, lon, date) if name else ""

    return on_map_choice


def range_map_document(resources: Resources, model_name: str | None, name: str, lat=None, lon=None, date=None) -> str:
    """A standalone (offline) folium map of one species' predicted range, with the place pinned when given.
    Raises ValueError with a message for the user (no prior, unknown species, impossible place)."""
    model_name = model_name or resources.default_model
    classifier = resources.get(model_name)
    mapper = resources.mappers.get(model_name)
    if mapper is None:
        raise ValueError(f"{model_name} has no geo-prior, so there is no range map.")
    if name not in mapper.prior.taxa:
        raise ValueError(f"the geo-prior of {model_name} does not cover {name}: no range to show.")
    place = make_place(lat, lon, date)
    label = next((lab for lab in classifier.labels if lab.scientific_name == name), None)
    title = f"{label.common_name} ({name})" if label is not None and label.common_name else name
    if place is not None and place.date is not None:
        title += f"; the map is for any date (observation {place.date})"
    taxon = mapper.prior.taxa.index(name)
    return mapper.html(taxon, title, place.lat if place else None, place.lon if place else None)


def range_map_html(resources: Resources, model_name, name, lat=None, lon=None, date=None) -> str:
    """The range map embedded for the page, or a short message saying why there is none."""
    try:
        return map_iframe(range_map_document(resources, model_name, name, lat, lon, date))
    except ValueError as err:
        return f"<p class='range-map-note'>{html.escape(str(err))}</p>"


def _run(resources: Resources, path, model_name, top_k, threshold, method, where=(None, None, None)):
    """Load the photo and identify it (with the place, if any). Raises ValueError with a message for the user."""
    settings = resources.settings
    place = make_place(*where)
    loaded = load_image(path, settings.max_upload_bytes, settings.max_image_pixels, settings.min_image_side)
    name = model_name or resources.default_model
    prior = resources.priors.get(name)
    if place is not None and prior is None:
        loaded = replace(loaded, notes=(*loaded.notes, f"No geo-prior for {name}: the location was not used."))
    if place is None and where[2] not in (None, ""):
        loaded = replace(loaded, notes=(*loaded.notes, "A date without a location is not used by the geo-prior."))
    result = identify(resources.get(name), loaded.image, top_k, threshold, method, place, prior)
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
        file = UploadPath(type="filepath", label="image")
        top_k = gr.Number(5, precision=0, label="top_k")
        model = gr.Textbox(resources.default_model, label="model")
        threshold = gr.Number(DEFAULT_THRESHOLD, label="threshold")
        lat = gr.Number(None, label="lat")
        lon = gr.Number(None, label="lon")
        date = gr.Textbox("", label="date")
        output = gr.JSON(label="result")
        trigger = gr.Button("identify")

    def identify_api(image, top_k, model, threshold, lat=None, lon=None, date=None):
        if not image:
            raise gr.Error("No image given.")
        try:
            _loaded, result = _run(resources, image, model, top_k, threshold, None, (lat, lon, date))  # no CAMs
        except ValueError as err:
            raise gr.Error(str(err), title="Cannot identify this photo") from err
        return result_to_json(result)

    trigger.click(
        identify_api, [file, top_k, model, threshold, lat, lon, date], output, api_name="identify", **MODEL_QUEUE
    )

    with gr.Row(visible=False):
        species = gr.Textbox("", label="species")
        document = gr.Textbox(label="map_html")
        map_trigger = gr.Button("range_map")

    def range_map_api(model, species, lat=None, lon=None, date=None):
        """A standalone HTML document (folium, Leaflet inlined) of the species' predicted range."""
        try:
            return range_map_document(resources, model or None, species, lat, lon, date)
        except ValueError as err:
            raise gr.Error(str(err), title="No range map") from err

    map_trigger.click(range_map_api, [model, species, lat, lon, date], document, api_name="range_map")


def _exif_place_time(path) -> tuple[str, str, str]:
    """Location and date from the photo's EXIF, as the form's text ('' where absent)."""
    found = read_place_time(path)
    if found.lat is not None:
        gr.Info(f"Location read from the photo: {found.lat:.5f}, {found.lon:.5f}")
    return (
        "" if found.lat is None else f"{found.lat:.5f}",
        "" if found.lon is None else f"{found.lon:.5f}",
        found.date or "",
    )


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
    if resources.priors:
        lines += ["", "## Geo-priors", ""]
        for name, prior in resources.priors.items():
            metrics = prior.metrics
            classes = [lab for lab in resources.classifiers[name].labels if not lab.is_background]
            usable = prior.alignment >= 0
            usable[usable] = prior.known[prior.alignment[usable]]
            where = prior.path.name if prior.path else "?"
            lines.append(
                f"- `{esc(name)}`: `{esc(where)}`, {int(prior.known.sum())} of its {len(prior.taxa)} taxa with "
                f"records; {int(usable.sum())} of this model's {len(classes)} species matched by name (the rest "
                f"get a neutral factor); held-out site MAP {metrics.get('held_out_site_map', float('nan')):.3f} "
                f"(location-blind {metrics.get('location_blind_map', float('nan')):.3f}). Trained on eBird records "
                "from a few observers: it knows where they went, not each species' whole range."
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


def sweep_temp_files(demo: gr.Blocks, ttl_s: float) -> int:
    """Delete the uploads and rendered images this app put in Gradio's temporary folder once older than ttl_s
    (files Gradio keeps for examples are left alone); returns how many were deleted.

    Gradio's own delete_cache iterates its live file sets from a worker thread while uploads add to them; the
    first "set changed size during iteration" ends its task for good (seen in the soak test). Here every pass
    works on a copy and a failed pass is simply retried at the next one."""
    keep = set()
    for component in list(demo.blocks.values()):
        keep.update(getattr(component, "keep_in_cache", set()))
    now, deleted = time.time(), 0
    for files in list(demo.temp_file_sets):
        for file in _copy_of(files):
            if file in keep:
                continue
            try:
                if now - os.lstat(file).st_ctime > ttl_s:
                    os.remove(file)
                    deleted += 1
                    files.discard(file)
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.dirname(file))  # Gradio's per-file folder, when now empty
            except FileNotFoundError:
                files.discard(file)
            except OSError as err:
                log.warning("could not delete temporary file %s: %s", file, err)
    return deleted


def _copy_of(files: set) -> list:
    for _ in range(10):
        try:
            return list(files)
        except RuntimeError:  # changed size while being copied (another thread added a file): try again
            continue
    return []


def start_temp_sweeper(demo: gr.Blocks, ttl_s: float) -> threading.Thread:
    """Sweep every half TTL (at least every 5 s) in a daemon thread."""

    def loop():
        while True:
            time.sleep(max(5.0, ttl_s / 2))
            try:
                sweep_temp_files(demo, ttl_s)
            except Exception:  # noqa: BLE001 (keep sweeping; say what went wrong)
                log.exception("temporary-file sweep failed; trying again next time")

    thread = threading.Thread(target=loop, name="temp-sweeper", daemon=True)
    thread.start()
    return thread


def launch(demo: gr.Blocks, resources: Resources) -> None:
    """Start the server on the settings' host and port with the upload cap; only staged examples are served."""
    settings = resources.settings
    allowed = sorted({str(p.parent) for p in resources.examples})
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_MAX_SIZE)  # see MODEL_QUEUE
    start_temp_sweeper(demo, settings.temp_ttl_s)
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        max_file_size=settings.max_upload_bytes,
        allowed_paths=allowed,
        css=CSS,
    )


# ---- Diagnose: the error dashboard (built from the evaluation tables only) -------------------------------------

GALLERY_SIZE = 24
THUMB_SIDE = 160


def _build_diagnose_tab(resources: Resources) -> None:
    tables = resources.tables
    if not tables:
        gr.Markdown(
            "No evaluation tables found. Make one with `python -m explorer.evaluate --model NAME "
            "--images MANIFEST --out assets/eval/NAME.parquet` (see README)."
        )
        return
    first = next(iter(tables))
    with gr.Row():
        table = gr.Dropdown(list(tables), value=first, label="Evaluation table", elem_id="dash_table")
        clade_rank = gr.Dropdown(["(all)", *RANKS[:-1]], value="(all)", label="Clade rank", elem_id="dash_rank")
        clade_name = gr.Dropdown([], value=None, label="Clade", allow_custom_value=False, elem_id="dash_clade")
        outcome = gr.Radio(list(OUTCOMES), value="all", label="Photos", elem_id="dash_outcome")
    with gr.Row():
        min_conf = gr.Slider(0, 1, value=0, step=0.01, label="Min top-1 confidence", elem_id="dash_min_conf")
        max_conf = gr.Slider(0, 1, value=1, step=0.01, label="Max top-1 confidence", elem_id="dash_max_conf")
        exclude_noted = gr.Checkbox(True, label="Exclude photos with doubtful labels", elem_id="dash_noted")
        in_vocab = gr.Checkbox(False, label="Only species the model knows")
    summary = gr.Markdown(elem_id="dash_summary")
    with gr.Row():
        errors_plot = gr.Plot(label="Errors by taxonomic rank", elem_id="dash_errors")
        sunburst = gr.Plot(label="Accuracy per clade", elem_id="dash_sunburst")
    with gr.Row():
        list_rank = gr.Dropdown(list(RANKS[1:-1]), value="family", label="Clade table rank")
        min_photos = gr.Slider(1, 50, value=5, step=1, label="Min photos per clade")
    clades = gr.Dataframe(
        label="Clades, best first by the lower end of the 95 % interval (sortable)",
        elem_id="dash_clades",
        max_height=300,
    )
    pairs = gr.Dataframe(label="Most confused pairs", elem_id="dash_pairs", max_height=300)
    with gr.Row():
        reliability_plot = gr.Plot(label="Calibration", elem_id="dash_reliability")
        tradeoff_plot = gr.Plot(label="Roll-up trade-off", elem_id="dash_tradeoff")
    calibration = gr.Markdown(elem_id="dash_calibration")
    gr.Markdown("### Errors: click one to inspect it")
    errors_state = gr.State([])
    gallery = gr.Gallery(
        label="Errors (most confident first)", columns=8, height=260, elem_id="dash_gallery", allow_preview=False
    )
    error_table = gr.Dataframe(label="Errors (click a row to inspect)", elem_id="dash_error_table", max_height=260)
    with gr.Row():
        inspector_text = gr.HTML(elem_id="inspector_text")
        inspector = gr.Gallery(
            label="Inspector: photo, Grad-CAM of the prediction, of the truth, and of "
            "'why the prediction and not the truth'",
            columns=4,
            height=300,
            elem_id="inspector",
        )
    with gr.Accordion("What the place changed: the geo-prior's fixes and breaks", open=True):
        geo_summary = gr.Markdown(elem_id="dash_geo_summary")
        geo_kind = gr.Radio(list(GEO_KINDS), value="fixed", label="Photos the prior...", elem_id="dash_geo_kind")
        geo_clades = gr.Dataframe(
            label="Per clade (clade-table rank), most affected first: click a row for its photos",
            elem_id="dash_geo_clades",
            max_height=300,
        )
        geo_state = gr.State([])
        geo_gallery = gr.Gallery(
            label="Truth → image-only top-1 → top-1 with the place (click one to inspect it)",
            columns=8,
            height=260,
            elem_id="dash_geo_gallery",
            allow_preview=False,
        )
    with gr.Accordion("Compare with another model", open=False):
        other = gr.Dropdown(list(tables), value=None, label="Second table", elem_id="dash_other")
        compare_plot = gr.Plot()
        disagreements = gr.Dataframe(label="Photos where the two top-1 predictions differ", max_height=260)
    filters = [
        table,
        clade_rank,
        clade_name,
        min_conf,
        max_conf,
        outcome,
        exclude_noted,
        in_vocab,
        list_rank,
        min_photos,
        geo_kind,
    ]
    outputs = [
        summary,
        errors_plot,
        sunburst,
        clades,
        pairs,
        reliability_plot,
        tradeoff_plot,
        calibration,
        gallery,
        error_table,
        errors_state,
        geo_summary,
        geo_clades,
        geo_gallery,
        geo_state,
    ]
    refresh = _make_dashboard_handler(resources)
    for control in filters:
        event = control.release if isinstance(control, gr.Slider) else control.change
        event(refresh, filters, outputs, api_visibility="private")
    gr.on(
        [table.change, clade_rank.change],
        _clade_choices(resources),
        [table, clade_rank],
        clade_name,
        api_visibility="private",
    )
    inspect = _make_inspector(resources)
    gallery.select(inspect, [errors_state], [inspector_text, inspector], api_visibility="private", **MODEL_QUEUE)
    error_table.select(inspect, [errors_state], [inspector_text, inspector], api_visibility="private", **MODEL_QUEUE)
    geo_gallery.select(inspect, [geo_state], [inspector_text, inspector], api_visibility="private", **MODEL_QUEUE)
    geo_clades.select(_make_geo_drilldown(resources), [*filters], [geo_gallery, geo_state], api_visibility="private")
    other.change(
        _make_comparison(resources), [table, other, list_rank], [compare_plot, disagreements], api_visibility="private"
    )
    return refresh, filters, outputs


def _filters_from(rank, name, min_conf, max_conf, outcome, noted, in_vocab) -> Filters:
    chosen = rank if rank and rank != "(all)" and name else None
    return Filters(
        chosen, name if chosen else None, float(min_conf), float(max_conf), outcome, bool(noted), bool(in_vocab)
    )


def _make_dashboard_handler(resources: Resources):
    def on_filters(name, rank, clade, min_conf, max_conf, outcome, noted, in_vocab, list_rank, min_photos, kind):
        table = resources.tables[name]
        try:
            view = filter_table(table, _filters_from(rank, clade, min_conf, max_conf, outcome, noted, in_vocab))
        except ValueError as err:
            raise gr.Error(str(err)) from err
        model = str(table["model"].iloc[0]) if len(table) else name
        counts = errors_by_rank(view)
        calibration_data = CalibrationData.from_table(view)
        fit = fit_temperature(calibration_data)
        bins, ece = reliability(calibration_data)
        calibrated = reliability(calibration_data, fit["temperature"]) if fit["held_out_photos"] else None
        errors = error_rows(view)
        return (
            summary_markdown(summary(view), name, model),
            plot_errors_by_rank(counts),
            plot_clade_sunburst(view),
            accuracy_by_clade(view, list_rank, int(min_photos)).round(3),
            confused_pairs(view).round(3),
            plot_reliability(bins, ece, calibrated, fit["temperature"]),
            plot_rollup_tradeoff(rollup_tradeoff(view)),
            calibration_markdown(fit),
            _thumbnails(resources, errors),
            errors[["true_name", "pred_name", "confidence", "divergence_rank", "source", "path"]].round(3),
            errors.to_dict("records"),
            *_geo_outputs(resources, view, list_rank, int(min_photos), kind),
        )

    return on_filters


def _geo_caption(row) -> str:
    return f"{row.true_name} → {row.pred_name} → {row.geo_pred_name}"


def _geo_outputs(resources: Resources, view, rank: str, min_photos: int, kind: str):
    """Summary, per-clade table, gallery and rows of the geo-prior section for a filtered view."""
    if not has_geo(view):
        text = (
            "This table has no places (no `lat`/`lon` columns and geo-prior re-ranking), so there is nothing to "
            "show here. `python -m explorer.evaluate` adds them when the manifest has `lat`, `lon` (and `date`) "
            "and the model has a geo-prior."
        )
        return text, None, [], []
    rows = geo_rows(view, kind)
    return (
        geo_markdown(geo_effect(view)),
        geo_effect_by_clade(view, rank, min_photos).round(3),
        _thumbnails(resources, rows, _geo_caption),
        rows.to_dict("records"),
    )


def _make_geo_drilldown(resources: Resources):
    def on_clade(
        name, rank, clade, min_conf, max_conf, outcome, noted, in_vocab, list_rank, min_photos, kind, evt: gr.SelectData
    ):
        view = filter_table(
            resources.tables[name], _filters_from(rank, clade, min_conf, max_conf, outcome, noted, in_vocab)
        )
        if not has_geo(view) or not evt.row_value:
            return [], []
        rows = geo_rows(view, kind, list_rank, evt.row_value[0])
        return _thumbnails(resources, rows, _geo_caption), rows.to_dict("records")

    return on_clade


def _clade_choices(resources: Resources):
    def on_rank(name, rank):
        if not rank or rank == "(all)":
            return gr.Dropdown(choices=[], value=None)
        values = sorted(v for v in resources.tables[name][f"true_{rank}"].dropna().unique())
        return gr.Dropdown(choices=values, value=None)

    return on_rank


def _thumbnails(resources: Resources, errors, caption=None) -> list:
    """(thumbnail, caption) per row; an unreadable or missing photo gets a grey tile so that gallery positions
    stay the rows' positions (the inspector relies on them). No photo on this machine at all: no gallery."""
    root = resources.settings.data_root if resources.settings else None
    shown, found = [], False
    for row in errors.head(GALLERY_SIZE).itertuples():
        path = _photo_path(root, row.path)
        text = caption(row) if caption else f"{row.true_name} → {row.pred_name}"
        image = None
        if path is not None:
            try:
                image = load_image(path, resources.settings.max_upload_bytes * 4, resources.settings.max_image_pixels)
                image = image.image
                image.thumbnail((THUMB_SIDE, THUMB_SIDE))
                found = True
            except ValueError:
                image = None
        if image is None:
            image, text = Image.new("RGB", (THUMB_SIDE, THUMB_SIDE), (200, 200, 200)), f"(photo missing) {text}"
        shown.append((image, text))
    return shown if found else []


def _photo_path(root, path: str):
    candidate = Path(path) if Path(path).is_absolute() or root is None else Path(root) / path
    return candidate if candidate.is_file() else None


def _make_inspector(resources: Resources):
    def on_select(rows, evt: gr.SelectData):
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        if not rows or index is None or index >= len(rows):
            return "", []
        try:
            return inspect_error(resources, rows[index])
        except ValueError as err:
            raise gr.Error(str(err)) from err

    return on_select


def inspect_error(resources: Resources, row: dict) -> tuple[str, list]:
    """Truth vs prediction, and Grad-CAMs for the prediction, the truth and their contrast (computed now)."""
    text = comparison_html(row)
    path = _photo_path(resources.settings.data_root, row["path"])
    if path is None:
        return text + "<p>The photo is not on this machine (data root not found), so no Grad-CAM.</p>", []
    if row["model"] not in resources.classifiers:
        return text + f"<p>Model {html.escape(row['model'])} is not loaded, so no Grad-CAM.</p>", []
    classifier = resources.classifiers[row["model"]]
    image = load_image(path, resources.settings.max_upload_bytes * 4, resources.settings.max_image_pixels).image
    pred, true = int(row["pred_class_index"]), int(row["true_class_index"])
    base = display_copy(image)
    if true < 0:
        return text + "<p>The true species is not one of the model's classes.</p>", [(base, "photo")]
    maps = contrastive_cams(
        classifier.module,
        classifier.preprocess(image),
        classifier.cam_layer,
        pred,
        true,
        head=classifier.cam_head,
        autocast=classifier.autocast,
    )
    captions = [
        f"prediction: {row['pred_name']}",
        f"truth: {row['true_name']}",
        f"why {row['pred_name']} and not {row['true_name']}",
    ]
    return text, [(base, "photo"), *zip(overlay_cams(base, maps), captions)]


def _make_comparison(resources: Resources):
    def on_compare(name_a, name_b, rank):
        if not name_b:
            return None, None
        per_clade, disagree = compare_models(resources.tables[name_a], resources.tables[name_b], rank)
        if per_clade.empty:
            raise gr.Error(f"{name_a} and {name_b} share no photos.")
        columns = ["true_name", "pred_name_a", "correct_1_a", "pred_name_b", "correct_1_b", "path"]
        return plot_model_comparison(per_clade, name_a, name_b), disagree[columns]

    return on_compare
