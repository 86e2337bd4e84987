"""An observation: several photos of one organism fused into one answer (identify.fusing, services.observation),
the pseudo-observations that measure the rules (diagnose.pseudo_observations), on hand-built numbers and on the
real models."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import CORAL, HAVE_CORAL, HAVE_SHARED_DATA, SHARED_REASON, encode, good_rgb, photo_with_exif

from explorer.diagnose.pseudo_observations import (
    calibration_error,
    group_sizes,
    measure,
    pseudo_observations,
)
from explorer.identify.fusing import FUSION_RULES, fuse, log_softmax
from explorer.photos.places import Place
from explorer.services.observation import ObservationRequest, _km
from explorer.settings import DATA_DIR

LOG = np.log


def test_each_rule_on_hand_numbers():
    photos = LOG(np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]]))
    product = np.array([0.12, 0.15, 0.03]) / 0.30
    np.testing.assert_allclose(fuse(photos, "product"), product, rtol=1e-12)
    geo = np.sqrt([0.12, 0.15, 0.03])
    np.testing.assert_allclose(fuse(photos, "geomean"), geo / geo.sum(), rtol=1e-12)
    np.testing.assert_allclose(fuse(photos, "mean"), [0.4, 0.4, 0.2], rtol=1e-12)
    np.testing.assert_allclose(fuse(photos, "max"), np.array([0.6, 0.5, 0.3]) / 1.4, rtol=1e-12)
    np.testing.assert_allclose(fuse(photos[:1], "product"), [0.6, 0.3, 0.1], rtol=1e-12)  # one photo: itself
    with pytest.raises(ValueError, match="unknown fusion rule 'vote'"):
        fuse(photos, "vote")


def test_log_softmax_of_logits():
    np.testing.assert_allclose(np.exp(log_softmax(np.array([[0.0, LOG(3.0)]]))), [[0.25, 0.75]], rtol=1e-12)


@pytest.mark.parametrize(
    ("n", "sizes"), [(0, []), (1, []), (2, [2]), (3, [3]), (4, [2, 2]), (5, [3, 2]), (7, [3, 2, 2])]
)
def test_group_sizes_use_every_photo(n, sizes):
    assert group_sizes(n) == sizes


def test_pseudo_observations_never_use_a_photo_twice():
    species = ["b"] * 4 + ["a"] * 5 + ["c"]
    ids = [f"p{i}" for i in range(10)]
    groups = pseudo_observations(species, ids, seed=3)
    assert [len(g) for g in groups] == [3, 2, 2, 2]  # a: 5 -> 3 + 2; b: 4 -> 2 + 2; c: one photo, no group
    rows = np.concatenate(groups)
    assert sorted(rows.tolist()) == list(range(9))  # every photo of a and b once, c's never
    assert all(len({species[r] for r in g}) == 1 for g in groups)
    assert [g.tolist() for g in groups] == [g.tolist() for g in pseudo_observations(species, ids, seed=3)]


def test_measure_on_hand_numbers():
    # four photos of class 0, two groups: (0, 1) wrong alone once but right fused; (2, 3) wrong everywhere
    probs = np.array([[0.6, 0.4], [0.45, 0.55], [0.3, 0.7], [0.2, 0.8]])
    report = measure(LOG(probs), np.zeros(4, int), [np.array([0, 1]), np.array([2, 3])])
    assert report["observations"] == 2 and report["photos"] == 4 and report["by_size"] == {"2": 2, "3": 0}
    assert report["one_photo"]["top1"] == 0.25 and report["one_photo"]["correct"] == 1
    product = report["rules"]["product"]  # (0.27 vs 0.22): right; (0.06 vs 0.56): wrong
    assert product["top1"] == 0.5 and product["correct"] == 1 and product["by_size"] == {"2": 0.5, "3": None}
    assert product["mean_confidence"] == round((0.27 / 0.49 + 0.56 / 0.62) / 2, 4)
    assert product["certain"] == 0 and product["certain_right"] == 0
    assert report["rules"]["max"]["top1"] == 0.5  # largest: 0.6 against 0.55 (right), 0.3 against 0.8 (wrong)
    assert set(report["rules"]) == set(FUSION_RULES)


def test_certain_answers_and_how_many_of_them_are_right():
    sure_wrong, sure_right = [[0.01, 0.99], [0.01, 0.99]], [[0.99, 0.01], [0.99, 0.01]]
    report = measure(LOG(np.array(sure_wrong + sure_right)), np.zeros(4, int), [np.array([0, 1]), np.array([2, 3])])
    product = report["rules"]["product"]  # 0.99² / (0.99² + 0.01²) = 0.99990 either way
    assert (product["certain"], product["certain_right"], product["correct"]) == (2, 1, 1)
    assert (report["one_photo"]["certain"], report["one_photo"]["certain_right"]) == (0, 0)  # 0.99 < 0.995


def test_calibration_error_on_hand_numbers():
    confidence = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([True, True, True, False])
    assert calibration_error(confidence, correct) == pytest.approx(0.5 * 0.05 + 0.5 * 0.05)


def test_a_request_is_checked_when_built():
    with pytest.raises(ValueError, match="at least one photo"):
        ObservationRequest(photos=())
    with pytest.raises(ValueError, match="at most 6 photos of one organism; got 7"):
        ObservationRequest(photos=tuple(f"p{i}.jpg" for i in range(7)))
    with pytest.raises(ValueError, match="^latitude 95.0 is outside -90..90$"):
        ObservationRequest(photos=("a.jpg",), lat="95", lon="0")
    assert ObservationRequest(photos=("a.jpg", None, "", "b.jpg")).photos == ("a.jpg", "b.jpg")


def test_distance_between_places():
    assert _km(Place(0.0, 0.0), Place(0.0, 1.0)) == pytest.approx(2 * math.pi * 6371.0 / 360, rel=1e-9)


needs_models = pytest.mark.skipif(not (HAVE_CORAL and HAVE_SHARED_DATA), reason=SHARED_REASON)


def _goldfinches(n=3) -> list[str]:
    return [str(p) for p in sorted((DATA_DIR / "cub100" / "images" / "American_Goldfinch").glob("*.jpg"))[:n]]


@needs_models
def test_fused_answer_is_the_product_of_each_photos_own_answer(real_resources):
    from explorer.identify.fusing import log_softmax
    from explorer.services.identification import IdentifyRequest, identify_photo
    from explorer.services.observation import identify_observation, observation_to_json

    photos = _goldfinches()
    found = identify_observation(
        real_resources, ObservationRequest(photos=tuple(photos), model="inat_bird", cam_method="gradcam")
    )
    alone = [
        identify_photo(real_resources, IdentifyRequest(photo=p, model="inat_bird", cam_method="gradcam")).result
        for p in photos
    ]
    own = np.exp(log_softmax(np.stack([a.logits for a in alone])))  # each photo's own probabilities
    expected = own.prod(axis=0) / own.prod(axis=0).sum()
    fused = found.fused.result
    assert [p.scientific_name for p in fused.predictions][0] == "Spinus tristis"
    for p, s in zip(fused.predictions, found.fused.suggestions):
        assert p.probability == pytest.approx(expected[p.class_index], abs=1e-6)
        assert [c.probability for c in s.contributions] == pytest.approx(own[:, p.class_index].tolist(), abs=1e-6)
        assert s.carried_by == int(np.argmax(own[:, p.class_index]))
    # the fused top-1 is each photo's own top-1 here: its map in each photo is that photo's own first map
    for b, answer in enumerate(alone):
        assert answer.predictions[0].scientific_name == "Spinus tristis"
        np.testing.assert_allclose(found.cams[b][0], answer.cams[0], atol=1e-4)
    assert [a.predictions[0].probability for a in found.answers] == pytest.approx(
        [a.predictions[0].probability for a in alone], abs=1e-6
    )
    answer = observation_to_json(real_resources, found, cams=True)
    assert answer["fused"]["fusion_rule"] == "product" and answer["fused"]["fused_photos"] == [1, 2, 3]
    assert answer["fused"]["predictions"][0]["carried_by"] == found.fused.suggestions[0].carried_by + 1
    assert len(answer["photos"]) == 3 and len(answer["photos"][0]["cams_of_fused"]["maps"]) == 5
    json.dumps(answer)  # plain JSON


@needs_models
def test_a_photo_outside_the_scope_is_left_out_and_the_place_comes_from_exif(real_resources):
    from PIL import Image

    from explorer.services.observation import identify_observation

    flower = encode(Image.open(CORAL / "sunflower.bmp").convert("RGB"), "JPEG")
    gps = {1: "N", 2: (42.0, 30.0, 0.0), 3: "W", 4: (76.0, 30.0, 0.0)}
    first = photo_with_exif(gps, "2021:05:16 08:30:00", Image.open(_goldfinches(1)[0]).convert("RGB"))
    third = Image.open(_goldfinches(3)[2]).convert("RGB")
    far = photo_with_exif({1: "N", 2: (40.0, 0.0, 0.0), 3: "W", 4: (76.0, 30.0, 0.0)}, "2021:05:17 08:30:00", third)
    photos = (first, _goldfinches(2)[1], flower, far)
    found = identify_observation(real_resources, ObservationRequest(photos=photos, model="inat_bird"))
    assert found.fused.fused == (0, 1, 3) and not found.answers[2].scope.in_scope
    notes = " ".join(found.notes)
    assert "Left out of the fused answer, outside what inat_bird knows: photo 3" in notes
    assert "Place from photo 1's EXIF (42.5000, -76.5000), date 2021-05-16 from photo 1's." in notes
    assert "Photos 1 and 4 were taken 278 km apart (EXIF)" in notes
    assert "The photos' EXIF dates differ (2021-05-16, 2021-05-17)." in notes
    place = found.fused.result.place
    assert (place.lat, place.lon, place.date.isoformat()) == (42.5, -76.5, "2021-05-16")
    assert all(len(s.contributions) == 3 for s in found.fused.suggestions)


@needs_models
def test_a_photo_that_cannot_be_read_is_named(real_resources):
    from explorer.services.observation import identify_observation

    with pytest.raises(ValueError, match=r"^Photo 2 \(uploaded bytes\): This file is not an image we can read"):
        identify_observation(real_resources, ObservationRequest(photos=(encode(good_rgb(), "PNG"), b"not a photo")))
    with pytest.raises(ValueError, match="unknown or unavailable model 'nope'"):
        identify_observation(real_resources, ObservationRequest(photos=(encode(good_rgb(), "PNG"),), model="nope"))


@needs_models
def test_auto_takes_the_model_most_photos_are_routed_to(real_resources):
    from explorer.services.observation import identify_observation

    dragonfly = str(CORAL / "dragonfly.bmp")
    found = identify_observation(
        real_resources, ObservationRequest(photos=(dragonfly, *_goldfinches(2)), model="auto", cam_method=None)
    )
    assert found.model == "inat_bird"
    assert "(2 of 3 photos)" in found.notes[0] and "photo 1 → inat_insect" in found.notes[1]


@needs_models
def test_explorer_fusion_reproduces_the_shipped_report(tmp_path, capsys):
    import shutil

    from explorer.settings import PROJECT_ROOT
    from explorer.tools.fusion import main

    shipped = PROJECT_ROOT / "assets" / "eval"
    shutil.copy(shipped / "inat_insect.parquet", tmp_path / "inat_insect.parquet")
    main(
        ["--model", "inat_insect", "--table", str(tmp_path / "inat_insect.parquet"), "--out", str(tmp_path / "o.json")]
    )
    new = json.loads((tmp_path / "o.json").read_text())
    old = json.loads((shipped / "inat_insect.fusion.json").read_text())
    assert new.pop("seconds") > 0 and old.pop("seconds") > 0
    assert new == old  # the same photos, groups and figures: the shipped report is not stale
    out = capsys.readouterr().out
    assert f"{old['observations']} pseudo-observations of {old['photos']} photos" in out


def test_explorer_fusion_refuses_in_one_line(tmp_path, capsys):
    from explorer.tools.fusion import main

    with pytest.raises(SystemExit) as stop:
        main(["--model", "nope", "--eval-dir", str(tmp_path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "explorer-fusion: error: no evaluation table for nope: make one with explorer-evaluate, or give --table"
    ]


@needs_models
def test_a_photo_of_another_organism_is_flagged(real_resources):
    from explorer.services.observation import identify_observation, observation_to_json

    waxwing = str(DATA_DIR / "cub100" / "images" / "Cedar_Waxwing" / "0001.jpg")
    request = ObservationRequest(photos=(*_goldfinches(), waxwing), model="inat_bird", cam_method="gradcam", top_k=3)
    found = identify_observation(real_resources, request)
    assert found.fused.result.predictions[0].scientific_name == "Spinus tristis" and found.fused.disagreeing == (3,)
    own = next(c for c in found.fused.suggestions[0].contributions if c.photo == 3)
    (note,) = [n for n in found.notes if n.startswith("Photo 4 disagrees")]
    assert note.startswith("Photo 4 disagrees: on its own it says Bombycilla cedrorum (Cedar Waxwing), ")
    assert f"and ranks the fused answer Spinus tristis #{own.rank} (" in note and own.rank > 5
    answer = observation_to_json(real_resources, found, cams=True)
    assert answer["fused"]["disagreeing_photos"] == [4] and note in answer["notes"]
    assert answer["photos"][3]["cams_of_fused"]["species"] == [
        p.scientific_name for p in found.fused.result.predictions
    ]
    assert not any("Re-ranked" in n for n in answer["notes"])  # the fused answer's own notes stay in fused.notes
