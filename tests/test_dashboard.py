"""Dashboard computations on the hand-built table whose answers are known (see test_evaluate.CASES)."""

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from test_evaluate import hand_table

from explorer.dashboard import (
    Filters,
    accuracy_by_clade,
    clade_tree,
    compare_models,
    confused_pairs,
    error_rows,
    errors_by_rank,
    filter_table,
    fit_temperature,
    plot_clade_sunburst,
    plot_errors_by_rank,
    plot_reliability,
    plot_rollup_tradeoff,
    reliability,
    rollup_tradeoff,
    summary,
    wilson_interval,
)
from explorer.evaluate import LOGIT_COLUMNS, load_table


@pytest.fixture(scope="module")
def table(tiny_classifier):
    return hand_table(tiny_classifier)


def test_errors_by_rank_shares(table):
    counts = errors_by_rank(table).set_index("rank")
    assert counts.loc["correct", "photos"] == 1 and counts.loc["kingdom", "photos"] == 1
    assert counts.loc["species", "share_of_photos"] == pytest.approx(1 / 6)
    assert counts.loc["species", "share_of_errors"] == pytest.approx(1 / 5)
    assert np.isnan(counts.loc["correct", "share_of_errors"])


def test_filters(table):
    assert len(filter_table(table, Filters(outcome="correct"))) == 1
    assert len(filter_table(table, Filters(clade_rank="genus", clade_name="Poecile"))) == 3
    assert len(filter_table(table, Filters(exclude_noted=True))) == 5
    assert len(filter_table(table, Filters(in_vocab_only=True))) == 5
    assert filter_table(table, Filters(min_confidence=0.99)).empty
    with pytest.raises(ValueError, match="outcome must be one of"):
        filter_table(table, Filters(outcome="maybe"))
    with pytest.raises(ValueError, match="confidence range is empty"):
        filter_table(table, Filters(min_confidence=0.8, max_confidence=0.2))


def test_summary_counts(table):
    stats = summary(table)
    assert stats["photos"] == 6 and stats["out_of_vocabulary"] == 1 and stats["noted"] == 1
    assert stats["top1"] == pytest.approx(1 / 5)


def test_wilson_interval_small_counts_are_wide():
    low, high = wilson_interval(np.array([3, 300]), np.array([3, 300]))
    assert low[0] < 0.5 < high[0] <= 1.0 and low[1] > 0.98


def test_accuracy_by_clade_ranks_by_lower_bound(table):
    clades = accuracy_by_clade(table, "genus")
    poecile = clades.set_index("clade").loc["Poecile"]
    assert poecile["photos"] == 3 and poecile["correct"] == 1
    assert clades["ci_low"].is_monotonic_decreasing


def test_confused_pairs(table):
    pairs = confused_pairs(table)
    assert len(pairs) == 4  # the out-of-vocabulary oak is not a confusion between known classes
    assert set(pairs["divergence_rank"]) == {"species", "genus", "order", "no prediction"}


def test_reliability_and_temperature(table):
    bins, ece = reliability(table)
    assert bins["photos"].sum() == 5 and 0 <= ece <= 1
    assert fit_temperature(table)["held_out_photos"] == 0  # too few photos: says so instead of fitting noise


def test_temperature_fixes_overconfidence():
    rng = np.random.default_rng(0)
    n = 400
    logits = rng.normal(0, 1, (n, 20)) * 6  # sharp logits: over-confident
    logits.sort(axis=1)
    logits = logits[:, ::-1]
    true_is_top = rng.random(n) < 0.6
    rows = pd.DataFrame(
        {
            "photo_id": [f"p{i}" for i in range(n)],
            "status": "ok",
            "in_vocab": True,
            "true_logit": np.where(true_is_top, logits[:, 0], logits[:, 1]),
            "correct_1": true_is_top,
            "calibration_half": np.arange(n) % 2 == 0,
        }
    )
    for i, column in enumerate(LOGIT_COLUMNS):
        rows[column] = logits[:, i]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    rows["confidence"] = (probs / probs.sum(1, keepdims=True))[:, 0]
    fit = fit_temperature(rows)
    assert fit["temperature"] > 1.5 and fit["ece_after"] < fit["ece_before"]


def test_rollup_tradeoff(table):
    tradeoff = rollup_tradeoff(table, [0.5, 0.99]).set_index("threshold")
    ranks = [c for c in tradeoff.columns if c.startswith("at_")]
    assert np.allclose(tradeoff[ranks].sum(axis=1) + tradeoff["abstained"], 1.0)
    assert tradeoff.loc[0.99, "at_species"] <= tradeoff.loc[0.5, "at_species"]


def test_compare_models(table):
    other = table.copy()
    other["pred_name"] = table["true_name"]
    other["correct_1"] = table["in_vocab"]
    per_clade, disagree = compare_models(table, other, "family")
    assert (per_clade["difference"] >= 0).all() and len(disagree) == 5


def test_error_rows_most_confident_first(table):
    errors = error_rows(table)
    assert len(errors) == 5 and errors["confidence"].is_monotonic_decreasing


def test_empty_table_gives_empty_charts(table):
    empty = table.iloc[0:0]
    assert errors_by_rank(empty)["photos"].sum() == 0
    assert accuracy_by_clade(empty, "family").empty and confused_pairs(empty).empty
    assert np.isnan(summary(empty)["top1"])
    for figure in (
        plot_errors_by_rank(errors_by_rank(empty)),
        plot_clade_sunburst(empty),
        plot_reliability(*reliability(empty)),
        plot_rollup_tradeoff(rollup_tradeoff(empty)),
    ):
        assert figure.to_dict()["data"] is not None


def test_clade_tree_nests_and_counts(table):
    tree = clade_tree(table).set_index("id")
    assert tree.loc["Aves", "photos"] == 5 and tree.loc["Magnoliopsida", "photos"] == 1
    assert tree.loc["Aves/Passeriformes/Paridae/Poecile", "parent"] == "Aves/Passeriformes/Paridae"
    assert tree.loc["Aves/Passeriformes/Paridae/Poecile", "accuracy"] == pytest.approx(1 / 3)


def brute_force_tradeoff(table, thresholds):
    """Row by row: the first rank (species, genus, ...) whose probability reaches t answers."""
    from explorer.evaluate import ROLLUP_RANKS

    rows = []
    for t in thresholds:
        answered, right = 0, 0
        for _, row in table[table["status"] == "ok"].iterrows():
            probs = [0.0 if row["pred_is_background"] else row["confidence"]]
            probs += [row[f"rollup_prob_{r}"] for r in ROLLUP_RANKS]
            goods = [row["correct_1"]] + [row[f"rollup_correct_{r}"] for r in ROLLUP_RANKS]
            first = next((i for i, p in enumerate(probs) if p >= t), None)
            if first is not None:
                answered += 1
                right += bool(goods[first])
        rows.append((answered, right))
    return rows


def test_rollup_tradeoff_matches_brute_force(table):
    thresholds = [0.3, 0.5, 0.7, 0.9, 0.99]
    fast = rollup_tradeoff(table, thresholds)
    n = (table["status"] == "ok").sum()
    for (answered, right), row in zip(brute_force_tradeoff(table, thresholds), fast.itertuples()):
        assert row.answered == pytest.approx(answered / n)
        assert row.right_when_answered == pytest.approx(right / max(answered, 1))


def test_rollup_tradeoff_matches_brute_force_on_shipped_table():
    from conftest import ROOT

    from explorer.evaluate import load_table

    real = load_table(ROOT / "assets" / "eval" / "inat_bird.parquet").iloc[::20]  # ~200 real rows
    thresholds = [0.5, 0.78, 0.95]
    fast = rollup_tradeoff(real, thresholds)
    n = (real["status"] == "ok").sum()
    for (answered, right), row in zip(brute_force_tradeoff(real, thresholds), fast.itertuples()):
        assert row.answered == pytest.approx(answered / n) and row.right_when_answered == pytest.approx(
            right / answered
        )


def geo_table(table):
    """The hand table with places: photo 0 (right) broken by the prior, photo 1 (wrong) fixed, photo 2 changed
    from one wrong answer to another, photo 3 untouched, photo 4 out of vocabulary, photo 5 without a place."""
    t = table.copy()
    t["lat"] = [1.0, 2.0, 3.0, 4.0, 5.0, np.nan]
    t["lon"] = 0.0
    t["obs_date"] = ""
    t["location_source"] = "test"
    t["geo_correct_1"] = [False, True, False, t["correct_1"].iloc[3], False, t["correct_1"].iloc[5]]
    t["geo_pred_class_index"] = t["pred_class_index"].to_numpy().copy()
    t.loc[0, "geo_pred_class_index"] = t.loc[0, "pred_class_index"] + 1
    t.loc[1, "geo_pred_class_index"] = t.loc[1, "true_class_index"]
    t.loc[2, "geo_pred_class_index"] = t.loc[2, "pred_class_index"] + 1
    t["geo_pred_name"] = "x"
    return t


def test_geo_effect_counts_fixes_breaks_and_changes(table):
    from explorer.dashboard import geo_effect, geo_effect_by_clade, geo_rows, has_geo

    assert not has_geo(table)
    t = geo_table(table)
    assert has_geo(t)
    effect = geo_effect(t)
    in_vocab_placed = int((t["in_vocab"] & t["lat"].notna()).sum())
    assert effect["photos_with_place"] == in_vocab_placed
    assert (effect["fixed"], effect["broke"], effect["changed"], effect["wrong_to_other_wrong"]) == (1, 1, 3, 1)
    per_family = geo_effect_by_clade(t, "family")
    assert per_family["fixed"].sum() == 1 and per_family["broke"].sum() == 1
    assert (per_family["net"] == per_family["fixed"] - per_family["broke"]).all()
    assert geo_rows(t, "fixed")["photo_id"].tolist() == [t.loc[1, "photo_id"]]
    assert geo_rows(t, "broke")["photo_id"].tolist() == [t.loc[0, "photo_id"]]
    family = t.loc[1, "true_family"]
    assert len(geo_rows(t, "fixed", "family", family)) == 1
    assert len(geo_rows(t, "fixed", "family", "Nonexistidae")) == 0
    with pytest.raises(ValueError, match="kind"):
        geo_rows(t, "improved")


@pytest.mark.skipif(not (ROOT / "assets" / "eval" / "inat_bird.parquet").is_file(), reason="shipped table")
def test_shipped_bird_table_has_held_out_places_and_geo_counts():
    from explorer.dashboard import geo_effect

    effect = geo_effect(load_table(ROOT / "assets" / "eval" / "inat_bird.parquet"))
    assert effect["photos_with_place"] > 2000
    assert set(effect["location_sources"]) == {"held-out eBird record of the true species"}
    assert effect["fixed"] > 0 and effect["broke"] > 0
