"""What decided an answer (identify.provenance): each suggestion's and the headline's words on hand-built results,
and where they show: the JSON, the CSV, the page's table and headline."""

from dataclasses import replace

import pytest
from test_present import make_result

from explorer.identify.answer import PriorSummary, Rollup, no_claim, result_to_json
from explorer.identify.present import predictions_frame, predictions_html, rollup_markdown
from explorer.identify.provenance import headline_provenance, suggestion_provenance
from explorer.identify.scope_check import ScopeCheck

PRIOR = PriorSummary(name="ours", label="Our prior", credit="eBird", used=True, covers="1 of 1 classes")
SPECIES = Rollup("species", "Poecile atricapillus", 0.9, 0.78, True, "Poecile atricapillus, 90%")
IN_SCOPE = ScopeCheck(True, 0.9, 0.5, "Looks like a bird")
OUT = ScopeCheck(False, 0.1, 0.5, "This does not look like a bird")


def result(prior=None, geo=None, out_of_range=False, scope=None, rollup=SPECIES, routed=False):
    base = make_result(name="Poecile atricapillus", common="Black-capped Chickadee")
    prediction = replace(base.predictions[0], geo_score=geo, out_of_range=out_of_range)
    extra = {"routed_from": "auto", "routing": "Chose m"} if routed else {}
    return replace(base, predictions=(prediction,), prior=prior, scope=scope, rollup=rollup, **extra)


@pytest.mark.parametrize(
    ("kwargs", "suggestion", "headline"),
    [
        ({}, "image", "image"),
        ({"prior": replace(PRIOR, used=False), "geo": 0.8}, "image", "image"),  # offered, no place given
        ({"prior": PRIOR, "geo": 0.8}, "image + place", "image + place"),
        ({"prior": PRIOR, "geo": None}, "image", "image + place"),  # the prior does not know this taxon
        ({"prior": PRIOR, "geo": 0.01, "out_of_range": True}, "image + place (out of known range)", "image + place"),
        ({"scope": OUT, "routed": True}, "out of scope", "routed to m · out of scope"),
        (
            {"scope": IN_SCOPE, "routed": True, "prior": PRIOR, "geo": 0.8},
            "image + place",
            "routed to m · image + place",
        ),
        ({"rollup": make_result().rollup}, "image", "image · roll-up to genus"),
        ({"rollup": no_claim(0.3, 0.78, "Not sure")}, "image", "image · no claim"),
        (
            {"scope": replace(IN_SCOPE, known_species=False), "rollup": make_result().rollup},
            "image",
            "image · roll-up to genus · probably not a known species",
        ),
    ],
)
def test_each_suggestion_and_the_headline_say_what_decided_them(kwargs, suggestion, headline):
    answer = result(**kwargs)
    assert suggestion_provenance(answer, answer.predictions[0]) == suggestion
    assert headline_provenance(answer) == headline
    data = result_to_json(answer)
    assert data["provenance"] == headline and data["predictions"][0]["provenance"] == suggestion
    assert predictions_frame(answer)["provenance"].tolist() == [suggestion]
    assert f"<td><small>{suggestion}</small></td></tr>" in predictions_html(answer)
    assert f"Decided by: **{headline}**" in rollup_markdown(answer, "M")


def test_an_observation_says_how_many_photos():
    assert headline_provenance(result(prior=PRIOR, geo=0.8), photos=3) == "3 photos + place"
    assert "Decided by: **3 photos**" in rollup_markdown(result(), "M", photos=3)


def test_a_vagrant_kept_by_the_image_says_so():
    answer = result(prior=PRIOR, geo=0.001, out_of_range=True)
    vagrant = replace(answer.predictions[0], kept_unusual=True)
    answer = replace(answer, predictions=(vagrant,))
    assert suggestion_provenance(answer, vagrant) == "image + place (unusual here: out of known range, kept)"
    assert "⚠ unusual here: out of known range for this week</b>" in predictions_html(answer)
    assert result_to_json(answer)["predictions"][0]["kept_unusual"] is True


def test_the_vagrant_flag_comes_from_the_combination(tiny_classifier):
    import numpy as np

    from explorer.geo.combine import combine
    from explorer.identify.answer import _predictions

    vision = np.array([0.9, 0.04, 0.03, 0.02, 0.01])
    geo = np.array([0.001, 0.9, 0.9, 0.9])  # the place has never seen class 0
    align, known = np.array([0, 1, 2, 3, -1]), np.ones(4, bool)
    kept = combine(vision, geo, align, known, floor=0.01, threshold=0.05, vagrant=0.85)
    (first,) = _predictions(tiny_classifier, [0], kept)
    assert first.out_of_range and first.kept_unusual and kept.combined.argmax() == 0
    demoted = combine(vision, geo, align, known, floor=0.01, threshold=0.05)
    (first,) = _predictions(tiny_classifier, [0], demoted)
    assert first.out_of_range and not first.kept_unusual and demoted.combined.argmax() != 0
    # a permissive list keeps it too, and the prior's own range (cutoff 0.03) still flags it
    listed = combine(vision, np.array([0.02, 0.9, 0.9, 0.9]), align, known, floor=0.03, threshold=0.01, cutoff=0.03)
    (first,) = _predictions(tiny_classifier, [0], listed)
    assert first.out_of_range and first.kept_unusual
