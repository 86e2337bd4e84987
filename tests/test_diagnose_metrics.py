"""Dashboard metrics on the hand-built table: exact counts and shares."""

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from explorer.diagnose.calibration import reliability
from explorer.diagnose.figures import plot_clade_sunburst, plot_errors_by_rank, plot_reliability, plot_rollup_tradeoff
from explorer.diagnose.metrics import (
    DIVERGENCE_ORDER,
    Filters,
    accuracy_by_clade,
    clade_tree,
    compare_models,
    confused_pairs,
    error_rows,
    errors_by_rank,
    filter_table,
    rollup_tradeoff,
    summary,
    wilson_interval,
)
from explorer.diagnose.schema import load_table


def test_errors_by_rank_shares(hand_table):
    counts = errors_by_rank(hand_table).set_index("rank")
    assert counts.loc["correct", "photos"] == 1 and counts.loc["kingdom", "photos"] == 1
    assert counts.loc["species", "share_of_photos"] == pytest.approx(1 / 6)
    assert counts.loc["species", "share_of_errors"] == pytest.approx(1 / 5)
    assert np.isnan(counts.loc["correct", "share_of_errors"])


def test_filters(hand_table):
    assert len(filter_table(hand_table, Filters(outcome="correct"))) == 1
    assert len(filter_table(hand_table, Filters(clade_rank="genus", clade_name="Poecile"))) == 3
    assert len(filter_table(hand_table, Filters(exclude_noted=True))) == 5
    assert len(filter_table(hand_table, Filters(in_vocab_only=True))) == 5
    assert filter_table(hand_table, Filters(min_confidence=0.99)).empty
    with pytest.raises(ValueError, match="outcome must be one of"):
        filter_table(hand_table, Filters(outcome="maybe"))
    with pytest.raises(ValueError, match="confidence range is empty"):
        filter_table(hand_table, Filters(min_confidence=0.8, max_confidence=0.2))


def test_summary_counts(hand_table):
    stats = summary(hand_table)
    assert stats.photos == 6 and stats.out_of_vocabulary == 1 and stats.noted == 1
    assert stats.top1 == pytest.approx(1 / 5)


def test_wilson_interval_small_counts_are_wide():
    low, high = wilson_interval(np.array([3, 300]), np.array([3, 300]))
    assert low[0] < 0.5 < high[0] <= 1.0 and low[1] > 0.98


def test_accuracy_by_clade_ranks_by_lower_bound(hand_table):
    clades = accuracy_by_clade(hand_table, "genus")
    poecile = clades.set_index("clade").loc["Poecile"]
    assert poecile["photos"] == 3 and poecile["correct"] == 1
    assert clades["ci_low"].is_monotonic_decreasing


def test_confused_pairs(hand_table):
    pairs = confused_pairs(hand_table)
    assert len(pairs) == 4  # the out-of-vocabulary oak is not a confusion between known classes
    assert set(pairs["divergence_rank"]) == {"species", "genus", "order", "no prediction"}


def test_rollup_tradeoff(hand_table):
    tradeoff = rollup_tradeoff(hand_table, [0.5, 0.99]).set_index("threshold")
    ranks = [c for c in tradeoff.columns if c.startswith("at_")]
    assert np.allclose(tradeoff[ranks].sum(axis=1) + tradeoff["abstained"], 1.0)
    assert tradeoff.loc[0.99, "at_species"] <= tradeoff.loc[0.5, "at_species"]


def test_compare_models_counts_only_photos_both_models_can_name(hand_table):
    other = hand_table.copy()
    other["pred_name"] = hand_table["true_name"]
    other["correct_1"] = hand_table["in_vocab"]
    other.loc[1, "in_vocab"] = False  # the second model has no class for photo 1's species
    compared = compare_models(hand_table, other.drop(index=[2]), "family")  # nor photo 2 at all
    # six photos: photo 4 is out of the first model's vocabulary, photo 1 of the second's, photo 2 not shared
    assert (compared.compared, compared.not_shared, compared.out_of_vocabulary) == (3, 1, 2)
    assert compared.per_clade["photos"].sum() == 3 and compared.per_clade["accuracy_b"].tolist() == [1.0] * len(
        compared.per_clade
    )
    assert sorted(compared.disagree["photo_id"]) == sorted(hand_table.loc[[3, 5], "photo_id"])
    # errors side by side on photos 0, 3, 5: the first model leaves the truth at order (3) and says nothing (5)
    ranks = compared.by_rank.set_index("rank")
    assert ranks["errors_a"].to_dict() == {r: int(r in ("order", "no prediction")) for r in ranks.index}
    assert ranks.loc["order", "share_a"] == 0.5 and ranks["errors_b"].sum() == 2  # b copied a's ranks
    view = hand_table.iloc[[0, 3]]  # the filters of the main table narrow the comparison
    assert compare_models(view, other, "family").compared == 2


def test_compare_models_counts_two_names_of_one_species_as_agreement(hand_table):
    """A hand-built pair of tables: model a says *Anas strepera*, model b *Mareca strepera* (the Gadwall under its
    accepted name) on photo 0, *Picoides pubescens* against *Dryobates pubescens* on photo 1, and two different
    species on photo 3: one disagreement, not three."""
    a = hand_table.copy()
    b = hand_table.copy()
    a["pred_name"] = ["Anas strepera", "Picoides pubescens", "Poecile gambeli", "Athene cunicularia", "x", "y"]
    b["pred_name"] = ["Mareca strepera", "Dryobates pubescens", "Poecile gambeli", "Strix varia", "x", "y"]
    compared = compare_models(a, b, "family")
    assert compared.compared == 5  # photo 4 is out of vocabulary
    assert compared.disagree["photo_id"].tolist() == [hand_table.loc[3, "photo_id"]]


def test_error_rows_most_confident_first(hand_table):
    errors = error_rows(hand_table)
    assert len(errors) == 5 and errors["confidence"].is_monotonic_decreasing


def test_empty_table_gives_empty_charts(hand_table):
    empty = hand_table.iloc[0:0]
    assert errors_by_rank(empty)["photos"].sum() == 0
    assert accuracy_by_clade(empty, "family").empty and confused_pairs(empty).empty
    assert np.isnan(summary(empty).top1)
    bars = plot_errors_by_rank(errors_by_rank(empty)).data[0]
    assert list(bars.x) == DIVERGENCE_ORDER[1:] and list(bars.y) == [0.0] * 9  # every error rank, none counted
    assert len(plot_clade_sunburst(empty).data[0].ids) == 0
    diagonal, curve = plot_reliability(*reliability(empty)).data
    assert list(diagonal.x) == [0, 1] and np.isnan(np.asarray(curve.y, dtype=float)).all()  # no photo in any bin
    tradeoff = plot_rollup_tradeoff(rollup_tradeoff(empty)).data
    assert len(tradeoff) == 9 and all(np.isnan(np.asarray(t.y, dtype=float)).all() for t in tradeoff)


def test_clade_tree_nests_and_counts(hand_table):
    tree = clade_tree(hand_table).set_index("id")
    assert tree.loc["Aves", "photos"] == 5 and tree.loc["Magnoliopsida", "photos"] == 1
    assert tree.loc["Aves/Passeriformes/Paridae/Poecile", "parent"] == "Aves/Passeriformes/Paridae"
    assert tree.loc["Aves/Passeriformes/Paridae/Poecile", "accuracy"] == pytest.approx(1 / 3)


def brute_force_tradeoff(table, thresholds):
    """Row by row: the first rank (species, genus, ...) whose probability reaches t answers."""
    from explorer.diagnose.schema import ROLLUP_RANKS

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


def test_rollup_tradeoff_matches_brute_force(hand_table):
    thresholds = [0.3, 0.5, 0.7, 0.9, 0.99]
    fast = rollup_tradeoff(hand_table, thresholds)
    n = (hand_table["status"] == "ok").sum()
    for (answered, right), row in zip(brute_force_tradeoff(hand_table, thresholds), fast.itertuples()):
        assert row.answered == pytest.approx(answered / n)
        assert row.right_when_answered == pytest.approx(right / max(answered, 1))


def test_rollup_tradeoff_matches_brute_force_on_shipped_table():

    real = load_table(ROOT / "assets" / "eval" / "inat_bird.parquet").iloc[::20]  # ~200 real rows
    thresholds = [0.5, 0.78, 0.95]
    fast = rollup_tradeoff(real, thresholds)
    n = (real["status"] == "ok").sum()
    for (answered, right), row in zip(brute_force_tradeoff(real, thresholds), fast.itertuples()):
        assert row.answered == pytest.approx(answered / n) and row.right_when_answered == pytest.approx(
            right / answered
        )


def test_compare_models_matches_photos_by_content_whatever_their_ids(hand_table):
    """The same six files under other ids (another folder, another manifest): matched by their content hashes;
    without hashes in one table, by photo id (so nothing matches here, and the text says which it was)."""
    a = hand_table.assign(photo_hash=[f"h{i}" for i in range(6)])
    b = a.assign(photo_id=[f"elsewhere:{i}.jpg" for i in range(6)])
    b.loc[0, "photo_hash"] = None  # a file that could not be hashed falls back to its id: not matched here
    compared = compare_models(a, b, "family")
    assert (compared.matched_by, compared.compared, compared.not_shared) == ("photo_hash", 4, 1)
    legacy = compare_models(a, b.drop(columns="photo_hash"), "family")
    assert (legacy.matched_by, legacy.compared, legacy.not_shared) == ("photo_id", 0, 6)


def test_compare_models_counts_errors_fixes_breaks_and_mcnemar(hand_table):
    """Of the five photos both models can name (CASES: 0, 1, 2, 3, 5), model a gets only photo 0 right; b gets 1, 3
    and 5 right: b fixes 3 and breaks 1. McNemar's exact test on 3 against 1: p = 2 * (1 + 4) / 16."""
    from explorer.diagnose.metrics import mcnemar_exact

    b = hand_table.copy()
    b["correct_1"] = [False, True, False, True, False, True]
    compared = compare_models(hand_table, b, "family")
    assert hand_table["correct_1"].tolist() == [True, False, False, False, False, False]
    assert (compared.compared, compared.errors_a, compared.errors_b) == (5, 4, 2)
    assert (compared.fixed, compared.broke, compared.mcnemar_p) == (3, 1, pytest.approx(10 / 16))
    assert mcnemar_exact(0, 5) == 2 / 32
    assert mcnemar_exact(1, 9) == pytest.approx(2 * (1 + 10) / 1024)  # P(X <= 1), X ~ Binomial(10, 1/2)
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9) and mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(400, 600) == pytest.approx(2.5e-10, rel=0.2)  # large n, no overflow


def test_the_sunburst_leaves_out_its_deepest_rings_beyond_its_wedge_limit_and_says_so():
    """1 class, 1 order, 2 families, 6 genera: 10 wedges. With a limit of 4 the genera go (4 wedges: class, order,
    two families), with 3 the families too; the title names what was left out; at 10 nothing is."""
    table = pd.DataFrame(
        {
            "true_class": ["Aves"] * 6,
            "true_order": ["Passeriformes"] * 6,
            "true_family": ["Paridae"] * 3 + ["Corvidae"] * 3,
            "true_genus": ["Poecile", "Parus", "Periparus", "Corvus", "Pica", "Garrulus"],
            "correct_1": [True, False, True, True, True, False],
        }
    )
    everything = plot_clade_sunburst(table, limit=10)
    assert len(everything.data[0].ids) == 10
    assert everything.layout.title.text == "Accuracy per clade (class → order → family → genus)"
    four = plot_clade_sunburst(table, limit=4)
    assert sorted(four.data[0].ids) == sorted(
        ["Aves", "Aves/Passeriformes", "Aves/Passeriformes/Paridae", "Aves/Passeriformes/Corvidae"]
    )
    assert four.layout.title.text == "Accuracy per clade (class → order → family)"
    assert (
        four.layout.title.subtitle.text == "Too many to draw, so not drawn: 6 genus wedges. Choose a clade to see them."
    )
    three = plot_clade_sunburst(table, limit=3)
    assert len(three.data[0].ids) == 2 and "2 family wedges, 6 genus wedges" in three.layout.title.subtitle.text
    assert everything.layout.title.subtitle.text is None
