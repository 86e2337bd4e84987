"""The evaluation table: built from hand-made logits with known answers, and by the CLI on real photos."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SHARED, TINY_LABELS, needs_shared

from explorer.evaluate import SCHEMA, build_eval_table, load_table, save_table, validate_table
from explorer.taxonomy import load_taxonomy

# (true name, the class the logits favour, expected rank of divergence)
CASES = [
    ("Poecile atricapillus", 0, "correct"),
    ("Poecile atricapillus", 1, "species"),  # right genus, wrong species
    ("Poecile gambeli", 2, "genus"),  # Parus: same family
    ("Athene cunicularia", 0, "order"),  # owl called a chickadee
    ("Quercus alba", 3, "kingdom"),  # an oak: out of vocabulary, wrong kingdom
    ("Parus major", 4, "no prediction"),  # the model says "no bird"
]


def hand_table(tiny_classifier) -> pd.DataFrame:
    manifest = pd.DataFrame(
        {
            "path": [f"p{i}.jpg" for i in range(len(CASES))],
            "scientific_name": [c[0] for c in CASES],
            "common_name": "",
            "note": ["", "", "", "", "", "doubtful"],
            "source": "hand",
            "abs_path": [f"/photos/p{i}.jpg" for i in range(len(CASES))],
        }
    )
    logits = np.full((len(CASES), len(TINY_LABELS)), -2.0, dtype=np.float32)
    for row, (_, favoured, _) in enumerate(CASES):
        logits[row, favoured] = 3.0
    logits[1, 0] = 2.0  # the true class is second for case 1
    taxonomy = load_taxonomy([c[0] for c in CASES] + [label.split(" (")[0] for label in TINY_LABELS])
    return build_eval_table(tiny_classifier, manifest, logits, ["ok"] * len(CASES), taxonomy)


@pytest.fixture(scope="module")
def table(tiny_classifier):
    return hand_table(tiny_classifier)


def test_divergence_ranks_and_correctness(table):
    assert table["divergence_rank"].tolist() == [c[2] for c in CASES]
    assert table["correct_1"].tolist() == [True, False, False, False, False, False]
    assert table["correct_k"].tolist() == [True, True, True, True, False, True]  # top-5 of 5 classes


def test_out_of_vocabulary_kept_and_flagged(table):
    oak = table.iloc[4]
    assert not oak["in_vocab"] and oak["true_class_index"] == -1 and np.isnan(oak["true_prob"])
    assert oak["true_kingdom"] == "Plantae" and oak["pred_kingdom"] == "Animalia"


def test_lineages_and_lca(table):
    row = table.iloc[1]
    assert row["true_family"] == "Paridae" and row["pred_name"] == "Poecile gambeli"
    assert (row["lca_rank"], row["lca_name"]) == ("genus", "Poecile")
    assert table.iloc[3]["lca_rank"] == "class" and pd.isna(table.iloc[4]["lca_rank"])


def test_rollup_columns(table):
    # case 1: Poecile holds nearly all the mass, and it is the true genus
    assert table.iloc[1]["rollup_correct_genus"] and table.iloc[1]["rollup_prob_genus"] > 0.9
    assert not table.iloc[3]["rollup_correct_genus"] and table.iloc[3]["rollup_correct_class"]


def test_schema_validated_on_load(table, tmp_path):
    path = save_table(table, tmp_path / "t.parquet")
    assert list(load_table(path).columns) == list(table.columns)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['confidence', 'true_prob'\]"):
        validate_table(table.drop(columns=["confidence", "true_prob"]))
    assert set(SCHEMA) <= set(table.columns)


def test_row_count_mismatch(tiny_classifier):
    manifest = pd.DataFrame(
        {"path": ["a"], "scientific_name": ["x y"], "common_name": "", "note": "", "source": "s", "abs_path": ["/a"]}
    )
    with pytest.raises(ValueError, match="1 manifest rows but 2 logit rows"):
        build_eval_table(tiny_classifier, manifest, np.zeros((2, 5), np.float32), ["ok", "ok"])


@needs_shared
@pytest.mark.shared_data
@pytest.mark.slow
def test_cli_builds_table_from_real_photos(tmp_path):
    from explorer.evaluate import main

    manifest = pd.read_csv(SHARED / "data" / "birds525-valid" / "manifest.csv").head(12)
    manifest["path"] = [str(SHARED / "data" / "birds525-valid" / p) for p in manifest["path"]]
    manifest.loc[len(manifest)] = {**manifest.iloc[0].to_dict(), "path": str(tmp_path / "missing.jpg")}
    (tmp_path / "m.csv").write_text(manifest.to_csv(index=False))
    out = tmp_path / "eval.parquet"
    main(
        [
            "--model",
            "inat_bird",
            "--images",
            str(tmp_path / "m.csv"),
            "--out",
            str(out),
            "--workers",
            "0",
            "--batch-size",
            "8",
        ]
    )
    table = load_table(out)
    assert len(table) == 13 and table["model"].eq("inat_bird").all()
    assert table["status"].iloc[-1].startswith("unreadable") and not table["correct_1"].iloc[-1]
    assert table["path"].iloc[0].startswith("birds525-valid/")  # relative to the data root
    assert table["correct_1"].iloc[:12].mean() > 0.5  # the real model on real photos


@needs_shared
@pytest.mark.shared_data
@pytest.mark.slow
def test_ray_engine_gives_the_same_table(real_resources, tmp_path):
    pytest.importorskip("ray")
    from explorer.datasets import read_manifest
    from explorer.evaluate import evaluate

    manifest = read_manifest(SHARED / "data" / "birds525-valid" / "manifest.csv").head(10)
    classifier = real_resources.get("inat_bird")
    local = evaluate(classifier, manifest, engine="local", batch_size=4, workers=0, progress=False)
    on_ray = evaluate(classifier, manifest, engine="ray", batch_size=4)
    floats = [c for c in local.columns if local[c].dtype.kind == "f"]
    others = [c for c in local.columns if c not in floats]
    pd.testing.assert_frame_equal(local[others], on_ray[others])
    np.testing.assert_allclose(local[floats].to_numpy(float), on_ray[floats].to_numpy(float), rtol=1e-5, atol=1e-6)


def test_geo_columns_rerank_photos_with_a_place(tiny_classifier):
    """A prior that says 'only the second class lives here' turns a wrong top-1 into the truth."""
    from explorer.evaluate import GEO_SCHEMA
    from explorer.geo import BoundPrior, GeoPrior, GeoPriorConfig, align_taxa

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


def test_without_a_prior_there_are_no_geo_columns(table):
    assert "geo_correct_1" not in table.columns
