"""Does the model learn taxonomy: the measures on hand-built embeddings whose clusters and neighbours are known."""

import numpy as np
import pandas as pd
import pytest

from explorer.represent.embeddings import EmbeddingStore
from explorer.represent.report import aligned
from explorer.represent.taxonomy_fit import (
    bootstrap_interval,
    cluster_agreement,
    knn_hits,
    load_representation,
    rank_fit,
    reduce,
    report_dict,
    write_representation,
)

# Three tight groups of two photos, far apart
GROUPS = np.array([[0, 0, 1], [0, 0.01, 1], [5, 0, 1], [5, 0.01, 1], [0, 5, 1], [0.01, 5, 1]], dtype=np.float32)


def test_clusters_that_follow_the_taxa_agree_exactly():
    ami, nmi = cluster_agreement(GROUPS, ["a", "a", "b", "b", "c", "c"])
    assert (ami, nmi) == (1.0, 1.0)


def test_clusters_across_the_taxa_share_no_information():
    points = GROUPS[:4]
    ami, nmi = cluster_agreement(points, ["a", "b", "a", "b"])  # each cluster holds one of each taxon
    assert nmi == pytest.approx(0.0, abs=1e-12)
    assert ami < 0  # worse than chance by the adjustment
    # one taxon, or one photo per taxon: nothing to measure
    assert all(np.isnan(cluster_agreement(points, ["a"] * 4)))
    assert all(np.isnan(cluster_agreement(points, ["a", "b", "c", "d"])))


def test_leave_one_out_neighbours_by_cosine():
    # angles 0, 10, 90, 100, 180 degrees on the unit circle (scaled: cosine ignores length)
    angles = np.radians([0, 10, 90, 100, 180])
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1) * np.array([[1], [3], [1], [2], [1]])
    labels = ["a", "b", "b", "b", "c"]
    hit, counted = knn_hits(vectors, labels, ks=(1, 2))
    # nearest others: 0->1 (b), 1->0 (a), 2->3 (b), 3->2 (b), 4->3 (b)
    assert hit[1].tolist() == [False, False, True, True, False]
    # two nearest: 0->{1,2}, 1->{0,2}, 2->{3,1}, 3->{2,1}, 4->{3,2}
    assert hit[2].tolist() == [False, True, True, True, False]
    assert counted.tolist() == [False, True, True, True, False]  # a and c have one photo each


def test_bootstrap_interval_of_certain_and_mixed_hits():
    assert bootstrap_interval(np.ones(20)) == (1.0, 1.0)
    assert bootstrap_interval(np.zeros(20)) == (0.0, 0.0)
    low, high = bootstrap_interval(np.array([1] * 50 + [0] * 50))
    assert 0.38 < low < 0.5 < high < 0.62
    assert all(np.isnan(bootstrap_interval(np.zeros(0))))


def test_rank_fit_drops_unknown_taxa_and_counts_singletons():
    labels = np.array(["a", "a", "b", "b", "c", None], dtype=object)
    fit = rank_fit(GROUPS, GROUPS, labels, "genus")
    assert (fit.rank, fit.photos, fit.taxa, fit.queries) == ("genus", 5, 3, 4)
    assert (fit.recall_1, fit.recall_5) == (1.0, 1.0)  # every photo with a partner finds it first
    assert (fit.recall_1_low, fit.recall_1_high) == (1.0, 1.0)


def test_reduce_keeps_small_embeddings():
    assert reduce(GROUPS) is not None and np.array_equal(reduce(GROUPS), GROUPS)


def test_report_round_trip_and_alignment(tmp_path):
    store = EmbeddingStore("m", "abc", np.array(["p2", "p1", "p3"]), np.eye(3, dtype=np.float32))
    table = pd.DataFrame(
        {"photo_id": ["p1", "p2", "p4"], "status": ["ok", "ok", "ok"], "model": "m", "weights_sha256": "abc"}
    )
    rows, vectors = aligned(table, store)
    assert rows["photo_id"].tolist() == ["p1", "p2"]  # p4 has no embedding
    assert vectors.tolist() == [[0, 1, 0], [1, 0, 0]]
    with pytest.raises(ValueError, match="made by other"):
        aligned(table.assign(weights_sha256="zzz"), store)
    fit = rank_fit(GROUPS, GROUPS, ["a", "a", "b", "b", "c", "c"], "species")
    report = report_dict("m", "abc", {"set": 6}, [fit], ["p1", "p2"], [[0.12345, 1], [2, 3]])
    back = load_representation(write_representation(tmp_path / "m.representation.json", report))
    assert back["ranks"] == [fit]
    assert back["map"]["x"].tolist() == [0.123, 2.0]
    assert back["map"]["photo_id"].tolist() == ["p1", "p2"]
    (tmp_path / "bad.representation.json").write_text("{}")
    with pytest.raises(ValueError, match="not a representation report"):
        load_representation(tmp_path / "bad.representation.json")


def test_map_points_colour_the_largest_clades_and_keep_the_views_order():
    from explorer.diagnose.representation import fits_frame, map_points

    report = {"map": {"photo_id": np.array(["p1", "p2", "p3", "p4"]), "x": np.arange(4.0), "y": -np.arange(4.0)}}
    view = pd.DataFrame(
        {
            "photo_id": ["p4", "p2", "p9", "p1", "p3"],  # p9 is not on the map
            "true_family": ["Paridae", "Paridae", "Corvidae", "Strigidae", None],
            "true_name": ["A a", "B b", "C c", "D d", "E e"],
            "true_common_name": ["a", None, "c", "d", "e"],
            "pred_name": ["A a", "X x", "C c", "D d", "E e"],
            "confidence": [0.9, 0.5, 0.7, 0.25, 0.333],
            "correct_1": [True, False, True, True, True],
        }
    )
    points = map_points(view, report, "family", coloured=1)
    assert points["photo_id"].tolist() == ["p4", "p2", "p1", "p3"]
    assert points["x"].tolist() == [3.0, 1.0, 0.0, 2.0]
    assert points["clade"].tolist() == ["Paridae", "Paridae", "other", "other"]  # (unknown) is grey too
    assert points["wrong"].tolist() == [False, True, False, False]
    assert points["hover"].iloc[1] == "B b<br>family: Paridae<br>top-1: X x 50.0 %"
    assert points["hover"].iloc[0] == "A a (a)<br>family: Paridae<br>top-1: A a 90.0 %"
    assert points.attrs["on_map"] == 4
    fit = rank_fit(GROUPS, GROUPS, ["a", "a", "b", "b", "c", "c"], "species")
    genus = rank_fit(GROUPS, GROUPS, ["a", "a", "a", "a", "c", "c"], "genus")
    frame = fits_frame({"t2": {"ranks": [fit, genus]}, "t1": {"ranks": [fit]}})
    assert frame[["rank", "table"]].values.tolist() == [["genus", "t2"], ["species", "t1"], ["species", "t2"]]
    assert frame["Recall@1"].tolist() == ["1.000 (1.000–1.000)"] * 3


def test_the_map_draws_a_fixed_sample_beyond_its_limit_and_a_photo_drawn_stays_drawn():
    """60 photos on the map, at most 10 drawn: the same 10 every time, in the view's order; a narrower view draws
    every photo of that sample it holds (and others up to the limit); the colours are chosen over all 60."""
    from explorer.diagnose.representation import map_points

    ids = [f"p{i:02d}" for i in range(60)]
    report = {"map": {"photo_id": np.array(ids), "x": np.arange(60.0), "y": np.zeros(60)}}
    view = pd.DataFrame(
        {
            "photo_id": ids,
            "true_family": ["Paridae"] * 40 + ["Corvidae"] * 20,
            "true_name": ["A a"] * 60,
            "true_common_name": [None] * 60,
            "pred_name": ["A a"] * 60,
            "confidence": [0.5] * 60,
            "correct_1": [True] * 60,
        }
    )
    drawn = map_points(view, report, "family", coloured=1, limit=10)
    assert len(drawn) == 10 and drawn.attrs["on_map"] == 60
    assert drawn["photo_id"].tolist() == sorted(drawn["photo_id"])  # the view's order
    assert drawn.equals(map_points(view, report, "family", coloured=1, limit=10))
    assert set(drawn["clade"]) <= {"Paridae", "other"}  # Paridae: the largest of all 60, sample or not
    assert drawn.loc[drawn["photo_id"] < "p40", "clade"].eq("Paridae").all()
    narrower = view[view["photo_id"].isin(set(drawn["photo_id"][:5]) | set(ids[::3]))]
    again = map_points(narrower, report, "family", coloured=1, limit=10)
    assert set(drawn["photo_id"][:5]) <= set(again["photo_id"]) and len(again) == 10
    assert again.attrs["on_map"] == len(narrower)
    assert len(map_points(view, report, "family", limit=None)) == 60
