"""Identify an observation: several photos of one organism, one answer. Each photo gets its own answer (and scope
verdict) from one batched pass; the photos inside the model's scope are fused (identify.fusing), re-ranked by
the place once; each photo's maps are made for the fused suggestions. Place and date: the request's, else the
first photo whose EXIF has them (photos taken far apart, or on other days, are flagged)."""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np

from explorer.cam.gradcam import BATCHED_METHODS, REFERENCE_METHODS, reference_cams
from explorer.identify.answer import IdentifyResult, check_options, identify_many, result_to_json, with_scope
from explorer.identify.fusing import FUSION_RULE, FUSION_RULES, MAX_PHOTOS, FusedAnswer, fused_answer
from explorer.identify.present import format_probability
from explorer.identify.provenance import headline_provenance
from explorer.photos.images import LoadedImage, load_image, read_place_time
from explorer.photos.places import Place, make_place
from explorer.services.identification import (
    IdentifyRequest,
    _chosen_prior,
    _job,
    _place_notes,
    cams_to_json,
    place_note,
)
from explorer.services.resources import Resources
from explorer.services.routing import AUTO, gate_logits, route_many, scope_check

_NO_IMAGE = LoadedImage(image=None)  # a job whose image is not read (the fused answer)
APART_KM = 10.0  # photos of one observation taken farther apart than this are flagged


@dataclass(frozen=True)
class ObservationRequest:
    """Several photos of one organism and how to identify them, by name; checked when built (ValueError with a
    message for the user)."""

    photos: tuple  # paths or bytes, 1..MAX_PHOTOS
    model: str | None = None  # a model's name; None: the default; AUTO: the model most photos are routed to
    top_k: int = 5
    threshold: float = 0.78
    cam_method: str | None = None
    lat: float | str | None = None  # the place; all empty: read from the photos' EXIF
    lon: float | str | None = None
    date: str | None = None
    prior: str | None = None
    strict_prior: bool = True
    place: Place | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        photos = tuple(p for p in (self.photos or ()) if p not in (None, "", b""))
        if not photos:
            raise ValueError("An observation needs at least one photo.")
        if len(photos) > MAX_PHOTOS:
            raise ValueError(f"An observation takes at most {MAX_PHOTOS} photos of one organism; got {len(photos)}.")
        object.__setattr__(self, "photos", photos)
        object.__setattr__(self, "top_k", check_options(self.top_k, self.threshold, self.cam_method))
        object.__setattr__(self, "prior", self.prior or None)
        object.__setattr__(self, "place", make_place(self.lat, self.lon, self.date))


@dataclass(frozen=True)
class Observation:
    """The photos as loaded, each one's own answer (with its scope verdict), the fused answer, each photo's maps
    of the fused suggestions ((k, h, w) per photo), and notes (the place's source, photos left out, ...)."""

    photos: tuple[LoadedImage, ...]
    answers: tuple[IdentifyResult, ...]
    fused: FusedAnswer
    cams: tuple[np.ndarray, ...]
    notes: tuple[str, ...] = ()

    @property
    def model(self) -> str:
        return self.fused.result.model


def identify_observation(resources: Resources, request: ObservationRequest) -> Observation:
    """Identify the photos of one organism together (see the module's words). Raises ValueError with a message for
    the user (which photo cannot be read, an unknown model or prior, ...). With --ray-serve, observations run in
    this process's own models."""
    settings = resources.settings
    loaded = []
    for n, photo in enumerate(request.photos, 1):
        try:
            loaded.append(
                load_image(photo, settings.max_upload_bytes, settings.max_image_pixels, settings.min_image_side)
            )
        except ValueError as err:
            raise ValueError(f"Photo {n} ({_name(photo)}): {err}") from None
    notes: list[str] = []
    place = request.place or _exif_place(request.photos, notes)
    if request.place is None:
        _flag_apart(request.photos, notes)
    if request.model != AUTO:
        resources.get(request.model)  # an unknown model: the user's message before any model runs

    def answer(_items):  # holds a worker: the model's pass over every photo
        model = resources.get(request.model).name if request.model != AUTO else _routed_model(resources, images, notes)
        job = _job(resources, model, loaded[0], _one_photo(request, place), [])
        jobs = [replace(job, image=image, cam_method=None) for image in images]
        return [(model, identify_many(resources.models()[model], jobs))]

    images = [photo.image for photo in loaded]
    model, answers = resources.batched(("observation",), None, answer, alone=True)
    answers = _with_scope(resources, model, loaded, answers)
    fused = _fused(resources, model, answers, request, place, notes)
    targets = [p.class_index for p in fused.result.predictions]
    maps = lambda _items: [_maps(resources.models()[model], images, targets, request.cam_method)]  # noqa: E731
    cams = resources.batched(("observation",), None, maps, alone=True)
    return Observation(tuple(loaded), tuple(answers), fused, tuple(cams), tuple(notes))


def _maps(classifier, images: list, targets: list[int], method: str | None) -> list[np.ndarray]:
    """Each photo's maps of the ``targets`` classes (the fused suggestions) by CAM ``method`` (one batched pass)."""
    if method is None or not targets:
        return [np.zeros((len(targets), 0, 0), np.float32) for _ in images]
    import torch

    x = torch.cat([classifier.preprocess(image) for image in images])
    if method in BATCHED_METHODS:
        return classifier.forward_with_cams_batch(x, [lambda _logits: targets] * len(images), method)[2]
    assert method in REFERENCE_METHODS
    layer, layout = classifier.cam_layer, classifier.cam_layout
    return [reference_cams(classifier.module, x[b : b + 1], targets, layer, method, layout) for b in range(len(x))]


def _routed_model(resources: Resources, images: list, notes: list) -> str:
    """ "auto": the model most photos are routed to (ties: the earliest photo's), with a note when they differ."""
    routes = route_many(resources, images, None).routes
    counts = Counter(route.model for route in routes)
    model = max(counts, key=lambda name: (counts[name], -[r.model for r in routes].index(name)))
    others = [f"photo {b + 1} → {route.model}" for b, route in enumerate(routes) if route.model != model]
    label = resources.classifiers[model].card.label
    why = routes[[r.model for r in routes].index(model)].why
    notes.append(f"Model chosen for the observation: {label} ({counts[model]} of {len(routes)} photos). {why}")
    if others:
        notes.append(f"Some photos were routed elsewhere on their own ({', '.join(others)}); all were read by {model}.")
    return model


def _with_scope(resources: Resources, model: str, loaded: list, answers: list) -> list:
    """Each photo's answer with its scope verdict (the gate's pass batched with concurrent calls)."""
    classifier = resources.classifiers[model]
    checked = []
    for photo, answer in zip(loaded, answers):
        cache: dict = {}
        gate_logits(resources, classifier, photo.image, cache)
        check = scope_check(resources, classifier, answer.logits, photo.image, cache)
        checked.append(answer if check is None else with_scope(classifier, answer, check))
    return checked


def _fused(resources, model: str, answers: list, request, place, notes: list) -> FusedAnswer:
    """The fused answer of the photos inside the model's scope, with the notes on the place and the prior."""
    classifier = resources.models()[model]
    inside = [b for b, a in enumerate(answers) if a.scope is None or a.scope.in_scope]
    left_out = [b + 1 for b in range(len(answers)) if b not in inside]
    if left_out and inside:
        which = ", ".join(map(str, left_out))
        notes.append(f"Left out of the fused answer, outside what {model} knows: photo {which} (see each photo).")
    prior_notes: list[str] = []  # the fused answer's own notes (the observation's stay in ``notes``)
    one = _one_photo(request, place)
    bound = _chosen_prior(resources, model, one, prior_notes)
    prior_notes += _place_notes(one, model, bound, bool(resources.priors.get(model)))
    job = _job(resources, model, _NO_IMAGE, one, [])  # the fused answer reads no image
    fused = fused_answer(classifier, answers, job, inside, FUSION_RULE)
    result = fused.result
    if result.prior is not None and result.prior.used:
        prior_notes.append(place_note(result.prior))
    notes += [_disagreement(classifier, answers, fused, b) for b in fused.disagreeing]
    routed = {"routed_from": AUTO, "routing": notes[0]} if request.model == AUTO and notes else {}
    return replace(fused, result=replace(result, notes=(*result.notes, *prior_notes), **routed))


def _disagreement(classifier, answers: list, fused: FusedAnswer, b: int) -> str:
    """The note on a fused photo whose own answer ranks the fused top-1 far down: another organism?"""
    top = fused.result.predictions[0]
    own = next(c for c in fused.suggestions[0].contributions if c.photo == b)
    mine = answers[b].predictions[0]
    mine_text = f"{mine.scientific_name} ({mine.common_name})" if mine.common_name else mine.scientific_name
    says = format_probability(mine.vision_probability if mine.vision_probability is not None else mine.probability)
    return (
        f"Photo {b + 1} disagrees: on its own it says {mine_text}, {says} (image alone), "
        f"and ranks the fused answer {top.scientific_name} #{own.rank} ({format_probability(own.probability)}). "
        "Is it the same organism? If not, remove it: the fused answer still counts it."
    )


def _one_photo(request: ObservationRequest, place: Place | None):
    """The request's options as one photo's (the place checked already), for the prior's choice and its job."""
    where = {}
    if place is not None:
        where = dict(lat=place.lat, lon=place.lon, date=place.date.isoformat() if place.date else None)
    return IdentifyRequest(
        photo=b"",
        model=request.model,
        top_k=request.top_k,
        threshold=request.threshold,
        cam_method=request.cam_method,
        prior=request.prior,
        strict_prior=request.strict_prior,
        **where,
    )


def _exif_place(photos: tuple, notes: list) -> Place | None:
    """The first photo's EXIF place (and its date, else the first date any photo has), saying which photo."""
    read = [read_place_time(p) for p in photos]
    located = [b for b, place in enumerate(read) if place.located]
    if not located:
        return None
    b = located[0]
    dated = [d for d, place in enumerate(read) if place.date]
    when = b if read[b].date else (dated[0] if dated else None)
    date = read[when].date if when is not None else None
    where = f"Place from photo {b + 1}'s EXIF ({read[b].lat:.4f}, {read[b].lon:.4f})"
    if date is not None:
        where += f", date {date.isoformat()} from photo {when + 1}'s"
    notes.append(where + ".")
    return make_place(read[b].lat, read[b].lon, date.isoformat() if date else None)


def _flag_apart(photos: tuple, notes: list) -> None:
    """A note when the photos' EXIF places lie farther apart than APART_KM, or their dates differ."""
    read = [read_place_time(p) for p in photos]
    located = [(b, place) for b, place in enumerate(read) if place.located]
    far = [
        (a + 1, b + 1, km)
        for i, (a, pa) in enumerate(located)
        for b, pb in located[i + 1 :]
        if (km := _km(pa, pb)) > APART_KM
    ]
    if far:
        a, b, km = max(far, key=lambda f: f[2])
        notes.append(f"Photos {a} and {b} were taken {km:,.0f} km apart (EXIF): are they one observation?")
    dates = sorted({place.date for place in read if place.date})
    if len(dates) > 1:
        notes.append(f"The photos' EXIF dates differ ({', '.join(d.isoformat() for d in dates)}).")


def _km(a: Place, b: Place) -> float:
    """Great-circle distance in km."""
    la, lb = math.radians(a.lat), math.radians(b.lat)
    dlat, dlon = lb - la, math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(la) * math.cos(lb) * math.sin(dlon / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, h)))


def _name(photo) -> str:
    return "uploaded bytes" if isinstance(photo, (bytes, bytearray)) else os.path.basename(str(photo))


def observation_to_json(resources: Resources, observation: Observation, cams: bool = False) -> dict:
    """The observation API's JSON: the fused answer (as identify's, each suggestion with the photo that carried it
    and every fused photo's own probability and rank of it), each photo's own answer (with its scope verdict), the
    fusion rule and the notes; ``cams``: each photo's maps of the fused suggestions, as numbers."""
    fused = observation.fused
    suggestions = []
    for prediction, suggestion in zip(result_to_json(fused.result)["predictions"], fused.suggestions):
        parts = [{"photo": c.photo + 1, "probability": c.probability, "rank": c.rank} for c in suggestion.contributions]
        suggestions.append({**prediction, "carried_by": suggestion.carried_by + 1, "photos": parts})
    answer = {
        **result_to_json(fused.result),
        "predictions": suggestions,
        "fused_photos": [b + 1 for b in fused.fused],
        "disagreeing_photos": [b + 1 for b in fused.disagreeing],
        "provenance": headline_provenance(fused.result, max(1, len(fused.fused))),
        "fusion_rule": fused.rule,
        "fusion_rule_text": FUSION_RULES[fused.rule],
    }
    photos = [{"photo": n, **result_to_json(a)} for n, a in enumerate(observation.answers, 1)]
    if cams:
        classifier = resources.get(observation.model)
        for entry, maps in zip(photos, observation.cams):
            if maps.size:
                names = [p.scientific_name for p in fused.result.predictions]
                entry["cams_of_fused"] = {
                    **cams_to_json(classifier, replace(fused.result, cams=maps)),
                    "species": names,
                }
            else:
                entry["cams_of_fused"] = None
    return {"model": observation.model, "fused": answer, "photos": photos, "notes": list(observation.notes)}
