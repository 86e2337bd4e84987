"""Identify a photo, the use case the page and the API share: a request built by name and checked when built,
the photo loaded safely, the model (or "auto") and its geo-prior chosen, one forward pass, the scope verdict,
and the notes that say what was used."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import numpy as np

from explorer.cam.gradcam import BATCHED_METHODS
from explorer.geo.combine import NO_PRIOR, BoundPrior
from explorer.identify.answer import (
    DEFAULT_THRESHOLD,
    IdentifyJob,
    IdentifyResult,
    check_options,
    identify_captured,
    identify_many,
    no_claim,
    with_scope,
)
from explorer.models.classifier import Classifier
from explorer.photos.images import LoadedImage, load_image
from explorer.photos.places import Place, make_place
from explorer.services.resources import Resources
from explorer.services.routing import AUTO, gate_logits, route_many, scope_check

# EigenCAM's map is the activations' first principal component, whose sign LAPACK picks (as in pytorch-grad-cam):
# the float rounding of a batched convolution (1e-7) can flip it, so its calls are not batched.
UNBATCHED = frozenset({"eigencam"})
DATE_ONLY_NOTE = "A date without a location is not used by the geo-prior."
OFF_BY_DEFAULT = (
    "on held-out photos no geo-prior of {model} fixed more answers than it broke (docs/results/priors.md), so its "
    "default is the image alone; choose a prior in the menu to use the place anyway"
)


@dataclass(frozen=True)
class IdentifyRequest:
    """What to identify and how, by name. Checked when built: an impossible top-k, threshold, CAM method or place
    raises ValueError with a message for the user (what the model and the photo allow is checked by
    ``identify_photo``)."""

    photo: str | os.PathLike | bytes  # the photo file's path, or its bytes
    model: str | None = None  # a model's name; None: the default model; AUTO: the one whose scope fits the photo
    top_k: int = 5  # 1..MAX_TOP_K (capped, with a note, at the model's number of classes)
    threshold: float = DEFAULT_THRESHOLD  # the "not sure" roll-up threshold, in (0, 1]
    cam_method: str | None = None  # a CAM method of cam.gradcam; None: no CAMs
    lat: float | str | None = None  # the place (all three optional, as a form sends them: '' is none)
    lon: float | str | None = None
    date: str | None = None  # YYYY-MM-DD; without a location it is checked, then not used
    prior: str | None = None  # the geo-prior's name; None or '': the model's default; NO_PRIOR: none
    strict_prior: bool = True  # a model without that prior: an error (True), or its default with a note (the page)
    place: Place | None = field(init=False, default=None)  # lat, lon and date checked

    def __post_init__(self) -> None:
        # frozen: the checked values are set once, here
        object.__setattr__(self, "top_k", check_options(self.top_k, self.threshold, self.cam_method))
        object.__setattr__(self, "prior", self.prior or None)
        object.__setattr__(self, "place", make_place(self.lat, self.lon, self.date))


@dataclass(frozen=True)
class Identification:
    """A photo as loaded (upright RGB, conversion notes) and what the model said about it."""

    photo: LoadedImage
    result: IdentifyResult


def identify_photo(resources: Resources, request: IdentifyRequest) -> Identification:
    """Load the photo and identify it (re-ranked by the model's geo-prior when a place is given), with the
    model's scope verdict; ``request.model == AUTO`` picks the model whose scope fits the photo
    (``identify_auto``). The model's pass is batched with concurrent calls of the same model (or of "auto") and
    CAM method (``Resources.batched``); with a model tier (``--ray-serve``), the whole call runs on a replica.

    Raises:
        ValueError: with a message for the user (the photo, the model, its geo-prior).
    """
    if resources.tier is not None:  # the models run on Ray Serve replicas (services.model_tier)
        return resources.tier.identify(request)
    settings = resources.settings
    loaded = load_image(request.photo, settings.max_upload_bytes, settings.max_image_pixels, settings.min_image_side)
    if request.model == AUTO:
        run = lambda items: identify_auto(resources, items)  # noqa: E731
        alone = request.cam_method not in (None, *BATCHED_METHODS) or request.cam_method in UNBATCHED
        result, notes = resources.batched((AUTO, request.cam_method), (loaded, request), run, alone=alone)
    else:
        result, notes = _identify_named(resources, loaded, request)
    if result.prior is not None and result.prior.used:
        notes.append(place_note(result.prior))
    result = replace(result, notes=(*result.notes, *notes))
    return Identification(replace(loaded, notes=tuple(notes)), result)


def _identify_named(resources: Resources, loaded: LoadedImage, request: IdentifyRequest) -> tuple:
    """(result with its scope verdict, notes) of the model the request names: its pass batched with concurrent
    calls of the same model and CAM method, then the gate's, when its scope rule needs it."""
    classifier = resources.get(request.model)
    notes = list(loaded.notes)
    job = _job(resources, classifier.name, loaded, request, notes)
    name = classifier.name
    run = lambda jobs: identify_many(resources.get(name), jobs)  # noqa: E731
    result = resources.batched((name, request.cam_method), job, run, alone=request.cam_method in UNBATCHED)
    gate_cache: dict = {}
    gate_logits(resources, classifier, loaded.image, gate_cache)  # batched too; the check below runs no model
    check = scope_check(resources, classifier, result.logits, loaded.image, gate_cache)
    return (result if check is None else with_scope(classifier, result, check)), notes


def identify_auto(resources: Resources, items: list[tuple[LoadedImage, IdentifyRequest]]) -> list[tuple]:
    """(result, notes) of each ``model="auto"`` request (one CAM method for all): the photos routed together
    (``routing.route_many``: one pass per distinct trunk), each chosen model's answer and maps read from that
    pass; a model outside it (the gate's fallback without a rule that needs it, pytorch-grad-cam's reference
    methods) runs its own. Runs models: call it holding a worker."""
    routing = route_many(resources, [loaded.image for loaded, _request in items], items[0][1].cam_method)
    answers: list = [None] * len(items)
    chosen: dict[str, list[int]] = {}
    for b, found in enumerate(routing.routes):
        chosen.setdefault(found.model, []).append(b)
    for model, photos in chosen.items():
        classifier = resources.models()[model]
        notes = {b: list(items[b][0].notes) for b in photos}
        jobs = [_job(resources, model, items[b][0], items[b][1], notes[b]) for b in photos]
        captured = routing.captured(model, photos) if jobs[0].cam_method in (None, *BATCHED_METHODS) else None
        results = identify_captured(classifier, jobs, captured) if captured else identify_many(classifier, jobs)
        for b, result in zip(photos, results):
            found = routing.routes[b]
            result = result if found.check is None else with_scope(classifier, result, found.check)
            answers[b] = (_routed(result, found.why, claims=model in resources.scope_rules), notes[b])
    return answers


def _job(resources: Resources, model: str, loaded: LoadedImage, request: IdentifyRequest, notes: list) -> IdentifyJob:
    """The request as a job for ``model``, its geo-prior chosen (notes on the place added to ``notes``)."""
    bound = _chosen_prior(resources, model, request, notes)
    notes += _place_notes(request, model, bound, bool(resources.priors.get(model)))
    return IdentifyJob(loaded.image, request.top_k, request.threshold, request.cam_method, request.place, bound)


def _chosen_prior(resources: Resources, model: str, request: IdentifyRequest, notes: list[str]) -> BoundPrior | None:
    """The geo-prior the request names (or the model's default); a model without it: an error, or (not strict)
    its default with a note added to ``notes``."""
    try:
        return resources.prior(model, request.prior)
    except ValueError:
        if request.strict_prior:
            raise
    fallback = resources.prior(model)
    instead = f"its default, {fallback.name}, was used" if fallback else "it has none, so the place was not used"
    notes.append(f"{model} has no geo-prior {request.prior!r}: {instead}.")
    return fallback


def _place_notes(request: IdentifyRequest, model: str, bound: BoundPrior | None, offered: bool = False) -> list[str]:
    """Why a place or a date given was not used (``offered``: the model has geo-priors)."""
    if request.place is not None and bound is None:
        why = "the geo-prior was switched off" if request.prior == NO_PRIOR else f"{model} has no geo-prior"
        if offered and request.prior != NO_PRIOR:
            why = OFF_BY_DEFAULT.format(model=model)
        return [f"The location was not used: {why}."]
    if request.place is None and request.date not in (None, ""):
        return [DATE_ONLY_NOTE]
    return []


def place_note(prior) -> str:
    """The note on a place used: which prior, its rule in words, its credit."""
    return f"Re-ranked with the place by the geo-prior {prior.label}, combined as {prior.rule}. {prior.credit}."


def _routed(result: IdentifyResult, routing: str, claims: bool) -> IdentifyResult:
    """The result of a model chosen by ``model="auto"``, saying why; where no model's scope fits (``claims``
    False: the chosen model has no scope rule), the headline is the routing's words and no clade is claimed."""
    result = replace(result, routed_from=AUTO, routing=routing)
    if claims:
        return result
    return replace(result, rollup=no_claim(result.rollup.probability, result.rollup.threshold, routing))


def cams_to_json(classifier: Classifier, result: IdentifyResult) -> dict:
    """The CAMs of an identification as numbers: method, layer (and why), layout, and one (h, w) map per suggestion at
    the CAM layer's resolution (pytorch-grad-cam's maps, made at the input size, are area-averaged down to it)."""
    import cv2

    layout = classifier.cam_layout
    h, w = layout.grid
    maps = [m if m.shape == (h, w) else cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA) for m in result.cams]
    return {
        "method": result.cam_method,
        "layer": classifier.cam_layer_name,
        "layer_why": classifier.cam_layer_why,
        "layout": {"kind": layout.kind, "prefix_tokens": layout.prefix, "grid": list(layout.grid)},
        "maps": [np.round(np.asarray(m, np.float64), 3).tolist() for m in maps],
    }
