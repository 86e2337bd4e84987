"""The evaluation table built from hand-made logits whose answers are known (see conftest.CASES)."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import CASES

from explorer.diagnose.schema import SCHEMA, load_table, save_table, validate_table
from explorer.diagnose.table import build_eval_table


def test_divergence_ranks_and_correctness(hand_table):
    assert hand_table["divergence_rank"].tolist() == [c[2] for c in CASES]
    assert hand_table["correct_1"].tolist() == [True, False, False, False, False, False]
    assert hand_table["correct_k"].tolist() == [True, True, True, True, False, True]  # top-5 of 5 classes


def test_out_of_vocabulary_kept_and_flagged(hand_table):
    oak = hand_table.iloc[4]
    assert not oak["in_vocab"] and oak["true_class_index"] == -1 and np.isnan(oak["true_prob"])
    assert oak["true_kingdom"] == "Plantae" and oak["pred_kingdom"] == "Animalia"


def test_lineages_and_lca(hand_table):
    row = hand_table.iloc[1]
    assert row["true_family"] == "Paridae" and row["pred_name"] == "Poecile gambeli"
    assert (row["lca_rank"], row["lca_name"]) == ("genus", "Poecile")
    assert hand_table.iloc[3]["lca_rank"] == "class" and pd.isna(hand_table.iloc[4]["lca_rank"])


def test_rollup_columns(hand_table):
    # case 1: Poecile holds nearly all the mass, and it is the true genus
    assert hand_table.iloc[1]["rollup_correct_genus"] and hand_table.iloc[1]["rollup_prob_genus"] > 0.9
    assert not hand_table.iloc[3]["rollup_correct_genus"] and hand_table.iloc[3]["rollup_correct_class"]


def test_schema_validated_on_load(hand_table, tmp_path):
    path = save_table(hand_table, tmp_path / "t.parquet")
    assert list(load_table(path).columns) == list(hand_table.columns)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['confidence', 'true_prob'\]"):
        validate_table(hand_table.drop(columns=["confidence", "true_prob"]))
    assert set(SCHEMA) <= set(hand_table.columns)


def test_row_count_mismatch(tiny_classifier):
    manifest = pd.DataFrame(
        {"path": ["a"], "scientific_name": ["x y"], "common_name": "", "note": "", "source": "s", "abs_path": ["/a"]}
    )
    with pytest.raises(ValueError, match="1 manifest rows but 2 logit rows"):
        build_eval_table(tiny_classifier, manifest, np.zeros((2, 5), np.float32), ["ok", "ok"])


def test_geo_columns_rerank_photos_with_a_place(tiny_classifier):
    """A prior that says 'only the second class lives here' turns a wrong top-1 into the truth."""
    from explorer.diagnose.schema import GEO_SCHEMA
    from explorer.geo.combine import BoundPrior, align_taxa
    from explorer.geo.range_model import GeoPrior, GeoPriorConfig

    names = [lab.scientific_name for lab in tiny_classifier.labels]
    model = GeoPrior(2, GeoPriorConfig(hidden=8, layers=1)).eval()
    with torch.no_grad():  # a constant prior: class 0 absent (logit -20), class 1 present (+20), anywhere
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([-20.0, 20.0]))
    prior = BoundPrior(model, names[:2], align_taxa(names, names[:2]), np.array([True, True]), {})
    manifest = pd.DataFrame(
        {
            "path": ["a.jpg", "b.jpg"],
            "scientific_name": [names[1], names[1]],
            "common_name": "",
            "note": "",
            "source": "hand",
            "abs_path": ["/a.jpg", "/b.jpg"],
            "lat": [45.0, np.nan],  # the second photo has no place
            "lon": [7.0, np.nan],
            "date": ["2020-06-01", ""],
        }
    )
    logits = np.full((2, len(names)), -2.0, dtype=np.float32)
    logits[:, 0], logits[:, 1] = 3.0, 2.0  # the image favours class 0; the truth is class 1
    table = build_eval_table(tiny_classifier, manifest, logits, ["ok", "ok"], None, None, prior)
    assert set(GEO_SCHEMA) <= set(table.columns)
    assert table["correct_1"].tolist() == [False, False]
    assert table["geo_correct_1"].tolist() == [True, False]  # fixed where there is a place, untouched elsewhere
    assert table.loc[1, "geo_pred_class_index"] == table.loc[1, "pred_class_index"]
    assert table.loc[0, "geo_pred_name"] == names[1] and table.loc[0, "obs_date"] == "2020-06-01"


def test_without_a_prior_there_are_no_geo_columns(hand_table):
    assert "geo_correct_1" not in hand_table.columns


def test_scope_columns_from_the_models_rule(tiny_classifier):
    """A max-logit rule: threshold 2.5 (scope) and 3.5 (known species); an unreadable photo is out of scope."""
    from explorer.identify.scope_check import SCOPE_SCHEMA, ScopeRule

    names = [lab.scientific_name for lab in tiny_classifier.labels]
    manifest = pd.DataFrame(
        {
            "path": ["a.jpg", "b.jpg", "c.jpg", "d.jpg"],
            "scientific_name": [names[1]] * 4,
            "common_name": "",
            "note": "",
            "source": "hand",
            "abs_path": ["/a.jpg", "/b.jpg", "/c.jpg", "/d.jpg"],
        }
    )
    logits = np.full((4, len(names)), -1.0, dtype=np.float32)
    logits[:, 1] = [4.0, 3.0, 2.0, 9.0]
    rule = ScopeRule("tiny", "bird", "max_logit", threshold=2.5, novelty_threshold=3.5)
    statuses = ["ok", "ok", "ok", "unreadable: truncated"]
    table = build_eval_table(tiny_classifier, manifest, logits, statuses, scope=rule)
    assert set(SCOPE_SCHEMA) <= set(table.columns)
    assert table["scope_score"].tolist()[:3] == [4.0, 3.0, 2.0] and np.isnan(table.loc[3, "scope_score"])
    assert table["in_scope"].tolist() == [True, True, False, False]
    assert (table["novelty_score"] >= table["novelty_threshold"]).tolist() == [True, False, False, False]
    assert set(table["scope_kind"]) == {"max_logit"} and set(table["scope_threshold"]) == {2.5}
    gated = ScopeRule("tiny", "bird", "gate", threshold=-1.0)
    with pytest.raises(ValueError, match="needs the ImageNet gate"):
        build_eval_table(tiny_classifier, manifest, logits, statuses, scope=gated)
