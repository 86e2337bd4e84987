"""Use cases shared by the page and the API: identify a photo (with its place), build a range-map document,
inspect an evaluation error, describe the loaded models, show labelled photos. Plain functions over Resources that
return dataclasses or text and raise ValueError with a message for the user; no gradio here."""

from __future__ import annotations

import functools
import html
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np
import pandas as pd
import torch
from PIL import Image

from explorer.cam.gradcam import contrastive_cams, overlay_cams
from explorer.diagnose.texts import comparison_html
from explorer.geo.birdnet import week_of_year
from explorer.geo.combine import NO_PRIOR
from explorer.identify.answer import IdentifyResult, identify, with_scope
from explorer.identify.present import display_copy, format_probability, framed
from explorer.identify.scope_check import GATE_MODEL, ScopeCheck, check_scope
from explorer.photos.images import LoadedImage, load_image
from explorer.photos.places import check_date, make_place
from explorer.photos.thumbnails import photo_path
from explorer.represent.embeddings import similarities, top_positions
from explorer.services.resources import Resources

P = ParamSpec("P")
R = TypeVar("R")

DATE_ONLY_NOTE = "A date without a location is not used by the geo-prior."
AUTO = "auto"  # the model name that routes each photo to the model whose scope fits


@dataclass(frozen=True)
class Identification:
    """A photo as loaded (upright RGB, conversion notes) and what the model said about it."""

    photo: LoadedImage
    result: IdentifyResult


def holds_worker(service: Callable[P, R]) -> Callable[P, R]:
    """A service that runs models holds a model worker while it runs (Resources.worker; see services.workers)."""

    @functools.wraps(service)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        resources = args[0] if args else kwargs["resources"]
        with resources.worker():
            return service(*args, **kwargs)

    return run


@holds_worker
def identify_photo(
    resources: Resources,
    path: str,
    model: str | None,
    top_k: int,
    threshold: float,
    cam_method: str | None,
    lat=None,
    lon=None,
    date=None,
    prior: str | None = None,
    strict_prior: bool = True,
) -> Identification:
    """Load the photo and identify it (re-ranked by the model's geo-prior when a place is given), with the
    model's scope verdict; ``model="auto"`` first picks the model whose scope fits the photo (see ``route``).
    ``cam_method=None`` computes no CAMs; ``prior``: the geo-prior's name (None or "": the model's default; "none":
    no prior); a model without that prior is an error, or with ``strict_prior=False`` (the page, where "auto" may
    pick a model) its default with a note. Raises ValueError with a message for the user."""
    settings = resources.settings
    place = make_place(lat, lon, date)
    loaded = load_image(path, settings.max_upload_bytes, settings.max_image_pixels, settings.min_image_side)
    gate_cache: dict = {}
    routing = ""
    if model == AUTO:
        model, routing = route(resources, loaded.image, gate_cache)
    classifier = resources.get(model)
    notes = list(loaded.notes)
    bound = _chosen_prior(resources, classifier.name, prior, strict_prior, notes)
    if place is not None and bound is None:
        why = "the geo-prior was switched off" if prior == NO_PRIOR else f"{classifier.name} has no geo-prior"
        notes.append(f"The location was not used: {why}.")
    if place is None and date not in (None, ""):
        notes.append(DATE_ONLY_NOTE)
    result = identify(classifier, loaded.image, top_k, threshold, cam_method, place, bound)
    check = scope_check(resources, classifier, result.logits, loaded.image, gate_cache)
    if check is not None:
        result = with_scope(classifier, result, check)
    result.routed_from, result.routing = (AUTO, routing) if routing else (None, "")
    if routing and classifier.name not in resources.scope_rules:  # nothing fits: say so, claim no clade
        r = result.rollup
        result.rollup = replace(r, rank=None, name=None, confident_species=False, text=routing)
    if result.prior and result.prior["used"]:
        notes.append(f"Re-ranked with the place by the geo-prior {result.prior['label']}. {result.prior['credit']}.")
    result.notes.extend(notes)
    return Identification(replace(loaded, notes=tuple(notes)), result)


def _chosen_prior(resources: Resources, model: str, name: str | None, strict: bool, notes: list[str]):
    try:
        return resources.prior(model, name)
    except ValueError:
        if strict:
            raise
    fallback = resources.prior(model)
    instead = f"its default, {fallback.name}, was used" if fallback else "it has none, so the place was not used"
    notes.append(f"{model} has no geo-prior {name!r}: {instead}.")
    return fallback


def scope_check(resources: Resources, classifier, logits, image, gate_cache: dict | None = None) -> ScopeCheck | None:
    """The model's scope verdict for a photo, or None when the model has no scope rule."""
    rule = resources.scope_rules.get(classifier.name)
    if rule is None:
        return None
    gate_logits = None
    if rule.needs_gate:
        gate_cache = {} if gate_cache is None else gate_cache
        if "logits" not in gate_cache:
            gate_cache["logits"] = _logits(resources.models()[GATE_MODEL], image)
        gate_logits = gate_cache["logits"]
    return check_scope(rule, logits, classifier.background_index, gate_logits)


def _logits(classifier, image) -> np.ndarray:
    with torch.no_grad(), classifier.autocast():
        return classifier.module(classifier.preprocess(image)).float().cpu().numpy()[0]


def route(resources: Resources, image, gate_cache: dict) -> tuple[str, str]:
    """(model, why) for ``model="auto"``: the species model whose scope fits the photo (one that also knows
    the species first, then the card's priority); none fits -> the ImageNet model, saying what it sees."""
    fits = []
    for name, classifier in resources.models().items():  # in card priority order
        if name in resources.scope_rules:
            check = scope_check(resources, classifier, _logits(classifier, image), image, gate_cache)
            if check.in_scope:
                fits.append((check.known_species is False, name, check))
    if fits:
        _, name, check = min(fits, key=lambda f: f[0])
        others = [n for _, n, _ in fits if n != name]
        also = f" ({', '.join(others)} would also take it)" if others else ""
        return name, f"Chose {resources.classifiers[name].card.label}: {check.explanation}{also}"
    checked = ", ".join(resources.scope_rules) or "none"
    if GATE_MODEL in resources.classifiers:
        gate = resources.models()[GATE_MODEL]
        logits = gate_cache.get("logits")
        logits = _logits(gate, image) if logits is None else logits
        top = gate.labels[int(np.argmax(logits))].scientific_name
        return GATE_MODEL, f"None of the species models covers this photo ({checked}); closest: ImageNet says '{top}'."
    return resources.default_model, f"None of the species models covers this photo ({checked})."


SIMILAR_COLUMNS = ["photo_id", "path", "source", "true_name", "true_common_name", "pred_name", "correct_1"]
DEFAULT_SIMILAR = 8
EXAMPLES_PER_SUGGESTION = 2


@dataclass(frozen=True)
class SimilarPhotos:
    """The labelled photos nearest to a photo in a model's embedding space (cosine), and the nearest photos of
    each suggested species. Rows are evaluation-table rows (they open in the inspector) plus ``similarity``,
    ``distance`` (1 - cosine), and ``in_suggestions`` / ``suggestion`` (the suggestion's rank)."""

    model: str
    table: str
    photos: int  # labelled photos searched
    neighbours: pd.DataFrame
    examples: pd.DataFrame


def similar_photos(resources: Resources, result: IdentifyResult, k: int = DEFAULT_SIMILAR) -> SimilarPhotos | None:
    """From an identification's embedding (no second forward pass): one matrix product over the stored
    embeddings of the model's labelled photos. None when the model has no stored embeddings."""
    index = resources.photo_indexes.get(result.model)
    if index is None or result.embedding is None:
        return None
    if not 1 <= int(k) <= 50:
        raise ValueError(f"k must be between 1 and 50, got {k}")
    scores = similarities(index.store, result.embedding)
    positions, similarity = top_positions(scores, int(k))
    rank = {p.class_index: n for n, p in enumerate(result.predictions, 1) if not p.is_background}
    truth = index.photos["true_class_index"].to_numpy()
    found = [top_positions(scores, EXAMPLES_PER_SUGGESTION, truth == c) for c in rank]
    suggestion = np.concatenate([np.full(len(f[0]), r, np.int64) for f, r in zip(found, rank.values())] or [[]])
    rows = index.photos.iloc[np.concatenate([positions, *(f[0] for f in found)]).astype(np.int64)]
    sims = np.concatenate([similarity, *(f[1] for f in found)]).astype(np.float32)
    rows = rows.assign(similarity=sims, distance=1 - sims).reset_index(drop=True)
    neighbours = rows.iloc[: len(positions)].assign(in_suggestions=lambda f: f["true_class_index"].isin(list(rank)))
    examples = rows.iloc[len(positions) :].assign(suggestion=suggestion).reset_index(drop=True)
    return SimilarPhotos(result.model, index.table, len(index.photos), neighbours.reset_index(drop=True), examples)


def similar_to_json(found: SimilarPhotos | None, result: IdentifyResult) -> dict:
    """The ``similar`` API's JSON."""
    if found is None:
        return {
            "model": result.model,
            "neighbours": [],
            "examples": [],
            "note": f"{result.model} has no stored "
            "embeddings of labelled photos (explorer-evaluate writes them beside its table).",
        }
    keep = [*SIMILAR_COLUMNS, "similarity", "distance"]
    # "path" would make gradio_client take each record for a file to download: the photo's path is "photo_path"

    def records(frame: pd.DataFrame, extra: list[str]) -> list[dict]:
        shown = frame[keep + extra].astype(object)
        return shown.where(shown.notna(), None).rename(columns={"path": "photo_path"}).to_dict("records")

    return {
        "model": found.model,
        "scope": None if result.scope is None else result.scope.as_json(),  # neighbours of an out-of-scope photo
        **({"routed_from": result.routed_from, "routing": result.routing} if result.routed_from else {}),
        "table": found.table,
        "photos_searched": found.photos,
        "suggestions": [p.scientific_name for p in result.predictions if not p.is_background],
        "neighbours": records(found.neighbours, ["in_suggestions"]),
        "examples": records(found.examples, ["suggestion"]),
    }


def range_map_document(
    resources: Resources, model: str | None, name: str, lat=None, lon=None, date=None, prior=None, week=None
) -> str:
    """A standalone (offline) folium map of one species' predicted range at a week of the year (BirdNET's 48-week
    calendar; None: the observation's week when a date is given, else the whole year; 0: the whole year), with
    the place pinned when given. ``prior``: the geo-prior's name (None: the model's default). Raises ValueError
    with a message for the user (no prior, unknown species, impossible place or week)."""
    classifier = resources.get(model)
    bound = resources.prior(classifier.name, prior)
    if bound is None:
        raise ValueError(f"{classifier.name} has no geo-prior in use, so there is no range map.")
    mapper = resources.mappers[classifier.name][bound.name]
    index = next((i for i, lab in enumerate(classifier.labels) if lab.scientific_name == name), None)
    if index is None:
        raise ValueError(f"{name!r} is not one of {classifier.name}'s classes: no range to show.")
    taxon = int(bound.alignment[index])
    if taxon < 0:
        raise ValueError(f"the geo-prior {bound.name} does not know {name} (not even by a synonym): no range to show.")
    place = make_place(lat, lon, date)
    day = (
        place.day_of_year
        if place is not None
        else check_date(date).timetuple().tm_yday
        if str(date or "").strip()
        else math.nan
    )
    chosen = map_week(week, day)
    label = classifier.labels[index]
    title = f"{label.common_name} ({name})" if label.common_name else name
    if bound.taxa[taxon] != name:
        title += f" = {bound.taxa[taxon]} in {bound.name}"
    return mapper.html(taxon, title, place.lat if place else None, place.lon if place else None, chosen)


def map_week(week, day_of_year: float) -> int | None:
    """The week a range map shows: the one asked (1..48; 0 for the whole year), else the observation's (its day of
    year; NaN: no date, the whole year)."""
    if week in (None, "") and not math.isnan(day_of_year):
        return int(week_of_year(day_of_year))
    if week in (None, "", 0):
        return None
    try:
        value = float(week)
    except (TypeError, ValueError):
        raise ValueError(f"week {week!r} is not a number from 1 to 48 (0: the whole year)") from None
    if value != int(value) or not 0 <= value <= 48:
        raise ValueError(f"week {week!r} is not a whole number from 1 to 48 (0: the whole year)")
    return int(value) or None


@dataclass(frozen=True)
class Inspection:
    """An evaluation error looked at closely: truth vs prediction (escaped HTML) and captioned images."""

    html: str
    images: list[tuple[np.ndarray | Image.Image, str]]


@holds_worker
def inspect_error(resources: Resources, row: dict, place_changed: bool = False) -> Inspection:
    """Truth vs prediction, and Grad-CAMs for the prediction, the truth and their contrast (computed now).

    ``place_changed``: the row is one the geo-prior changed, so the two answers compared are the image's own top-1
    and the top-1 with the place (for a photo the prior broke, the first is the truth). A photo whose species the
    model has no class for gets the prediction's Grad-CAM alone."""
    text = comparison_html(row)
    if place_changed:
        text += _place_change_html(row)
    path = photo_path(resources.settings.data_root, row["path"])
    if path is None:
        return Inspection(text + "<p>The photo is not on this machine (data root not found), so no Grad-CAM.</p>", [])
    if row["model"] not in resources.classifiers:
        return Inspection(text + f"<p>Model {html.escape(row['model'])} is not loaded, so no Grad-CAM.</p>", [])
    classifier = resources.models()[row["model"]]
    image = _load_labelled_photo(resources, path).image
    base, tensor = display_copy(framed(image, classifier.card.crop_pct)), classifier.preprocess(image)
    a, b, captions = _compared_answers(row, place_changed)
    if b < 0 or a == b:
        _, _, maps = classifier.forward_with_cams(tensor, lambda _: [a])
        note = (
            "<p>The true species is not one of the model's classes: only the prediction's Grad-CAM.</p>"
            if b < 0
            else "<p>The model got this photo right: its Grad-CAM for the truth.</p>"
        )
        return Inspection(text + note, [(base, "photo"), *zip(overlay_cams(base, maps), captions[:1])])
    maps = contrastive_cams(
        classifier.module,
        tensor,
        classifier.cam_layer,
        a,
        b,
        head=classifier.cam_head,
        autocast=classifier.autocast,
        layout=classifier.cam_layout,
    )
    return Inspection(text, [(base, "photo"), *zip(overlay_cams(base, maps), captions)])


def _compared_answers(row: dict, place_changed: bool) -> tuple[int, int, list[str]]:
    """(class a, class b, captions of the Grad-CAMs of a, b and 'why a and not b')."""
    if place_changed:
        a, b = int(row["pred_class_index"]), int(row["geo_pred_class_index"])
        names = (row["pred_name"], row["geo_pred_name"])
        first, second = f"image alone: {names[0]}", f"with the place: {names[1]}"
        return a, b, [first, second, f"why the image says {names[0]} and not {names[1]}"]
    a, b = int(row["pred_class_index"]), int(row["true_class_index"])
    names = (row["pred_name"], row["true_name"])
    return a, b, [f"prediction: {names[0]}", f"truth: {names[1]}", f"why {names[0]} and not {names[1]}"]


def _place_change_html(row: dict) -> str:
    esc = html.escape
    right = "right" if row.get("geo_correct_1") else "wrong"
    return (
        f"<p>Image alone: <i>{esc(str(row['pred_name']))}</i> ({format_probability(float(row['confidence']))}); "
        f"with the place ({float(row['lat']):.2f}, {float(row['lon']):.2f}): <i>{esc(str(row['geo_pred_name']))}</i> "
        f"({format_probability(float(row['geo_confidence']))}), {right}. The truth is "
        f"<i>{esc(str(row['true_name']))}</i>.</p>"
    )


def _load_labelled_photo(resources: Resources, path: Path) -> LoadedImage:
    settings = resources.settings
    return load_image(path, settings.max_upload_bytes * 4, settings.max_image_pixels)


def cams_to_json(classifier, result) -> dict:
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


def models_markdown(resources: Resources) -> str:
    """The loaded models with their sources and licences, their geo-priors, and the ones that could not load."""
    esc = html.escape
    lines = ["## Loaded models", ""]
    for name, c in resources.classifiers.items():
        card = c.card
        lines.append(
            f"- **{esc(card.label)}** (`{esc(name)}`): {len(c.labels)} classes, {esc(card.architecture)}, "
            f"CAM layer `{esc(c.cam_layer_name)}` ({esc(c.cam_layer_why)}), on {c.device}. "
            f"Preprocessing: {card.input_size} px, {_framing(card.crop_pct)}, mean {card.mean}, std {card.std}. "
            f"Licence: {esc(card.license)}. "
            f"Source: {esc(card.source)}"
        )
    if resources.priors:
        lines += ["", "## Geo-priors", ""]
        lines += [
            _prior_line(resources, name, prior, i == 0)
            for name, by_name in resources.priors.items()
            for i, prior in enumerate(by_name.values())
        ]
    if resources.unavailable:
        lines += ["", "## Not available", ""]
        lines += [f"- `{esc(n)}`: {esc(why)}" for n, why in resources.unavailable.items()]
    return "\n".join(lines)


def _framing(crop_pct: float) -> str:
    return "the whole photo" if crop_pct >= 1 else f"the central square of {crop_pct:.0%} of the short side"


def _prior_line(resources: Resources, name: str, prior, default: bool) -> str:
    esc = html.escape
    classes = [lab for lab in resources.classifiers[name].labels if not lab.is_background]
    where = prior.path.name if prior.path else "?"
    metrics = prior.metrics
    trained = (
        f"{int(prior.known.sum())} of its {len(prior.taxa)} taxa with records; held-out site MAP "
        f"{metrics['held_out_site_map']:.3f} (location-blind {metrics.get('location_blind_map', float('nan')):.3f}). "
        if "held_out_site_map" in metrics
        else f"{len(prior.taxa)} taxa. "
    )
    return (
        f"- `{esc(name)}` → **{esc(prior.name)}**{' (default)' if default else ''}: {esc(prior.label)}; "
        f"`{esc(where)}`, {trained}{int(prior.usable.sum())} of this model's {len(classes)} species matched by "
        f"name through synonyms (the rest get a neutral factor). Credit: {esc(prior.credit)}."
    )
