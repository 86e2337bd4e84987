"""Use cases shared by the page and the API: the inspector without photos, the models overview."""

from dataclasses import replace
from pathlib import Path

import pytest
from conftest import HAVE_SHARED_DATA, ROOT, SHARED_REASON

from explorer.diagnose.schema import load_table
from explorer.services.resources import Resources
from explorer.settings import Settings


@pytest.fixture(scope="module")
def resources_without_photos(tiny_classifier, tmp_path_factory):
    table = load_table(ROOT / "assets" / "eval" / "cub100_effnet_head.parquet")
    settings = Settings(checkpoint_dir=Path("."), data_root=tmp_path_factory.mktemp("no_photos"))
    return Resources({"tiny": tiny_classifier}, {}, [], settings, {"cub100_effnet_head": table})


def test_inspector_without_photo_says_so(resources_without_photos):
    from explorer.diagnose.metrics import error_rows
    from explorer.services.inspection import inspect_error

    row = error_rows(resources_without_photos.tables["cub100_effnet_head"]).iloc[0].to_dict()
    found = inspect_error(resources_without_photos, row)
    text, images = found.html, found.images
    assert "not on this machine" in text and images == [] and "<table" in text


def test_models_tab_says_which_prior_and_how_many_species_it_covers(tiny_classifier):
    import numpy as np

    from explorer.geo.combine import BoundPrior, align_taxa
    from explorer.geo.range_model import GeoPrior, GeoPriorConfig
    from explorer.services.overview import models_markdown

    names = [lab.scientific_name for lab in tiny_classifier.labels]
    taxa = [names[0], names[1], "Other species"]
    prior = BoundPrior(
        GeoPrior(3, GeoPriorConfig(hidden=8, layers=1)),
        taxa,
        align_taxa(names, taxa),
        np.array([True, False, True]),  # the second species had no training records
        {"held_out_site_map": 0.25, "location_blind_map": 0.05},
        Path("geo/shared.safetensors"),
        name="shared",
        label="shared: a prior",
        credit="records: eBird",
    )
    other = BoundPrior(prior.model, taxa, align_taxa(names, taxa), np.ones(3, bool), {}, name="other", label="x")
    settings = Settings(checkpoint_dir=Path("."))
    priors = {"tiny": {"shared": prior, "other": other}}
    text = models_markdown(Resources({"tiny": tiny_classifier}, {}, [], settings, {}, priors))
    assert "`tiny` → **shared** (default): shared: a prior; `shared.safetensors`, 2 of its 3 taxa with records" in text
    assert "held-out site MAP 0.250 (location-blind 0.050). 1 of this model's 4 species matched" in text
    assert "`tiny` → **other**: x; `?`, 3 taxa. 2 of this model's 4 species matched by name" in text
    assert "Credit: records: eBird." in text


@pytest.mark.skipif(not HAVE_SHARED_DATA, reason=SHARED_REASON)
def test_inspector_compares_the_two_answers_of_a_photo_the_prior_broke(real_resources):
    """Broke: the image alone was right, the place made it wrong; the inspector compares those two answers."""
    from explorer.diagnose.geo_effect import geo_rows
    from explorer.services.inspection import inspect_error

    row = geo_rows(real_resources.tables["inat_bird"], "broke").iloc[0].to_dict()
    assert row["pred_name"] == row["true_name"] != row["geo_pred_name"]
    found = inspect_error(real_resources, row, place_changed=True)
    captions = [caption for _, caption in found.images]
    assert captions == [
        "photo",
        f"image alone: {row['pred_name']}",
        f"with the place: {row['geo_pred_name']}",
        f"why the image says {row['pred_name']} and not {row['geo_pred_name']}",
        f"FinerCAM: {row['pred_name']} against its nearest rivals",
        f"bird blurred away: {row['pred_name']} {captions[-2].rsplit(' ', 1)[-1]}",
        f"surroundings blurred away: {captions[-1].rsplit(' ', 1)[-1]}",
    ]
    assert captions[-2].endswith("%") and captions[-1].endswith("%")
    assert "with the place (" in found.html and ", wrong." in found.html
    assert "The bird or its surroundings?" in found.html and "lies outside the bird" in found.html


@pytest.mark.skipif(not HAVE_SHARED_DATA, reason=SHARED_REASON)
def test_inspector_shows_the_prediction_cam_for_an_unknown_species(real_resources):
    from explorer.services.inspection import inspect_error

    table = real_resources.tables["inat_bird"]
    row = table[~table["in_vocab"] & (table["status"] == "ok")].iloc[0].to_dict()
    found = inspect_error(real_resources, row)
    assert [caption for _, caption in found.images][:2] == ["photo", f"prediction: {row['pred_name']}"]
    assert [caption.split(":")[0] for _, caption in found.images][2:] == [
        "bird blurred away",
        "surroundings blurred away",
    ]
    assert found.images[1][0].shape == found.images[0][0].shape and "not one of the model's classes" in found.html


def test_similar_photos_from_hand_built_embeddings(tiny_classifier):
    import numpy as np
    import pandas as pd

    from explorer.identify.answer import IdentifyResult, Prediction, no_claim
    from explorer.represent.embeddings import EmbeddingStore, photo_index
    from explorer.services.similar import similar_photos

    table = pd.DataFrame(
        {
            "photo_id": [f"p{i}" for i in range(5)],
            "status": "ok",
            "true_name": ["Parus major", "Poecile gambeli", "Parus major", "Athene cunicularia", "Poecile gambeli"],
            "true_class_index": [2, 1, 2, 3, 1],
        }
    )
    vectors = [[1, 0], [0.9, 0.1], [0.6, 0.8], [0, 1], [0.2, 1]]
    store = EmbeddingStore("tiny", "h", table["photo_id"].to_numpy(str), np.asarray(vectors, np.float16))
    resources = Resources({"tiny": tiny_classifier}, photo_indexes={"tiny": photo_index("t", table, store)})

    def suggestion(index, name):
        return Prediction(index, name, "", {}, "species", None, 0.5)

    result = IdentifyResult(
        model="tiny",
        predictions=(suggestion(2, "Parus major"), suggestion(3, "Athene cunicularia")),
        rollup=no_claim(0.5, 0.78, ""),
        cams=np.zeros((2, 1, 1), np.float32),
        cam_method=None,
        embedding=np.array([1.0, 0.0]),
    )
    found = similar_photos(resources, result, 3)
    assert found.neighbours["photo_id"].tolist() == ["p0", "p1", "p2"] and found.photos == 5
    assert found.neighbours["in_suggestions"].tolist() == [True, False, True]  # p1 is a Poecile: not suggested
    assert found.neighbours["distance"].tolist() == pytest.approx([0.0, 0.006, 0.4], abs=1e-3)
    assert found.examples[["suggestion", "photo_id"]].values.tolist() == [[1, "p0"], [1, "p2"], [2, "p3"]]
    assert similar_photos(resources, replace(result, model="other")) is None  # no stored embeddings
    with pytest.raises(ValueError, match="k must be between 1 and 50"):
        similar_photos(resources, result, 0)


def test_similar_note_says_when_the_photo_is_out_of_scope():
    from types import SimpleNamespace

    import pandas as pd

    from explorer.identify.scope_check import ScopeCheck
    from explorer.services.similar import SimilarPhotos
    from explorer.ui.similar_section import _note

    found = SimilarPhotos("inat_bird", "inat_bird", 4109, pd.DataFrame(), pd.DataFrame())
    outside = SimpleNamespace(scope=ScopeCheck(False, -5.0, -1.2, "not a bird"))
    inside = SimpleNamespace(scope=ScopeCheck(True, 0.0, -1.2, "a bird"))
    assert "outside what `inat_bird` knows" in _note(found, outside) and "4109 labelled photos" in _note(found, outside)
    assert "Searched the 4109 labelled photos" in _note(found, inside)
