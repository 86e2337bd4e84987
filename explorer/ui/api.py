"""The named API endpoints (hidden from the page): ``identify`` (a photo -> JSON), ``observation`` (several photos
of one organism -> the fused answer and each photo's), ``explain`` (the same with the CAM
of every suggestion, as numbers), ``similar``, ``range_map`` (a species -> a standalone map document), ``tables``
(the evaluation tables, and whether each was made by the weights loaded now), ``errors`` (a table's errors with
their causes) and ``why`` (one photo's causes and the label check's evidence). Errors become gradio AppErrors with
the message the page shows."""

from __future__ import annotations

import gradio as gr

from explorer.cam.gradcam import FAST_METHOD
from explorer.diagnose.causes import ANY, ORDERS
from explorer.identify.answer import DEFAULT_THRESHOLD, result_to_json
from explorer.photos.images import read_place_time
from explorer.services.error_causes import errors_json, why_json
from explorer.services.identification import Identification, IdentifyRequest, cams_to_json, identify_photo
from explorer.services.observation import ObservationRequest, identify_observation, observation_to_json
from explorer.services.range_maps import range_map_document
from explorer.services.resources import Resources
from explorer.services.similar import DEFAULT_SIMILAR, similar_photos, similar_to_json
from explorer.ui.components import MODEL_QUEUE, UploadPath, UploadPaths, refused


def api_handlers(resources: Resources) -> dict:
    """The endpoints' functions, by API name (Gradio reads their docstrings into the API page)."""

    def identify_api(image, top_k, model, threshold, lat=None, lon=None, date=None, prior=None):
        """(image file, top_k, model, threshold, lat, lon, date, prior) -> the identification as JSON (no CAMs).
        No lat and lon given: the photo's EXIF GPS position and date, when it has them (a note says so).
        prior: the geo-prior's name ("" or None: the model's default; "none": the image alone); the JSON's "prior"
        says which one was offered and whether the place re-ranked with it."""
        lat, lon, date, from_exif = _place_or_exif(image, lat, lon, date)
        request = dict(model=model, top_k=top_k, threshold=threshold, lat=lat, lon=lon, date=date, prior=prior)
        result = _identified(resources, "Cannot identify this photo", photo=image, **request).result
        answer = result_to_json(result)
        return {**answer, "notes": [*from_exif, *answer["notes"]]}

    def explain_api(image, top_k, model, cam_method=FAST_METHOD):
        """(image file, top_k, model, CAM method) -> the identification as JSON plus, per suggestion, its CAM at the
        CAM layer's resolution (values in [0, 1], 3 decimals), and which layer and layout gave them."""
        request = dict(photo=image, model=model, top_k=top_k, cam_method=cam_method or FAST_METHOD)
        result = _identified(resources, "Cannot explain this photo", **request).result
        return {**result_to_json(result), "cams": cams_to_json(resources.get(result.model), result)}

    def range_map_api(model, species, lat=None, lon=None, date=None, prior=None, week=None):
        """A standalone HTML document (folium, Leaflet inlined) of the species' predicted range from the geo-prior
        ``prior`` (None: the model's default) at ``week`` (1..48, BirdNET's calendar; 0: the whole year; None: the
        date's week, else the whole year)."""
        try:
            return range_map_document(resources, model or None, species, lat, lon, date, prior or None, week)
        except ValueError as err:
            raise refused(str(err), title="No range map") from err

    def similar_api(image, k, model):
        """(image file, k, model) -> the k labelled photos nearest in the model's embedding space, and the nearest
        photos of each of its top-5 suggestions, as JSON. One forward pass and one matrix product."""
        title = "Cannot find similar photos"
        found = _identified(resources, title, photo=image, model=model or None, top_k=5)
        try:
            return similar_to_json(similar_photos(resources, found.result, k), found.result)
        except ValueError as err:
            raise refused(str(err), title=title) from err

    def tables_api():
        """() -> each evaluation table the dashboard shows: its model, photo count, the weights that made it, the
        weights loaded now, and whether they are the same (null when the model is not loaded)."""
        return resources.tables_overview()

    handlers = {"identify": identify_api, "explain": explain_api, "range_map": range_map_api, "similar": similar_api}
    return {**handlers, "tables": tables_api, **_observation_handlers(resources), **_diagnose_handlers(resources)}


def _observation_handlers(resources: Resources) -> dict:
    """The endpoint that takes several photos of one organism."""

    def observation_api(images, top_k, model, threshold, lat=None, lon=None, date=None, prior=None, cam_method=""):
        """(image files: 1 to 6 photos of one organism, top_k, model, threshold, lat, lon, date, prior, cam_method)
        -> the fused answer (each suggestion with the photo that carried it and every photo's own probability and
        rank of it), each photo's own answer with its scope verdict, and notes (where the place came from: the
        fields, else the first photo's EXIF). cam_method ("" for none): each photo's maps of the fused
        suggestions, as numbers."""
        fields = dict(model=model or None, top_k=top_k, threshold=threshold, lat=lat, lon=lon, date=date)
        try:
            request = ObservationRequest(
                photos=tuple(images or ()), prior=prior, cam_method=cam_method or None, **fields
            )
            found = identify_observation(resources, request)
        except ValueError as err:
            raise refused(str(err), title="Cannot identify this observation") from err
        return observation_to_json(resources, found, cams=bool(cam_method))

    return {"observation": observation_api}


def _diagnose_handlers(resources: Resources) -> dict:
    """The endpoints that read the evaluation tables: why errors happened."""

    def errors_api(table, cause=ANY, order=ORDERS[0], limit=50):
        """(table, cause, order, limit) -> the table's errors with that cause ("(every error)", a cause's name, or
        "no cause found"), most confident first or "label most doubtful first", each with its causes (and the test
        that gave each) and its label_issue_score; "tested" lists the causes this table can answer."""
        try:
            return errors_json(resources, str(table or ""), cause or ANY, order or ORDERS[0], int(limit or 50))
        except ValueError as err:
            raise refused(str(err), title="No errors listed") from err

    def why_api(table, photo_id):
        """(table, photo_id) -> why that photo's error most likely happened: its causes with their tests, the causes
        the table cannot test, and the label check's evidence (score, the label's probability against its usual
        level, confident learning, the nearest labelled photos, the same photo's score in the other tables)."""
        try:
            return why_json(resources, str(table or ""), str(photo_id or ""))
        except ValueError as err:
            raise refused(str(err), title="No such photo") from err

    return {"errors": errors_api, "why": why_api}


def _place_or_exif(image, lat, lon, date) -> tuple:
    """(lat, lon, date, notes): as given; or, when neither lat nor lon is given, the photo's EXIF place (and its
    date when none is given), with a note that says so."""
    if not image or any(str(v if v is not None else "").strip() for v in (lat, lon)):
        return lat, lon, date, []
    found = read_place_time(image)
    if not found.located:
        return lat, lon, date, []
    when = date if str(date or "").strip() else (found.date.isoformat() if found.date else date)
    note = f"Place from the photo's EXIF ({found.lat:.4f}, {found.lon:.4f})"
    note += f", date {when}." if when and not str(date or "").strip() else "."
    return found.lat, found.lon, when, [note]


def _identified(resources: Resources, title: str, **request) -> Identification:
    """The identification an endpoint asked for (``request``: IdentifyRequest's fields, by name); no image, or a
    ValueError, becomes the gr.Error with the message the page shows, under ``title``."""
    if not request["photo"]:
        raise refused("No image given.")
    try:
        return identify_photo(resources, IdentifyRequest(**request))
    except ValueError as err:
        raise refused(str(err), title=title) from err


def build_api(resources: Resources) -> None:
    with gr.Row(visible=False):
        file = UploadPath(type="filepath", label="image")
        top_k = gr.Number(5, precision=0, label="top_k")
        model = gr.Textbox(resources.default_model, label="model")
        threshold = gr.Number(DEFAULT_THRESHOLD, label="threshold")
        lat = gr.Number(None, label="lat")
        lon = gr.Number(None, label="lon")
        date = gr.Textbox("", label="date")
        prior = gr.Textbox("", label="prior")
        week = gr.Number(None, precision=0, label="week")
        output = gr.JSON(label="result")
        trigger = gr.Button("identify")
        species = gr.Textbox("", label="species")
        document = gr.Textbox(label="map_html")
        map_trigger = gr.Button("range_map")
        k = gr.Number(DEFAULT_SIMILAR, precision=0, label="k")
        similar_output = gr.JSON(label="similar")
        similar_trigger = gr.Button("similar")
        cam_method = gr.Textbox(FAST_METHOD, label="cam_method")
        explained = gr.JSON(label="explained")
        explain_trigger = gr.Button("explain")
        tables = gr.JSON(label="tables")
        tables_trigger = gr.Button("tables")
        table_name = gr.Textbox("", label="table")
        cause = gr.Textbox(ANY, label="cause")
        order = gr.Textbox(ORDERS[0], label="order")
        limit = gr.Number(50, precision=0, label="limit")
        photo_id = gr.Textbox("", label="photo_id")
        errors_output = gr.JSON(label="errors")
        errors_trigger = gr.Button("errors")
        why_output = gr.JSON(label="why")
        why_trigger = gr.Button("why")
        observation = _observation_components()

    handlers = api_handlers(resources)
    explain_inputs = [file, top_k, model, cam_method]
    explain_trigger.click(handlers["explain"], explain_inputs, explained, api_name="explain", **MODEL_QUEUE)
    similar_trigger.click(handlers["similar"], [file, k, model], similar_output, api_name="similar", **MODEL_QUEUE)
    inputs = [file, top_k, model, threshold, lat, lon, date, prior]
    trigger.click(handlers["identify"], inputs, output, api_name="identify", **MODEL_QUEUE)
    map_trigger.click(
        handlers["range_map"], [model, species, lat, lon, date, prior, week], document, api_name="range_map"
    )
    tables_trigger.click(handlers["tables"], None, tables, api_name="tables")
    files, cams, output, trigger = observation
    inputs = [files, top_k, model, threshold, lat, lon, date, prior, cams]
    trigger.click(handlers["observation"], inputs, output, api_name="observation", **MODEL_QUEUE)
    errors_trigger.click(handlers["errors"], [table_name, cause, order, limit], errors_output, api_name="errors")
    why_trigger.click(handlers["why"], [table_name, photo_id], why_output, api_name="why")


def _observation_components() -> tuple:
    """The observation endpoint's own components (in the API's hidden row): its photos, its CAM method (none unless
    asked), its output and trigger."""
    files = UploadPaths(file_count="multiple", label="images")
    cams = gr.Textbox("", label="cam_method")
    return files, cams, gr.JSON(label="observation"), gr.Button("observation")
