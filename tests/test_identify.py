import numpy as np
import pytest
from conftest import CORAL
from PIL import Image

from explorer.identify.answer import identify, result_to_json, rollup


def test_identify_returns_topk_with_lineage_and_cams(tiny_classifier, photo_rgb):
    result = identify(tiny_classifier, photo_rgb, top_k=3)
    probs = [p.probability for p in result.predictions]
    assert len(result.predictions) == 3 and probs == sorted(probs, reverse=True)
    assert result.cams.shape == (3, 16, 16)  # the CAM layer's resolution (64 px input / 4)
    payload = result_to_json(result)
    assert set(payload) >= {"model", "predictions", "rollup"}
    first = payload["predictions"][0]
    assert set(first) >= {"class_index", "scientific_name", "common_name", "lineage", "probability"}
    assert list(first["lineage"]) == ["kingdom", "phylum", "class", "order", "family", "genus", "species"]


@pytest.mark.parametrize("top_k,message", [(0, "between 1 and 20"), (21, "between 1 and 20"), (2.5, "whole number")])
def test_bad_top_k(tiny_classifier, photo_rgb, top_k, message):
    with pytest.raises(ValueError, match=message):
        identify(tiny_classifier, photo_rgb, top_k=top_k)


def test_bad_threshold_and_method(tiny_classifier, photo_rgb):
    with pytest.raises(ValueError, match="threshold must be in"):
        identify(tiny_classifier, photo_rgb, threshold=1.5)
    with pytest.raises(ValueError, match="unknown CAM method"):
        identify(tiny_classifier, photo_rgb, cam_method="x")


# Tiny model classes: 0 Poecile atricapillus, 1 Poecile gambeli, 2 Parus major, 3 Athene cunicularia, 4 background
@pytest.mark.parametrize(
    "probs,rank,name,text",
    [
        ([0.90, 0.05, 0.02, 0.02, 0.01], "species", "Poecile atricapillus", "Black-capped Chickadee"),
        ([0.45, 0.40, 0.05, 0.05, 0.05], "genus", "Poecile", "probably genus Poecile, 85%"),
        ([0.40, 0.10, 0.35, 0.10, 0.05], "family", "Paridae", "probably family Paridae, 85%"),
        ([0.30, 0.10, 0.10, 0.45, 0.05], "class", "Aves", "probably class Aves, 95%"),
        ([0.02, 0.02, 0.02, 0.02, 0.92], None, None, "No bird found"),
        ([0.30, 0.05, 0.05, 0.30, 0.30], None, None, "no species or clade reaches 78%"),
    ],
)
def test_rollup(tiny_classifier, probs, rank, name, text):
    result = rollup(tiny_classifier, np.array(probs), 0.78)
    assert (result.rank, result.name) == (rank, name) and text in result.text
    assert result.confident_species == (rank == "species")


def test_rollup_threshold_moves_answer(tiny_classifier):
    probs = np.array([0.45, 0.40, 0.05, 0.05, 0.05])
    assert rollup(tiny_classifier, probs, 0.40).rank == "species"
    assert rollup(tiny_classifier, probs, 0.90).rank == "family"  # Paridae 0.90
    assert rollup(tiny_classifier, probs, 0.93).rank == "class"  # Aves 0.95


@pytest.mark.shared_data
def test_real_bird_photo(real_resources):
    result = identify(real_resources.get("inat_bird"), Image.open(CORAL / "bird.bmp").convert("RGB"), 5)
    top = result.predictions[0]
    assert top.scientific_name == "Poecile atricapillus" and top.lineage["family"] == "Paridae"
    assert top.taxon_id == 144815 and result.cams.shape == (5, 7, 7)
    assert result.rollup.rank in ("species", "genus")


def test_identify_without_cams_ranks_the_same(tiny_classifier, photo_rgb):
    from explorer.identify.answer import identify

    with_cams = identify(tiny_classifier, photo_rgb, top_k=3)
    without = identify(tiny_classifier, photo_rgb, top_k=3, cam_method=None)
    assert [p.class_index for p in without.predictions] == [p.class_index for p in with_cams.predictions]
    assert [p.probability for p in without.predictions] == pytest.approx([p.probability for p in with_cams.predictions])
    assert without.cams.shape[0] == 3 and without.cams.size == 0 and without.cam_method is None
