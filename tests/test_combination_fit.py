"""How the place weighs on the image, fitted on one half and reported on the other (geo.combination_fit,
geo.fitted, explorer-fit-prior), on hand-built numbers."""

import json

import numpy as np
import pytest

from explorer.geo.combination_fit import Rule, cell_of, fit_rule, oracle_top1, outcome, rules_grid, top1
from explorer.geo.combine import NO_PRIOR, BoundPrior, combine_many
from explorer.geo.fitted import apply_entry, apply_fitted

ALIGN, KNOWN = np.array([0, 1]), np.array([True, True])


def test_the_exponent_weighs_the_prior():
    vision, scores = np.array([[0.6, 0.4]]), np.array([[0.2, 0.8]])
    plain = combine_many(vision, scores, ALIGN, KNOWN)
    np.testing.assert_allclose(plain, [[0.12 / 0.44, 0.32 / 0.44]])
    np.testing.assert_allclose(combine_many(vision, scores, ALIGN, KNOWN, exponent=0.0), vision)
    squared = np.array([0.6 * 0.04, 0.4 * 0.64])
    np.testing.assert_allclose(combine_many(vision, scores, ALIGN, KNOWN, exponent=2.0), [squared / squared.sum()])


def test_rules_say_what_they_do():
    assert Rule(0.5, 0.03).text == "image × max(presence, 0.03)^0.5"
    assert Rule(1.0, 0.1, 0.05).text == "species list: presence ≥ 0.05 keeps the image's probability, below × 0.1"
    assert len(rules_grid()) == 6 * 6 + 6 * 5


def test_outcome_counts_fixes_and_breaks():
    truth, alone, predicted = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 0]), np.array([0, 0, 0, 1])
    assert outcome(predicted, alone, truth) == {"photos": 4, "correct": 3, "top1": 0.75, "fixed": 2, "broke": 1}


def test_the_fit_takes_the_gentlest_rule_of_the_most_net_fixes():
    # photo 0: the image says class 0 (0.55), truth 1, the place says 1 strongly; photo 1: the image is right
    # (0.9 for class 0) and the place mildly disagrees. Any rule that moves photo 0 but not photo 1 nets +1.
    vision = np.array([[0.55, 0.45], [0.9, 0.1]])
    scores = np.array([[0.05, 0.9], [0.3, 0.6]])
    truth = np.array([1, 0])
    rule, found = fit_rule(vision, scores, ALIGN, KNOWN, truth)
    assert found == {"photos": 2, "correct": 2, "top1": 1.0, "fixed": 1, "broke": 0}
    assert rule == Rule(0.25, 0.3)  # the smallest exponent that does it, with the largest floor
    assert top1(vision, scores, ALIGN, KNOWN, rule).tolist() == [1, 0]
    # a place that only misleads: the image alone
    rule, found = fit_rule(vision, scores[:, ::-1], ALIGN, KNOWN, np.array([0, 0]))
    assert rule is None and found["fixed"] == found["broke"] == 0


def test_the_oracle_keeps_species_recorded_in_the_cell():
    vision = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])
    taxa = np.array([10, 11, -1])  # class 2 has no taxon in the prior
    assert oracle_top1(vision, [{11}, {99}], taxa, top=3).tolist() == [1, 0]  # none recorded: the image's top-1
    assert cell_of(np.array([42.5, -0.5]), np.array([-76.2, 10.0])).tolist() == [[42, -77], [-1, 10]]


def prior(name: str) -> BoundPrior:
    return BoundPrior(None, ["a", "b"], ALIGN, KNOWN, {}, name=name)


def test_a_fitted_entry_sets_each_rule_and_the_default(tmp_path):
    priors = {"birdnet": prior("birdnet"), "ours": prior("ours")}
    entry = {
        "default": "ours",
        "priors": {
            "birdnet": {"fitted": {"exponent": 1.0, "floor": 0.03, "threshold": 0.01, "vagrant": 0.9, "text": "list"}},
            "ours": {"fitted": {"exponent": 0.5, "floor": 0.1, "threshold": None, "text": "product"}},
        },
    }
    adopted = apply_entry(priors, entry)
    assert list(adopted) == ["ours", "birdnet"]
    assert adopted["ours"].rule == {"floor": 0.1, "threshold": None, "exponent": 0.5, "vagrant": None}
    assert adopted["birdnet"].rule == {"floor": 0.03, "threshold": 0.01, "exponent": 1.0, "vagrant": 0.9}
    assert adopted["ours"].fitted == "fitted by explorer-fit-prior: product" and not adopted["ours"].off_by_default
    off = apply_entry(priors, {"default": NO_PRIOR, "priors": {"ours": {"fitted": None}}})
    assert all(p.off_by_default for p in off.values()) and off["ours"].rule == priors["ours"].rule
    (tmp_path / "geo").mkdir()
    (tmp_path / "geo" / "combination.json").write_text(json.dumps({"m": entry}))
    assert list(apply_fitted(priors, tmp_path, "m")) == ["ours", "birdnet"]
    assert apply_fitted(priors, tmp_path, "other") is priors  # not in the file: as loaded


def test_the_default_off_says_why_the_place_was_not_used():
    from explorer.services.identification import IdentifyRequest, _place_notes

    request = IdentifyRequest(photo=b"x", lat=42.0, lon=-76.0)
    (note,) = _place_notes(request, "m", None, offered=True)
    assert note.startswith("The location was not used: on held-out photos no geo-prior of m fixed more answers")
    assert _place_notes(request, "m", None) == ["The location was not used: m has no geo-prior."]


@pytest.mark.parametrize("default", ["ours", NO_PRIOR])
def test_the_resources_default_prior_follows_the_fit(default):
    from explorer.services.resources import Resources

    priors = apply_entry({"ours": prior("ours")}, {"default": default, "priors": {}})
    resources = Resources.__new__(Resources)
    resources.priors = {"m": priors}
    assert (resources.prior("m") is None) == (default == NO_PRIOR)
    assert resources.prior("m", "ours") is priors["ours"]  # chosen by name: always there


SHIPPED_FITS = ["inat_bird", "cub100_effnet_head", "cub100_effnet_taxsmooth"]


@pytest.mark.parametrize("model", SHIPPED_FITS)
def test_the_shipped_fit_and_its_table_agree(model):
    """The held-out figures in checkpoints/geo/combination.json are the table's own geo columns (rewritten with
    the fitted rules by explorer-fit-prior --update-table), counted again here: neither can go stale alone."""
    import pandas as pd

    from explorer.diagnose.schema import ALT_SEPARATOR, load_table
    from explorer.settings import PROJECT_ROOT

    report = json.loads((PROJECT_ROOT / "checkpoints" / "geo" / "combination.json").read_text())[model]
    table = load_table(PROJECT_ROOT / "assets" / "eval" / f"{model}.parquet")
    placed = table[(table["status"] == "ok") & table["in_vocab"] & pd.to_numeric(table["lat"]).notna()]
    held = placed[~placed["calibration_half"].astype(bool)]
    assert (len(placed), len(held)) == (report["photos"], report["held_out_photos"])
    assert int(held["correct_1"].sum()) == report["image_alone_held_out"]["correct"]
    own = str(table["geo_prior"].iloc[0])
    assert own == report["default"]  # the table's own geo columns are the default prior's
    for name, prior in report["priors"].items():
        prefix = "" if name == own else f"{name}{ALT_SEPARATOR}"
        right, was = held[f"{prefix}geo_correct_1"].astype(bool), held["correct_1"].astype(bool)
        expected = prior["fitted_held_out"]
        assert (int((right & ~was).sum()), int((~right & was).sum())) == (expected["fixed"], expected["broke"])
        assert expected["fixed"] >= expected["broke"] or report["default"] != name  # the default never hurts


def test_a_species_the_image_is_sure_of_is_kept_not_demoted():
    vision = np.array([[0.92, 0.08]])  # the image is sure of class 0, which the place has never seen
    scores = np.array([[0.001, 0.9]])
    demoted = combine_many(vision, scores, ALIGN, KNOWN, floor=0.01, threshold=0.05)  # 0.92 * 0.01 vs 0.08 * 1
    assert demoted.argmax() == 1
    kept = combine_many(vision, scores, ALIGN, KNOWN, floor=0.01, threshold=0.05, vagrant=0.9)
    np.testing.assert_allclose(kept, vision)  # both at the place's best factor: the image's own ranking
    assert combine_many(vision, scores, ALIGN, KNOWN, floor=0.01, threshold=0.05, vagrant=0.95).argmax() == 1


def test_the_vagrant_threshold_is_fitted_and_its_cost_counted():
    from explorer.geo.combination_fit import vagrant_grid

    # photo 0: a sure, right image of a species out of range (a vagrant); photo 1: a sure but wrong image the place
    # corrects; photos 2, 3 the same on the held-out half
    vision = np.array([[0.97, 0.03], [0.85, 0.15], [0.97, 0.03], [0.85, 0.15]])
    scores = np.array([[0.001, 0.9], [0.001, 0.9], [0.001, 0.9], [0.001, 0.9]])
    truth = np.array([0, 1, 0, 1])
    fitting = np.array([True, True, False, False])
    rule, rows = vagrant_grid(vision, scores, ALIGN, KNOWN, truth, Rule(1.0, 0.01, 0.05), fitting)
    assert rule.vagrant == 0.9  # keeps the 0.97 vagrant, lets the place correct the 0.85 mistake
    by = {row["vagrant"]: row for row in rows}
    assert (by[0.9]["fixed"], by[0.9]["broke"], by[0.9]["hidden_without"]) == (1, 0, 1)
    assert (by[0.8]["fixed"], by[0.8]["broke"]) == (0, 0)  # 0.8 also keeps the mistake
    assert (by[0.99]["fixed"], by[0.99]["broke"], by[0.99]["hidden_without"]) == (1, 1, 0)


def test_explorer_fit_prior_refuses_another_models_table_in_one_line(capsys):
    from explorer.settings import PROJECT_ROOT
    from explorer.tools.fit_prior import main

    table = PROJECT_ROOT / "assets" / "eval" / "inat_insect.parquet"
    with pytest.raises(SystemExit) as stop:
        main(["--model", "inat_bird", "--table", str(table)])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"explorer-fit-prior: error: {table} is inat_insect's table, not inat_bird's"
    ]
