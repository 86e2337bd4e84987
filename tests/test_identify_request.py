"""The identify boundary: a request built by name and checked when built; what identify_photo says about the place
and the geo-prior it used; a result that is never changed after it is built."""

import datetime as dt
from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import pytest

from explorer.geo.combine import BoundPrior, align_taxa
from explorer.identify.answer import DEFAULT_THRESHOLD, PriorSummary, result_to_json
from explorer.photos.places import Place
from explorer.services.identification import DATE_ONLY_NOTE, IdentifyRequest, identify_photo
from explorer.services.resources import Resources
from explorer.settings import Settings

TORONTO = {"lat": "43.65", "lon": "-79.38", "date": "2021-05-16"}
EUROPE = {"lat": 50.0, "lon": 10.0}  # the tiny world's first taxon (Poecile atricapillus) lives here


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"top_k": 21}, "top_k must be between 1 and 20, got 21"),
        ({"top_k": 2.5}, "top_k must be a whole number, got 2.5"),
        ({"threshold": 0}, r"threshold must be in \(0, 1\], got 0"),
        ({"cam_method": "magiccam"}, "unknown CAM method 'magiccam'; choose from"),
        ({"lat": 10.0}, "give both latitude and longitude, or neither"),
        ({"lat": 95, "lon": 0}, "latitude 95.0 is outside -90..90"),
        ({"date": "yesterday"}, "date 'yesterday' is not a date in the form YYYY-MM-DD"),  # checked even alone
    ],
)
def test_an_impossible_request_is_refused_when_built(fields, message):
    with pytest.raises(ValueError, match=message):
        IdentifyRequest(photo="photo.jpg", **fields)


def test_a_request_holds_its_checked_values_and_cannot_change():
    request = IdentifyRequest(photo="photo.jpg", top_k=3.0, prior="", **TORONTO)
    assert (request.top_k, type(request.top_k), request.prior) == (3, int, None)
    assert request.place == Place(43.65, -79.38, dt.date(2021, 5, 16))
    plain = IdentifyRequest(photo="photo.jpg")
    assert (plain.model, plain.top_k, plain.threshold, plain.cam_method, plain.place) == (
        None,
        5,
        DEFAULT_THRESHOLD,
        None,
        None,
    )
    with pytest.raises(FrozenInstanceError):
        request.top_k = 4


@pytest.fixture
def photo(tmp_path, photo_rgb) -> str:
    path = tmp_path / "photo.png"
    photo_rgb.save(path)
    return str(path)


@pytest.fixture(scope="module")
def world_prior(tiny_classifier, tiny_world) -> BoundPrior:
    names = [label.scientific_name for label in tiny_classifier.labels]
    taxa = ["Poecile atricapillus", "Athene cunicularia"]
    alignment, known = align_taxa(names, taxa), np.array([True, True])
    return BoundPrior(tiny_world, taxa, alignment, known, {}, name="world", label="world: made up", credit="by hand")


def _resources(tiny_classifier, priors=None) -> Resources:
    return Resources({"tiny": tiny_classifier}, settings=Settings(checkpoint_dir=Path(".")), priors=priors or {})


def test_a_date_alone_and_a_place_without_a_prior_are_said_unused(tiny_classifier, photo):
    resources = _resources(tiny_classifier)
    dated = identify_photo(resources, IdentifyRequest(photo=photo, model="tiny", top_k=2, date="2021-05-16"))
    assert dated.result.notes == (DATE_ONLY_NOTE,) and dated.photo.notes == (DATE_ONLY_NOTE,)
    placed = identify_photo(resources, IdentifyRequest(photo=photo, model="tiny", top_k=2, **TORONTO))
    assert placed.result.notes == ("The location was not used: tiny has no geo-prior.",)
    assert placed.result.place == Place(43.65, -79.38, dt.date(2021, 5, 16)) and placed.result.prior is None
    assert result_to_json(placed.result)["prior"] is None


def test_the_prior_used_is_reported_typed_and_in_the_json(tiny_classifier, world_prior, photo):
    resources = _resources(tiny_classifier, {"tiny": {"world": world_prior}})
    found = identify_photo(resources, IdentifyRequest(photo=photo, model="tiny", top_k=2, **EUROPE))
    rule = "image × max(presence, 0.01)"
    assert found.result.prior == PriorSummary("world", "world: made up", "by hand", True, "2 of 4 classes", rule)
    assert found.result.notes == (
        "Re-ranked with the place by the geo-prior world: made up, combined as image × max(presence, 0.01). by hand.",
    )
    assert list(result_to_json(found.result)["prior"].items()) == [
        ("name", "world"),
        ("label", "world: made up"),
        ("credit", "by hand"),
        ("used", True),
        ("covers", "2 of 4 classes"),
        ("rule", rule),
    ]
    off = identify_photo(resources, IdentifyRequest(photo=photo, model="tiny", top_k=2, prior="none", **EUROPE))
    assert off.result.prior is None
    assert off.result.notes == ("The location was not used: the geo-prior was switched off.",)
    with pytest.raises(FrozenInstanceError):
        found.result.notes = ()


def test_an_unknown_prior_is_an_error_or_on_the_page_the_default_with_a_note(tiny_classifier, world_prior, photo):
    resources = _resources(tiny_classifier, {"tiny": {"world": world_prior}})
    asked = dict(photo=photo, model="tiny", top_k=2, prior="birdnet", **EUROPE)
    with pytest.raises(ValueError, match=r"unknown geo-prior 'birdnet' for tiny; choices: \['world', 'none'\]"):
        identify_photo(resources, IdentifyRequest(**asked))
    found = identify_photo(resources, IdentifyRequest(**asked, strict_prior=False))
    assert found.result.prior.name == "world" and found.result.notes == (
        "tiny has no geo-prior 'birdnet': its default, world, was used.",
        "Re-ranked with the place by the geo-prior world: made up, combined as image × max(presence, 0.01). by hand.",
    )
