"""The geo-prior: input checks, encoding, the loss, training on a tiny synthetic world, checkpoints."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import torch

from explorer.geo import (
    GeoPriorConfig,
    check_date,
    check_location,
    encode,
    load_geo_prior,
    mean_average_precision,
    presence,
    save_geo_prior,
    split_by_cell,
    train_geo_prior,
)


@pytest.mark.parametrize(
    "lat,lon,message",
    [
        (91, 0, "latitude 91.0 is outside"),
        (0, -181, "longitude -181.0"),
        (float("nan"), 0, "finite"),
        ("north", 0, "must be numbers"),
    ],
)
def test_impossible_locations(lat, lon, message):
    with pytest.raises(ValueError, match=message):
        check_location(lat, lon)


def test_dates():
    assert check_date("2024-05-17") == dt.date(2024, 5, 17)
    with pytest.raises(ValueError, match="not a date in the form YYYY-MM-DD"):
        check_date("17/05/2024")
    with pytest.raises(ValueError, match="is in the future"):
        check_date("2030-01-01", today=dt.date(2026, 11, 22))


def test_encoding_wraps_longitude_and_marks_missing_dates():
    features = encode(np.array([10.0, 10.0]), np.array([-180.0, 180.0]), np.array([np.nan, 100.0]))
    assert features.shape == (2, 7)
    assert torch.allclose(features[0, :4], features[1, :4], atol=1e-6)  # -180 and 180 are the same meridian
    assert features[0, 6] == 0 and features[1, 6] == 1 and features[0, 4:6].abs().sum() == 0


def test_split_holds_out_whole_cells():
    records = pd.DataFrame({"lat": [10.1, 10.2, 50.5, 50.6, -30.0], "lon": [5.1, 5.3, 8.2, 8.9, 100.0]})
    held = split_by_cell(records, held_out=0.5, seed=3)
    assert held[0] == held[1] and held[2] == held[3]  # same 1-degree cell, same side


def test_mean_average_precision_known_answer():
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.7], [0.7, 0.15]])  # 4 sites x 2 taxa
    present = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=bool)
    value, counted = mean_average_precision(scores, present)
    # taxon 0: its sites rank 1, 2 -> AP 1; taxon 1: its sites rank 1 and 3 -> AP (1 + 2/3) / 2
    assert counted == 2 and value == pytest.approx((1 + (1 + 2 / 3) / 2) / 2)


def test_site_presence():
    from explorer.geo import site_presence

    records = pd.DataFrame(
        {"lat": [1.0, 1.02, 5.0], "lon": [2.0, 2.02, 6.0], "site": ["a", "a", "b"], "taxon_index": [0, 1, 1]}
    )
    sites, present = site_presence(records, 3)
    assert list(sites["site"]) == ["a", "b"] and present.tolist() == [[True, True, False], [False, True, False]]


@pytest.fixture(scope="module")
def tiny_world():
    """Taxon 0 lives only in Europe-ish, taxon 1 only in South America-ish."""
    rng = np.random.default_rng(0)
    n = 600
    lat = np.concatenate([rng.uniform(40, 60, n), rng.uniform(-35, -5, n)])
    lon = np.concatenate([rng.uniform(-5, 25, n), rng.uniform(-70, -40, n)])
    records = pd.DataFrame(
        {"lat": lat, "lon": lon, "day_of_year": rng.uniform(1, 365, 2 * n), "taxon_index": np.repeat([0, 1], n)}
    )
    config = GeoPriorConfig(hidden=64, layers=2, epochs=60, batch_size=256, lr=2e-3, positive_weight=8.0, dropout=0.0)
    return train_geo_prior(records, 2, config, progress=False)


def test_training_learns_a_known_range(tiny_world):
    scores = presence(tiny_world, np.array([50.0, -20.0, 0.0]), np.array([10.0, -55.0, 150.0]))
    assert scores[0, 0] > 0.5 and scores[0, 1] < 0.2  # Europe: taxon 0 yes, taxon 1 no
    assert scores[1, 1] > 0.5 and scores[1, 0] < 0.2  # South America: the reverse
    assert scores[2].max() < 0.2  # the mid-Pacific: neither


def test_checkpoint_round_trip(tiny_world, tmp_path):
    path = save_geo_prior(tiny_world, ["Alpha one", "Beta two"], tmp_path / "g.safetensors", {"held_out_map": 0.5})
    model, taxa, metrics = load_geo_prior(path)
    assert taxa == ["Alpha one", "Beta two"] and metrics["held_out_map"] == 0.5
    lat, lon = np.array([50.0]), np.array([10.0])
    assert np.allclose(presence(model, lat, lon), presence(tiny_world, lat, lon), atol=1e-6)


def test_not_a_geo_checkpoint(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="not a geo-prior checkpoint"):
        load_geo_prior(tmp_path / "x.safetensors")


def test_combine_reranks_floors_and_keeps_unknown_taxa_neutral():
    from explorer.geo import align_taxa, combine

    classes = ["A a", "B b", "C c", "background"]
    alignment = align_taxa(classes, ["B b", "A a", "C c"])
    assert alignment.tolist() == [1, 0, 2, -1]
    known = np.array([True, True, False])  # the prior never saw C c
    vision = np.array([0.5, 0.3, 0.15, 0.05])
    geo = np.array([0.9, 0.0001, 0.5])  # prior order: B b present, A a far out of range, C c unknown
    result = combine(vision, geo, alignment, known)
    assert result.combined.sum() == pytest.approx(1.0)
    assert np.argmax(result.combined) == 1  # the location moves B b above A a
    assert result.combined[0] > 0  # floored: demoted, not erased
    assert np.isnan(result.geo[2]) and np.isnan(result.geo[3])
    # unknown taxa keep the ratio to each other (both got the same neutral factor)
    assert result.combined[2] / result.combined[3] == pytest.approx(vision[2] / vision[3])


def test_combine_without_location_changes_nothing():
    from explorer.geo import combine

    vision = np.array([0.7, 0.3])
    result = combine(vision, None, np.array([0, 1]), np.array([True, True]))
    assert np.allclose(result.combined, vision) and np.isnan(result.geo).all()


def test_make_place():
    from explorer.geo import make_place

    assert make_place(None, None, "") is None and make_place("", "", None) is None
    place = make_place(50.5, "10.25", "2024-06-01", today=dt.date(2026, 1, 1))
    assert (place.lat, place.lon, place.day_of_year) == (50.5, 10.25, 153.0)
    with pytest.raises(ValueError, match="both latitude and longitude"):
        make_place(50, None)
    assert make_place(None, None, "2024-06-01") is None  # a date alone (EXIF without GPS) is not an error
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        make_place(None, None, "June")
    with pytest.raises(ValueError, match="latitude 123.0 is outside"):
        make_place(123, 0)


def test_identify_with_a_place_reranks_and_reports_both(tiny_classifier, tiny_world, photo_rgb):
    from explorer.geo import BoundPrior, align_taxa, make_place
    from explorer.identify import identify, result_to_json

    names = [label.scientific_name for label in tiny_classifier.labels]
    taxa = ["Poecile atricapillus", "Athene cunicularia"]  # the tiny world's taxa 0 (Europe) and 1 (S. America)
    prior = BoundPrior(tiny_world, taxa, align_taxa(names, taxa), np.array([True, True]), {})
    plain = identify(tiny_classifier, photo_rgb, top_k=5)
    europe = identify(tiny_classifier, photo_rgb, top_k=5, place=make_place(50, 10), prior=prior)
    america = identify(tiny_classifier, photo_rgb, top_k=5, place=make_place(-20, -55), prior=prior)
    rank = lambda result, name: [p.scientific_name for p in result.predictions].index(name)  # noqa: E731
    assert rank(europe, "Poecile atricapillus") < rank(america, "Poecile atricapillus")
    assert rank(america, "Athene cunicularia") < rank(europe, "Athene cunicularia")
    owl = next(p for p in europe.predictions if p.scientific_name == "Athene cunicularia")
    assert owl.geo_score < 0.2 and owl.vision_probability == pytest.approx(
        next(p for p in plain.predictions if p.scientific_name == "Athene cunicularia").probability, rel=1e-5
    )
    unknown = next(p for p in europe.predictions if p.scientific_name == "Parus major")
    assert unknown.geo_score is None  # the prior has no Parus major: neutral, reported as unknown
    payload = result_to_json(europe)
    assert payload["place"] == {"lat": 50.0, "lon": 10.0, "date": None}
    assert {"vision_probability", "geo_score", "vision_rank", "out_of_range"} <= set(payload["predictions"][0])


def test_combine_many_equals_combine_row_by_row():
    from explorer.geo import combine, combine_many

    rng = np.random.default_rng(1)
    vision = rng.dirichlet(np.ones(5), size=4)
    alignment = np.array([2, 0, -1, 1, 3])
    known = np.array([True, True, False, True])
    geo = rng.uniform(0, 1, size=(4, 4))
    geo[3] = np.nan  # the last photo has no place
    batch = combine_many(vision, geo, alignment, known)
    for row in range(3):
        assert np.allclose(batch[row], combine(vision[row], geo[row], alignment, known).combined)
    assert np.allclose(batch[3], vision[3])


def test_held_out_places_come_from_held_out_records_of_the_true_species():
    from explorer.geo import held_out_places

    records = pd.DataFrame(
        {
            "lat": [10.0, 11.0, 50.0, 51.0],
            "lon": [20.0, 21.0, 5.0, 6.0],
            "date": ["2020-05-01", "2020-06-01", "2021-01-02", "2021-01-03"],
            "day_of_year": [122.0, 153.0, 2.0, 3.0],
            "taxon_index": [0, 0, 1, 1],
        }
    )
    held = np.array([False, True, False, False])  # only one held-out record, of taxon 0
    places = held_out_places(["Alpha one", "Beta two", "Gamma three"], ["Alpha one", "Beta two"], records, held)
    assert places.loc[0, ["lat", "lon", "date"]].tolist() == [11.0, 21.0, "2020-06-01"]
    assert np.isnan(places.loc[1, "lat"]) and np.isnan(places.loc[2, "lat"])  # no held-out record / unknown
    assert places.loc[0, "location_source"].startswith("held-out")


def test_checkpoint_carries_its_training_data_and_split_can_be_rebuilt(tiny_world, tmp_path):
    from explorer.geo import bind_prior, training_records

    data_root = tmp_path / "data"
    (data_root / "occ").mkdir(parents=True)
    frame = pd.DataFrame(
        {
            "scientific_name": ["Alpha one", "Beta two"] * 50,
            "lat": np.linspace(-40, 60, 100),
            "lon": 10.0,
            "date": "2020-01-01",
        }
    )
    frame.to_csv(data_root / "occ" / "o.csv", index=False)
    data = {"occurrences": ["occ/o.csv"], "held_out": 0.3, "cell_degrees": 1.0, "seed": 0}
    path = save_geo_prior(tiny_world, ["Alpha one", "Beta two"], tmp_path / "g.safetensors", {}, None, data)
    prior = bind_prior(path, ["Beta two", "Alpha one"])
    assert prior.data == data and prior.alignment.tolist() == [1, 0]
    records, held = training_records(prior, data_root)
    assert len(records) == 100 and 0 < held.sum() < 100
    assert training_records(prior, tmp_path / "elsewhere") is None  # files absent: no records, no error


def test_taxa_from_a_card_or_a_label_file(tmp_path):
    from conftest import ROOT

    from explorer.config import Settings
    from explorer.geo import taxa_from_card

    labels = tmp_path / "labels.txt"
    labels.write_text("Poecile atricapillus (Black-capped Chickadee)\nbackground\nParus major\n")
    assert taxa_from_card(labels, None) == ["Poecile atricapillus", "Parus major"]
    settings = Settings(checkpoint_dir=ROOT / "checkpoints")
    card_taxa = taxa_from_card(ROOT / "checkpoints" / "cub100_effnet_head.json", settings)
    assert len(card_taxa) == 100 and "Passerina cyanea" in card_taxa
