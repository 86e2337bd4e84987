"""Identify with a place: the ranking is re-done on vision x geo and both are reported."""

import numpy as np
import pytest


def test_identify_with_a_place_reranks_and_reports_both(tiny_classifier, tiny_world, photo_rgb):
    from explorer.geo.combine import BoundPrior, align_taxa
    from explorer.identify.answer import identify, result_to_json
    from explorer.photos.places import make_place

    names = [label.scientific_name for label in tiny_classifier.labels]
    taxa = ["Poecile atricapillus", "Athene cunicularia"]  # the tiny world's taxa 0 (Europe) and 1 (S. America)
    prior = BoundPrior(tiny_world, taxa, align_taxa(names, taxa), np.array([True, True]), {})
    plain = identify(tiny_classifier, photo_rgb, top_k=5)
    europe = identify(tiny_classifier, photo_rgb, top_k=5, place=make_place(50, 10), prior=prior)
    america = identify(tiny_classifier, photo_rgb, top_k=5, place=make_place(-20, -55), prior=prior)
    rank = lambda result, name: [p.scientific_name for p in result.predictions].index(name)  # noqa: E731
    assert rank(europe, "Poecile atricapillus") < rank(america, "Poecile atricapillus")
    assert rank(america, "Athene cunicularia") < rank(europe, "Athene cunicularia")
    owl = next(p for p in europe.predictions if p.scientific_name == "Athene cunicularia")
    assert owl.geo_score < 0.2 and owl.vision_probability == pytest.approx(
        next(p for p in plain.predictions if p.scientific_name == "Athene cunicularia").probability, rel=1e-5
    )
    unknown = next(p for p in europe.predictions if p.scientific_name == "Parus major")
    assert unknown.geo_score is None  # the prior has no Parus major: neutral, reported as unknown
    payload = result_to_json(europe)
    assert payload["place"] == {"lat": 50.0, "lon": 10.0, "date": None}
    assert {"vision_probability", "geo_score", "vision_rank", "out_of_range"} <= set(payload["predictions"][0])


@pytest.fixture(scope="module")
def cub_head_and_prior():
    from explorer.services.resources import load_classifier_for, load_prior_for
    from explorer.settings import parse_settings

    settings = parse_settings([])
    classifier, _ = load_classifier_for(settings, "cub100_effnet_head", [])
    # Our prior by name: the card's default is now BirdNET's, which covers the open sea (seabirds) and so always
    # has information; the "no information" note is about a prior trained on land records only.
    return classifier, load_prior_for(settings, classifier, "inat_bird")


@pytest.mark.slow
def test_prior_without_information_says_so_and_leaves_the_image_alone(cub_head_and_prior, photo_rgb):
    from explorer.identify.answer import identify
    from explorer.photos.places import Place

    classifier, prior = cub_head_and_prior
    at_sea = identify(classifier, photo_rgb, 3, cam_method=None, place=Place(0.0, 0.0), prior=prior)
    image_only = identify(classifier, photo_rgb, 3, cam_method=None)
    assert [p.probability for p in at_sea.predictions] == [p.probability for p in image_only.predictions]
    assert all(p.geo_score is None for p in at_sea.predictions)
    assert at_sea.notes == (
        "The geo-prior has no information at 0.00, 0.00 (no species it knows scores as much as 25% there: open sea, "
        "or far from its training records), so the ranking is the image's alone.",
    )
    toronto = identify(classifier, photo_rgb, 3, cam_method=None, place=Place(43.65, -79.38), prior=prior)
    assert toronto.notes == () and any(p.geo_score is not None for p in toronto.predictions)
