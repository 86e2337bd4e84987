"""The honest headline: out of scope claims no clade; a species the model does not know says so and keeps only
the clade the model is sure of."""

from dataclasses import FrozenInstanceError, replace

import numpy as np
import pytest

from explorer.identify.answer import identify, rollup, with_scope
from explorer.identify.scope_check import ScopeCheck, ScopeRule, check_scope


def test_out_of_scope_claims_no_clade(tiny_classifier, photo_rgb):
    result = identify(tiny_classifier, photo_rgb, top_k=3, cam_method=None)
    assert result.logits.shape == (5,)
    check = ScopeCheck(False, -3.0, -1.0, "This does not look like a bird: this bird model can only name birds.")
    told = with_scope(tiny_classifier, result, check)
    assert told.rollup.rank is None and told.rollup.name is None and not told.rollup.confident_species
    assert told.rollup.text == check.explanation and told.scope is check
    assert len(told.predictions) == 3  # still shown (demoted by the page)
    assert result.scope is None and result.rollup.text != check.explanation  # a new result: the first is unchanged
    with pytest.raises(FrozenInstanceError):
        result.rollup = told.rollup


def test_unknown_species_keeps_only_the_clade(tiny_classifier, photo_rgb):
    result = identify(tiny_classifier, photo_rgb, top_k=2, cam_method=None)
    probs = np.array([0.45, 0.45, 0.05, 0.05, 0.0])  # Poecile holds 90 %: genus roll-up at 0.78
    result = replace(result, rollup=rollup(tiny_classifier, probs, 0.78))
    assert (result.rollup.rank, result.rollup.name) == ("genus", "Poecile")
    check = ScopeCheck(
        True, 1.0, 0.0, "Looks like a bird, but probably not one of the species this model knows.", False
    )
    told = with_scope(tiny_classifier, result, check)
    first = result.predictions[0]
    assert told.rollup.text == (
        f"A bird, probably not one of the 4 species this model knows; closest: {first.scientific_name} "
        f"({first.common_name}). Probably genus Poecile (90%)."
    )
    assert (told.rollup.rank, told.rollup.name) == ("genus", "Poecile")


def test_unknown_species_never_claims_the_species(tiny_classifier, photo_rgb):
    result = identify(tiny_classifier, photo_rgb, top_k=2, cam_method=None)
    result = replace(result, rollup=rollup(tiny_classifier, np.array([0.95, 0.02, 0.01, 0.02, 0.0]), 0.78))
    assert result.rollup.rank == "species"
    told = with_scope(tiny_classifier, result, ScopeCheck(True, 1.0, 0.0, "", False))
    assert told.rollup.rank is None and told.rollup.text.endswith("(Black-capped Chickadee).")


@pytest.mark.parametrize(("logit", "in_scope", "known"), [(0.5, False, None), (2.0, True, False), (4.0, True, True)])
def test_rule_on_the_tiny_models_logits(tiny_classifier, logit, in_scope, known):
    rule = ScopeRule("tiny", "bird", "max_logit", threshold=1.0, novelty_threshold=3.0)
    check = check_scope(rule, np.array([logit, 0.0, 0.0, 0.0, 9.0]), tiny_classifier.background_index)
    assert (check.in_scope, check.known_species) == (in_scope, known)
