"""Is the label wrong? label_issue_score and its evidence on hand-built tables, with exact numbers; confident
learning against cleanlab's own; the planted-errors experiment; the tool that adds the columns in place."""

import numpy as np
import pandas as pd
import pytest

from explorer.diagnose.label_issues import (
    LABEL_ISSUE_COLUMNS,
    auroc,
    clade_levels,
    confident_learning,
    label_issue_columns,
    nearest_neighbours,
    with_label_issues,
)
from explorer.represent.embeddings import EmbeddingStore

# four classes: two species of one genus (0, 1), one of another genus of the same family (2), one of another order (3)
LINEAGES = {
    0: dict(species="Aa a", genus="Aa", family="F1", order="O1"),
    1: dict(species="Aa b", genus="Aa", family="F1", order="O1"),
    2: dict(species="Bb c", genus="Bb", family="F1", order="O1"),
    3: dict(species="Cc d", genus="Cc", family="F2", order="O2"),
}


def hand_table(rows: list[tuple[int, list[float]]]) -> pd.DataFrame:
    """A table of photos (label, probabilities over the four classes): the top 4 stored, as the real tables."""
    records = []
    for i, (label, probs) in enumerate(rows):
        probs = np.asarray(probs, float)
        order = np.argsort(-probs, kind="stable")
        top = int(order[0])
        records.append(
            {
                "photo_id": f"p{i}",
                "photo_hash": f"h{i}",
                "status": "ok",
                "true_class_index": label,
                "true_prob": probs[label],
                "pred_class_index": top,
                "topk_class_index": order.tolist(),
                "topk_name": [LINEAGES[c]["species"] for c in order],
                "topk_prob": probs[order].tolist(),
                **{f"true_{r}": LINEAGES[label][r] for r in ("species", "genus", "family", "order")},
                **{f"pred_{r}": LINEAGES[top][r] for r in ("species", "genus", "family", "order")},
            }
        )
    return pd.DataFrame(records)


def test_clade_levels_are_means_drawn_to_the_median_clade():
    clades = pd.Series(["a", "a", "b", "c", None])
    levels = clade_levels(clades, np.array([0.8, 0.6, 0.2, np.nan, 0.9]), prior_weight=1.0)
    # means: a 0.7 (2 photos), b 0.2 (1); median 0.45; c has no value: not a clade here
    assert levels.to_dict() == pytest.approx({"a": (1.4 + 0.45) / 3, "b": (0.2 + 0.45) / 2})
    assert clade_levels(clades, np.array([0.8, 0.6, 0.2, 0.1, 0.9]), prior_weight=0.0)["a"] == pytest.approx(0.7)


def test_the_model_alone_scores_a_label_by_its_support_at_four_ranks():
    table = hand_table(
        [
            (0, [0.9, 0.05, 0.03, 0.02]),  # right, confident
            (0, [0.7, 0.1, 0.1, 0.1]),  # right
            (1, [0.1, 0.8, 0.05, 0.05]),  # right
            (1, [0.6, 0.3, 0.05, 0.05]),  # the model says 0, same genus: doubt at species only
            (2, [0.05, 0.05, 0.85, 0.05]),  # right
            (3, [0.02, 0.03, 0.05, 0.9]),  # right
            (3, [0.9, 0.04, 0.04, 0.02]),  # the model says 0, another order: doubt at every rank
        ]
    )
    got = label_issue_columns(table, None, prior_weight=0.0)
    levels = {0: 0.8, 1: (0.8 + 0.3) / 2, 2: 0.85, 3: (0.9 + 0.02) / 2}
    assert got["label_class_level"].tolist() == pytest.approx([levels[c] for c in table["true_class_index"]])
    # row 3: species 0.3 / 0.55; genus, family, order: its top-1 is in the label's clade (full support)
    assert got.at[3, "label_issue_score"] == pytest.approx(1 - (0.3 / 0.55 + 3) / 4, rel=1e-6)
    assert got.at[3, "label_issue_rank"] == ""  # 0.545 >= one half: not doubtful at species either
    # row 6: species 0.02 / 0.46; genus Cc and family F2: the label alone (0.02) against their level (the same
    # photos: 0.46); order O2: likewise
    assert got.at[6, "label_issue_score"] == pytest.approx(1 - 0.02 / 0.46, rel=1e-6)
    assert got.at[6, "label_issue_rank"] == "order"
    assert got.loc[[0, 1, 2, 4, 5], "label_issue_score"].tolist() == pytest.approx([0, 0, 0, 0, 0])
    assert got["label_neighbours"].map(len).tolist() == [0] * 7  # no embeddings: no neighbours


def test_a_label_wrong_at_species_scores_less_than_one_wrong_at_order():
    """Taxonomy-aware: the same probability of the label, but its genus supported or not."""
    base = [(c, np.eye(4)[c] * 0.9 + 0.025) for c in (0, 0, 1, 1, 2, 2, 3, 3)]
    at_species = hand_table([*base, (1, [0.88, 0.04, 0.04, 0.04])])  # labelled Aa b, looks like Aa a
    at_order = hand_table([*base, (3, [0.88, 0.04, 0.04, 0.04])])  # labelled Cc d, looks like Aa a
    species = label_issue_columns(at_species, None, prior_weight=0.0).iloc[-1]
    order = label_issue_columns(at_order, None, prior_weight=0.0).iloc[-1]
    assert species["label_issue_rank"] == "species" and order["label_issue_rank"] == "order"
    assert species["label_issue_score"] == pytest.approx(0.25 * (1 - 0.04 / ((0.925 + 0.925 + 0.04) / 3)), rel=1e-6)
    assert order["label_issue_score"] > 3 * species["label_issue_score"]


def test_the_neighbours_witness_out_of_what_the_clade_allows():
    """Six photos on a line in 2-d; each has 2 neighbours (k = 2 here through the store's size)."""
    table = hand_table([(c, np.eye(4)[c] * 0.9 + 0.025) for c in (0, 0, 0, 1, 3, 3)])
    vectors = np.array([[1, 0.0], [1, 0.1], [1, 0.2], [1, 0.3], [0, 1], [0.1, 1]], np.float32)
    store = EmbeddingStore("m", "w", table["photo_id"].to_numpy(str), vectors)
    found = nearest_neighbours(store.unit, np.ones(6, bool), k=2)
    # cosine, not distance: [1, .2] is nearer [1, .3] (0.9956) than [1, .1] (0.9952)
    assert found.positions.tolist() == [[1, 2], [2, 0], [3, 1], [2, 1], [5, 3], [4, 3]]
    got = label_issue_columns(table, store)
    assert got.at[0, "label_neighbours"] == ["p1", "p2", "p3", "p5", "p4"]  # up to 10: the 5 others
    # photo 3 (the only Aa b): no other photo of its species, so no species evidence; its genus Aa has 3 others,
    # and its 10 neighbours (all 5 others here) hold 3 of them: 3/10 out of the 3/10 allowed -> full support
    assert got.at[3, "label_issue_score"] == pytest.approx(0.0)
    # the store's order is not the table's: rows are matched by photo_id
    shuffled = EmbeddingStore("m", "w", table["photo_id"].to_numpy(str)[::-1], vectors[::-1])
    assert label_issue_columns(table, shuffled)["label_neighbours"].tolist() == got["label_neighbours"].tolist()


def test_the_neighbour_search_in_chunks_is_the_whole_search():
    rng = np.random.default_rng(3)
    unit = rng.normal(size=(50, 8)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    usable = np.ones(50, bool)
    usable[[4, 9]] = False
    whole, chunked = nearest_neighbours(unit, usable, k=5, chunk=1000), nearest_neighbours(unit, usable, k=5, chunk=7)
    assert np.array_equal(whole.positions, chunked.positions)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    sims[:, ~usable] = -np.inf
    assert whole.positions[0].tolist() == np.argsort(-sims[0])[:5].tolist()
    assert whole.positions[4].tolist() == [-1] * 5 and 4 not in whole.positions and 9 not in whole.positions


def test_confident_learning_is_cleanlabs_off_diagonal():
    cleanlab = pytest.importorskip("cleanlab.count")
    rng = np.random.default_rng(7)
    labels = np.repeat(np.arange(4), 12)
    probs = rng.dirichlet(np.ones(4) * 0.6, size=len(labels))
    probs[np.arange(len(labels)), labels] += 0.8  # mostly right,
    probs /= probs.sum(axis=1, keepdims=True)
    flip = rng.choice(len(labels), 6, replace=False)
    labels[flip] = (labels[flip] + 2) % 4  # with six labels wrong
    table = hand_table(list(zip(labels, probs)))
    thresholds = clade_levels(table["true_class_index"], table["true_prob"].to_numpy(), prior_weight=0.0)
    flag, guess = confident_learning(table, thresholds, float(thresholds.median()))
    _, off_diagonal = cleanlab.compute_confident_joint(labels, probs, return_indices_of_off_diagonals=True)
    assert np.flatnonzero(flag).tolist() == sorted(off_diagonal.tolist())
    assert np.flatnonzero(flag).tolist() == [0, 13, 22, 42] and (guess[flag] != labels[flag]).all()


def test_unknown_species_and_unreadable_photos_are_not_scored():
    table = hand_table([(0, [0.9, 0.05, 0.03, 0.02]), (1, [0.1, 0.8, 0.05, 0.05]), (0, [0.9, 0.05, 0.03, 0.02])])
    table.loc[1, ["true_class_index", "true_prob"]] = [-1, np.nan]
    table.loc[2, "status"] = "unreadable"
    got = label_issue_columns(table, None)
    assert got["label_issue_score"].isna().tolist() == [False, True, True]
    assert got["label_cl_guess"].tolist()[1:] == [-1, -1] and not got["label_cl_flag"][1:].any()


def test_with_label_issues_replaces_the_columns_and_keeps_the_rest():
    table = hand_table([(0, [0.9, 0.05, 0.03, 0.02]), (3, [0.9, 0.04, 0.04, 0.02])])
    once = with_label_issues(table, None)
    twice = with_label_issues(once, None)
    assert list(twice.columns) == [*table.columns, *LABEL_ISSUE_COLUMNS]
    pd.testing.assert_frame_equal(once, twice)


def test_auroc_counts_ties_half_and_leaves_out_nans():
    assert auroc(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0])) == 1.0
    assert auroc(np.array([0.5, 0.5, 0.5, np.nan]), np.array([1, 0, 0, 1])) == 0.5
    assert auroc(np.array([0.1, 0.9, 0.3]), np.array([1, 0, 0])) == 0.0
    assert np.isnan(auroc(np.array([0.1, 0.2]), np.array([0, 0])))


def test_planted_label_errors_are_found_on_a_hand_built_table():
    from explorer.diagnose.label_issues import class_lineages
    from explorer.diagnose.label_planting import plant_label_errors, planted_experiment

    rng = np.random.default_rng(0)
    rows = [(c, np.eye(4)[c] * 0.85 + rng.uniform(0, 0.05, 4)) for c in np.repeat(np.arange(4), 25)]
    table = hand_table(rows)
    planted_table, planted = plant_label_errors(table, class_lineages(table, None), share=0.08, seed=1)
    assert planted.sum() == 8
    moved = planted_table.loc[planted, "true_class_index"].to_numpy() != table.loc[planted, "true_class_index"]
    assert (
        moved.all()
        and (planted_table.loc[~planted, "true_class_index"] == table.loc[~planted, "true_class_index"]).all()
    )
    result = planted_experiment(table, None, None, share=0.08, seed=1)
    assert (result.photos, result.planted) == (100, 8)
    assert result.auroc == 1.0 and result.flagged_clean == 0.0
    # flagged (>= 0.5): exactly the labels moved to another order; those moved within the family score less
    across = (planted_table.loc[planted, "true_order"].to_numpy() != table.loc[planted, "true_order"].to_numpy()).sum()
    assert result.flagged_planted == across / 8 == 3 / 8


def test_the_tool_adds_the_columns_in_place_and_refuses_what_it_cannot_do(tmp_path, capsys):
    from explorer.represent.embeddings import embeddings_path, save_embeddings
    from explorer.tools.label_columns import main

    table = hand_table([(c, np.eye(4)[c] * 0.9 + 0.025) for c in (0, 0, 1, 1, 2, 3)])
    table["true_name"] = table["true_species"]
    table.to_parquet(tmp_path / "mine.parquet")
    vectors = np.eye(6, 3, dtype=np.float32) + 0.1
    save_embeddings(
        EmbeddingStore("m", "w", table["photo_id"].to_numpy(str), vectors), embeddings_path(tmp_path / "mine.parquet")
    )
    main(["--eval-dir", str(tmp_path)])
    assert "mine.parquet: 6 photos scored (neighbours from m's embeddings)" in capsys.readouterr().out
    written = pd.read_parquet(tmp_path / "mine.parquet")
    assert set(LABEL_ISSUE_COLUMNS) <= set(written.columns) and written["label_neighbours"].map(len).tolist() == [5] * 6
    with pytest.raises(SystemExit) as stopped:
        main(["--eval-dir", str(tmp_path / "none")])
    assert stopped.value.code == 2 and "no table to extend" in capsys.readouterr().err
