"""The scope check on hand-built numbers: scores, thresholds chosen on one half and reported on the other,
AUROC, the verdict, the rule file, and the honest headline."""

import numpy as np
import pytest

from explorer.identify.scope_check import (
    IMAGENET_GROUPS,
    Evidence,
    ScopeRule,
    auroc,
    check_scope,
    fit_rule,
    gate_probability,
    held_out_half,
    load_rule,
    max_logit,
    save_rule,
    scope_scores,
)


def test_auroc_exact_values():
    assert auroc([3, 4, 5], [1, 2]) == 1.0
    assert auroc([1], [2]) == 0.0
    assert auroc([1, 2], [1, 2]) == 0.5  # ties count half
    assert auroc([2, 3], [1, 2, 4]) == pytest.approx((1 + 0.5 + 1 + 1) / 6)  # 2 vs 1,2,4 and 3 vs 1,2,4


def test_max_logit_leaves_the_background_out():
    logits = np.array([[1.0, 2.0, 9.0], [4.0, 0.0, 1.0]])
    assert max_logit(logits, background=2).tolist() == [2.0, 4.0]
    assert max_logit(logits).tolist() == [9.0, 4.0]


def test_gate_probability_sums_the_subject_classes():
    logits = np.full((1, 1000), -50.0)
    logits[0, IMAGENET_GROUPS["bird"][0]] = 0.0  # a cock
    logits[0, 500] = 0.0  # an object, equally likely
    assert gate_probability(logits, "bird")[0] == pytest.approx(0.5)
    assert gate_probability(logits, "insect")[0] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="knows"):
        gate_probability(logits, "plant")


def test_combined_score_standardises_both_parts():
    own, gate = np.array([5.0]), np.array([np.exp(-1.0)])
    score = scope_scores("gate+max_logit", own, gate, mean=(3.0, -2.0), scale=(2.0, 0.5))
    assert score[0] == pytest.approx((5 - 3) / 2 + (-1 + 2) / 0.5)
    with pytest.raises(ValueError, match="gate"):
        scope_scores("gate", own, None)


def _evidence(own, gate=None, prefix="p"):
    ids = [f"{prefix}{i}" for i in range(len(own))]
    return Evidence(np.asarray(own, float), None if gate is None else np.asarray(gate, float), ids, {prefix: len(own)})


def test_fit_rule_chooses_on_one_half_and_reports_on_the_other():
    rng = np.random.default_rng(0)
    inside = _evidence(rng.normal(10, 1, 400), rng.uniform(0.5, 1.0, 400), "in")
    outside = _evidence(rng.normal(10, 1, 200), rng.uniform(0.0, 0.01, 200), "out")  # max-logit is no help
    rule = fit_rule("m", "bird", inside, outside)
    assert rule.score in ("gate", "gate+max_logit")
    held = rule.figures["candidates"][rule.score]["held_out_half"]
    report = held_out_half(inside.ids)
    assert held["in_scope_photos"] == int(report.sum()) and held["out_of_scope_photos"] == int(
        held_out_half(outside.ids).sum()
    )
    assert held["out_of_scope_accepted"] == 0.0 and held["auroc"] == 1.0
    chosen_half = scope_scores(rule.score, inside.own[~report], inside.gate[~report], rule.mean, rule.scale)
    assert (chosen_half >= rule.threshold).mean() == pytest.approx(0.97, abs=0.01)  # kept 97 % where chosen
    assert rule.figures["candidates"]["max_logit"]["held_out_half"]["auroc"] < 0.6


def test_open_set_threshold_keeps_95_percent_of_known():
    rng = np.random.default_rng(1)
    inside = _evidence(rng.normal(10, 1, 300), None, "in")
    outside = _evidence(rng.normal(0, 1, 300), None, "out")
    known, unknown = _evidence(rng.normal(12, 1, 500), None, "k"), _evidence(rng.normal(8, 1, 200), None, "u")
    rule = fit_rule("m", "bird", inside, outside, known, unknown)
    assert rule.score == "max_logit"  # no gate given
    assert np.quantile(known.half(False).own, 0.05) == pytest.approx(rule.novelty_threshold)
    assert rule.figures["open_set"]["known_photos"] == int(held_out_half(known.ids).sum())
    assert rule.figures["open_set"]["auroc"] > 0.9


def test_verdicts():
    rule = ScopeRule("inat_bird", "bird", "max_logit", threshold=5.0, novelty_threshold=8.0)
    out = check_scope(rule, np.array([1.0, 4.0, 20.0]), background=2)
    assert (out.in_scope, out.score, out.known_species) == (False, 4.0, None)
    assert out.explanation == "This does not look like a bird: this bird model can only name birds."
    unknown = check_scope(rule, np.array([6.0, 1.0, 0.0]), background=2)
    assert (unknown.in_scope, unknown.known_species) == (True, False)
    known = check_scope(rule, np.array([9.0, 1.0, 0.0]), background=2)
    assert (known.in_scope, known.known_species, known.novelty_score) == (True, True, 9.0)


def test_rule_file_round_trip_and_errors(tmp_path):
    rule = ScopeRule("m", "insect", "gate+max_logit", 0.5, 7.0, (1.0, 2.0), (3.0, 4.0), {"chosen": "x"})
    assert load_rule(save_rule(rule, tmp_path / "scope" / "m.json")) == rule
    (tmp_path / "bad.json").write_text('{"model": "m", "subject": "bird", "score": "vibes", "threshold": 1}')
    with pytest.raises(ValueError, match="unknown scope score 'vibes'"):
        load_rule(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="not a scope rule"):
        load_rule(tmp_path / "broken.json")
