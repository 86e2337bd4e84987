"""The Identify & explain tab: a photo in; suggestions, roll-up, a CAM per suggestion, lineages and range maps out."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, replace

import gradio as gr

from explorer.cam.gradcam import FAST_METHOD, METHODS
from explorer.geo.birdnet import WEEKS
from explorer.identify.answer import DEFAULT_THRESHOLD, MAX_TOP_K, result_to_json
from explorer.identify.present import (
    cam_captions,
    cam_gallery_title,
    cam_overlays,
    prediction_title,
    predictions_frame,
    predictions_html,
    rank_heads_html,
    rollup_markdown,
    suggestions_heading,
    topk_label,
)
from explorer.photos.places import place_problems
from explorer.services.identification import DATE_ONLY_NOTE, Identification, IdentifyRequest, identify_photo
from explorer.services.observation import ObservationRequest, identify_observation
from explorer.services.resources import Resources
from explorer.ui.components import MODEL_QUEUE, LenientSlider, PhotoInput, clamp
from explorer.ui.identify_menus import (
    WHOLE_YEAR,
    model_choices,
    observation_week,
    prior_choices,
    range_map_html,
)
from explorer.ui.observation_section import more_photos_box, observation_views
from explorer.ui.photo_box import drawable_copy, exif_place_time
from explorer.ui.similar_section import SimilarView, build_similar_section, cleared, similar_outputs, wire_similar
from explorer.ui.temp_files import write_download

EXAMPLES_CREDIT = (
    "Example photos: Google Coral test_data (Open Images, CC BY 2.0; US Navy, public domain). "
    "Found in the examples folder given at start-up."
)
THRESHOLD_RANGE = (0.5, 0.99)
THRESHOLD_LABEL = "'Not sure' roll-up threshold"
PRIOR_CAVEAT = (
    "<small>Default: the prior, and how much it weighs, fitted on half of the model's placed photos and checked on "
    "the other half (docs/results/priors.md). "
    "BirdNET's range model (Kahl et al., Cornell Lab of Ornithology / Chemnitz University of Technology) is CC "
    "BY-NC-SA 4.0: non-commercial use only. Our own prior is open, but was trained on eBird records from a "
    "handful of observers: it knows where they went, not each species' whole range.</small>"
)
PLACE_NOT_USED = "The place was not used (see the fields above): this ranking is the image's alone."


@dataclass(frozen=True)
class IdentifySession:
    """What the tab keeps between a browser session's events (one gr.State)."""

    photo: str | None = None  # the photo last identified: a new one gets its EXIF place and date first
    model: str | None = None  # the model that answered (the one chosen when the menu says "auto")
    prior: str | None = None  # the geo-prior the answer offered (its range maps use the same)


@dataclass
class IdentifyView:
    """The tab's components: the form (inputs) and what it shows (outputs)."""

    photo: gr.Image
    more: gr.File  # more photos of the same organism: an observation, fused
    model: gr.Dropdown
    top_k: gr.Slider
    threshold: gr.Slider
    method: gr.Dropdown
    lat: gr.Textbox
    lon: gr.Textbox
    date: gr.Textbox
    prior: gr.Dropdown
    button: gr.Button
    verdict: gr.Markdown
    label: gr.Label
    gallery: gr.Gallery
    table: gr.HTML
    notes: gr.Markdown
    map_choice: gr.Radio
    map_week: gr.Slider
    range_html: gr.HTML
    json_file: gr.DownloadButton
    csv_file: gr.DownloadButton
    session: gr.State  # an IdentifySession
    similar: SimilarView
    examples: gr.Dataset | None = None  # the example photos; a click shows one and identifies it (one request)

    @property
    def inputs(self) -> list:
        form = [self.photo, self.model, self.top_k, self.threshold, self.method, self.lat, self.lon, self.date]
        return [*form, self.prior, self.more]

    @property
    def outputs(self) -> list:
        shown = [self.verdict, self.label, self.gallery, self.table, self.notes, self.map_choice, self.map_week]
        shown += [self.range_html, self.json_file, self.csv_file, *self.similar.outputs]
        # the photo box too: a HEIC photo is shown as a JPEG copy (browsers cannot draw HEIC)
        return [*shown, self.lat, self.lon, self.date, self.session, self.top_k, self.threshold, self.photo]


def build_identify_tab(resources: Resources) -> IdentifyView:
    with gr.Row(elem_id="identify_row"):  # on a narrow screen: photo, results, then the rest of the form (CSS)
        with gr.Column(scale=2, elem_id="form_col"):
            form = _build_form(resources)
        with gr.Column(scale=3, elem_id="results_col"):
            shown = _build_results()
    view = IdentifyView(**form, **shown, session=gr.State(IdentifySession()))
    _wire(resources, view)
    wire_similar(resources, view.similar)
    return view


def _build_form(resources: Resources) -> dict:
    limit = resources.settings.max_upload_bytes if resources.settings else None
    photo = PhotoInput(
        type="filepath",
        sources=["upload", "clipboard"],
        label="Photo: drop, paste or click" + (f" (up to {limit / 2**20:.0f} MB)" if limit else ""),
        height=360,
        elem_id="photo",
    )
    more = more_photos_box()
    choices, default = model_choices(resources)
    model = gr.Dropdown(choices, value=default, label="Model", elem_id="model")
    top_k, threshold = _build_sliders()
    method = gr.Dropdown(
        list(METHODS),
        value=FAST_METHOD,
        label="CAM method",
        elem_id="cam_method",
        info="every method: all top-k maps from one forward pass, with pytorch-grad-cam's formulas; eigencam "
        "ignores the class: one map for the photo",
    )
    lat, lon, date, prior = _build_place(resources)
    button = gr.Button("Identify", variant="primary", elem_id="identify_button")
    examples = None
    if resources.examples:
        # a Dataset, not gr.Examples: Examples loads the photo with a request of its own before the identify call
        examples = gr.Dataset(
            components=[photo],
            samples=[[str(p)] for p in resources.examples],
            type="index",
            label="Examples",
            elem_id="examples",
        )
        gr.Markdown(f"<small>{EXAMPLES_CREDIT}</small>")
    return dict(
        photo=photo,
        more=more,
        model=model,
        top_k=top_k,
        threshold=threshold,
        method=method,
        lat=lat,
        lon=lon,
        date=date,
        prior=prior,
        button=button,
        examples=examples,
    )


def _build_place(resources: Resources) -> tuple:
    with gr.Accordion("Where and when (optional; read from the photo's EXIF when it has them)", open=True):
        with gr.Row():
            # Textboxes, not gr.Number: an empty Number shows (and sends) 0, i.e. a place off West Africa
            lat = gr.Textbox("", label="Latitude (-90..90)", elem_id="lat", max_lines=1, placeholder="43.65")
            lon = gr.Textbox("", label="Longitude (-180..180)", elem_id="lon", max_lines=1, placeholder="-79.38")
            date = gr.Textbox("", label="Date (YYYY-MM-DD)", elem_id="date", max_lines=1)
        prior = gr.Dropdown(prior_choices(resources), value="", label="Geo-prior", elem_id="prior")
        gr.Markdown(PRIOR_CAVEAT)
    return lat, lon, date, prior


def _build_sliders() -> tuple[LenientSlider, LenientSlider]:
    with gr.Row():
        top_k = LenientSlider(1, MAX_TOP_K, value=5, step=1, label="Suggestions (top-k)", elem_id="top_k")
        threshold = LenientSlider(
            *THRESHOLD_RANGE,
            value=DEFAULT_THRESHOLD,
            step=0.01,
            label="'Not sure' roll-up threshold",
            elem_id="threshold",
        )
    return top_k, threshold


def _build_results() -> dict:
    verdict = gr.Markdown(elem_id="verdict")
    label = gr.Label(label="Top suggestions", elem_id="topk")
    gallery = gr.Gallery(
        label="What the model looked at: one CAM per suggestion",
        columns=3,
        height="auto",
        elem_id="cams",
        object_fit="contain",
    )
    table = gr.HTML(elem_id="lineages")
    with gr.Row():
        json_file = gr.DownloadButton("Download the answer (JSON)", visible=False, size="sm", elem_id="download_json")
        csv_file = gr.DownloadButton("Download the table (CSV)", visible=False, size="sm", elem_id="download_csv")
    notes = gr.Markdown(elem_id="notes")
    similar = build_similar_section()
    with gr.Group():
        map_choice = gr.Radio(
            [], label="Range map (from the geo-prior) for", elem_id="map_choice", interactive=True, visible=False
        )
        map_week = gr.Slider(
            WHOLE_YEAR,
            WEEKS,
            value=WHOLE_YEAR,
            step=1,
            label="Week of the year (BirdNET's 48-week calendar, 4 a month; 0 = the whole year)",
            elem_id="map_week",
            visible=False,
        )
        range_html = gr.HTML(elem_id="range_map", visible=False)
    return dict(
        verdict=verdict,
        label=label,
        gallery=gallery,
        table=table,
        notes=notes,
        map_choice=map_choice,
        map_week=map_week,
        range_html=range_html,
        json_file=json_file,
        csv_file=csv_file,
        similar=similar,
    )


def _wire(resources: Resources, view: IdentifyView) -> None:
    handler = _make_identify_handler(resources, view)
    inputs, outputs = [*view.inputs, view.session], view.outputs
    # photo.upload (a drop, a pick or a paste), not photo.change: change fires twice for one upload, which ran
    # every identification twice
    triggers = [view.photo.upload, view.button.click, view.model.change, view.threshold.release, view.method.change]
    triggers += [view.more.upload, view.more.delete, view.more.clear]
    triggers += [box.submit for box in (view.lat, view.lon, view.date)] + [view.top_k.release]
    for trigger in triggers:  # always_last: a photo dropped while another is being identified is not lost
        trigger(handler, inputs, outputs, api_visibility="private", trigger_mode="always_last", **MODEL_QUEUE)
    if view.examples is not None:  # an example click: the photo shown and identified in one request

        def on_example(index, *form):
            known = isinstance(index, int) and 0 <= index < len(resources.examples)
            # the copy in Gradio's cache (content-addressed): the path the page sends back with the next event, so
            # the handler knows it is the same photo and keeps the place the user types (no EXIF read over it)
            path = view.photo.move_resource_to_block_cache(str(resources.examples[index])) if known else None
            return {**handler(path, *form), view.photo: path}

        view.examples.click(
            on_example,
            [view.examples, *inputs[1:]],
            outputs,
            api_visibility="private",
            trigger_mode="always_last",
            **MODEL_QUEUE,
        )
    on_clear = lambda: {**_cleared(view), view.session: IdentifySession()}  # noqa: E731
    view.photo.clear(on_clear, None, outputs, api_visibility="private")

    def on_map(name, session: IdentifySession, lat, lon, date, week):
        return range_map_html(resources, session.model, name, lat, lon, date, session.prior, int(week or 0))

    map_inputs = [view.map_choice, view.session, view.lat, view.lon, view.date, view.map_week]
    for trigger in (view.map_choice.input, view.map_week.release):
        trigger(on_map, map_inputs, view.range_html, api_visibility="private", trigger_mode="always_last")


def _make_identify_handler(resources: Resources, view: IdentifyView):
    def on_identify(path, model_name, top_k, threshold, method, lat, lon, date, prior, more, session: IdentifySession):
        """Identify; a photo not seen before first gets its EXIF place and date (in the same call, so the first
        ranking already uses them; the user can then edit or clear them, and is never overwritten). With more
        photos of the organism: the observation's fused answer (observation_section)."""
        if more:
            options = dict(model=model_name, threshold=threshold, cam_method=method, prior=prior)
            return _observation(resources, view, [p for p in (path, *more) if p], options, (top_k, lat, lon, date))
        if not path:
            return {**_cleared(view), view.session: replace(session, photo=None, model=None)}
        form, top_k, threshold = _slider_fields(view, top_k, threshold)
        values = exif_place_time(path) if path != session.photo else None
        lat, lon, date = values or (lat, lon, date)
        place, problems = place_problems(lat, lon, date)
        form.update(_place_fields(view, values, problems, date_unused=place is None and not problems and bool(date)))
        where = dict(lat=lat, lon=lon, date=date) if place is not None else {}
        session = replace(session, photo=path)
        try:
            options = dict(top_k=top_k, threshold=threshold, cam_method=method, prior=prior, strict_prior=False)
            request = IdentifyRequest(photo=path, model=model_name, **options, **where)
            found = identify_photo(resources, request)
        except ValueError as err:  # the user's photo: say what is wrong, keep the page usable
            gr.Warning(str(err), title="Cannot identify this photo")
            message = f"### Cannot identify this photo\n{html.escape(str(err))}"
            return {**_cleared(view), view.verdict: message, view.session: session, **form}
        if problems:
            found = replace(found, result=replace(found.result, notes=(*found.result.notes, PLACE_NOT_USED)))
        shown = {**_shown(resources, view, found, request, session), **form}
        copy = drawable_copy(view.photo, found.photo)  # a HEIC: a JPEG copy in the photo box, taken as the same photo
        return (
            shown
            if copy is None
            else {**shown, view.photo: copy, view.session: replace(shown[view.session], photo=copy)}
        )

    return on_identify


def _observation(resources: Resources, view: IdentifyView, photos: list, options: dict, fields: tuple) -> dict:
    """The observation's outputs: the fused answer in the tab's own components (the place fields as typed: empty,
    the first photo's EXIF place is used and the notes say so)."""
    form, top_k, threshold = _slider_fields(view, fields[0], options["threshold"])
    lat, lon, date = fields[1:]
    place, problems = place_problems(lat, lon, date)
    form.update(_place_fields(view, None, problems, date_unused=place is None and not problems and bool(date)))
    where = dict(lat=lat, lon=lon, date=date) if place is not None else {}
    try:
        options = {**options, "top_k": top_k, "threshold": threshold, "strict_prior": False}
        found = identify_observation(resources, ObservationRequest(photos=tuple(photos), **options, **where))
    except ValueError as err:
        gr.Warning(str(err), title="Cannot identify this observation")
        message = f"### Cannot identify this observation\n{html.escape(str(err))}"
        return {**_cleared(view), view.verdict: message, **form}
    shown = {getattr(view, role): value for role, value in observation_views(resources, found).items()}
    result = found.fused.result
    if place is None and not problems and result.place is not None:  # read from a photo's EXIF: shown, editable
        at = result.place
        values = (f"{at.lat:.5f}", f"{at.lon:.5f}", at.date.isoformat() if at.date else "")
        form.update(_place_fields(view, values, {}, date_unused=False))
    subject = resources.get(result.model).card.subject
    species = [(prediction_title(p, subject), p.scientific_name) for p in result.predictions if not p.is_background]
    at = result.place
    where = (at.lat, at.lon, at.date.isoformat() if at.date else "") if at is not None else ("", "", "")
    session = IdentifySession(photo=None, model=result.model, prior=result.prior.name if result.prior else None)
    first = next((a for a in found.answers if a.scope is None or a.scope.in_scope), found.answers[0])
    similar = similar_outputs(resources, view.similar, first)
    return {**shown, **_range_map(resources, view, result, species, where), **similar, view.session: session, **form}


def _slider_fields(view: IdentifyView, top_k, threshold) -> tuple[dict, int, float]:
    """(the sliders, each with a message when its typed value had to be moved into range; top_k; threshold)."""
    top_k, k_message = clamp(top_k, 1, MAX_TOP_K, whole=True)
    threshold, t_message = clamp(threshold, *THRESHOLD_RANGE)
    fields = {
        view.top_k: gr.Slider(value=top_k, info=k_message) if k_message else gr.Slider(info=None),
        view.threshold: gr.Slider(value=threshold, info=t_message) if t_message else gr.Slider(info=None),
    }
    return fields, top_k, threshold


def _place_fields(view: IdentifyView, values, problems: dict, date_unused: bool) -> dict:
    """Each place field with its own message (and its new value for a new photo)."""
    out = {}
    for key, box in (("lat", view.lat), ("lon", view.lon), ("date", view.date)):
        info = problems.get(key)
        if key == "date" and date_unused:
            info = "Not used: a date helps only with a place."
        kwargs = {"info": info}
        if values is not None:
            kwargs["value"] = values[("lat", "lon", "date").index(key)]
        out[box] = gr.Textbox(**kwargs)
    return out


def _cleared(view: IdentifyView) -> dict:
    empty = {view.verdict: "", view.label: None, view.gallery: None, view.table: "", view.notes: ""}
    files = {view.json_file: gr.DownloadButton(value=None, visible=False)}
    files[view.csv_file] = gr.DownloadButton(value=None, visible=False)
    hidden = {view.map_choice: gr.Radio(choices=[], value=None, visible=False)}
    hidden[view.range_html] = gr.HTML("", visible=False)
    hidden[view.map_week] = gr.Slider(visible=False)
    return {**empty, **hidden, **files, **cleared(view.similar)}


def _shown(
    resources: Resources, view: IdentifyView, found: Identification, request: IdentifyRequest, session: IdentifySession
) -> dict:
    result, card = found.result, resources.get(found.result.model).card
    subject = card.subject
    species = [(prediction_title(p, subject), p.scientific_name) for p in result.predictions if not p.is_background]
    where = (request.lat, request.lon, request.date)
    return {
        view.session: replace(session, model=result.model, prior=result.prior.name if result.prior else None),
        view.verdict: rollup_markdown(result, card.label),
        view.label: gr.Label(topk_label(result, subject), label=suggestions_heading(result, subject)),
        view.gallery: gr.Gallery(
            list(zip(cam_overlays(found.photo.image, result, card.crop_pct), cam_captions(result, subject))),
            label=cam_gallery_title(result),
        ),
        view.table: predictions_html(result, subject) + rank_heads_html(result),
        view.notes: "\n".join(f"- {html.escape(n)}" for n in result.notes if not n.startswith(DATE_ONLY_NOTE)),
        **_range_map(resources, view, result, species, where),
        **_downloads(view, result),
        **similar_outputs(resources, view.similar, result),
    }


def _downloads(view: IdentifyView, result) -> dict:
    """The answer as the API's JSON and the suggestions table as CSV, written for this request only."""
    stem = f"identify-{result.model}"
    answer = json.dumps(result_to_json(result), indent=2, ensure_ascii=False)
    return {
        view.json_file: gr.DownloadButton(value=write_download(f"{stem}.json", answer), visible=True),
        view.csv_file: gr.DownloadButton(
            value=write_download(f"{stem}.csv", predictions_frame(result).to_csv(index=False)), visible=True
        ),
    }


def _range_map(resources: Resources, view: IdentifyView, result, species: list, where: tuple) -> dict:
    """The map section: shown only for a model with a geo-prior in use and a photo in its scope. The week slider
    starts at the observation's week when a date is given (else the whole year)."""
    in_scope = result.scope is None or result.scope.in_scope
    if result.prior is None or not in_scope or not species:
        return {
            view.map_choice: gr.Radio(choices=[], value=None, visible=False),
            view.map_week: gr.Slider(visible=False),
            view.range_html: gr.HTML("", visible=False),
        }
    first, prior = species[0][1], result.prior.name
    week = observation_week(where[2])
    label = f"Range map from the geo-prior {prior} for"
    return {
        view.map_choice: gr.Radio(choices=species, value=first, visible=True, label=label),
        view.map_week: gr.Slider(value=week, visible=True),
        view.range_html: gr.HTML(range_map_html(resources, result.model, first, *where, prior, week), visible=True),
    }
