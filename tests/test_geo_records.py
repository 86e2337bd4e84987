"""Occurrence records: the cell split, held-out places for evaluation photos, the split rebuilt from a checkpoint."""

import numpy as np
import pandas as pd

from explorer.geo.range_model import save_geo_prior
from explorer.geo.records import split_by_cell


def test_split_holds_out_whole_cells():
    records = pd.DataFrame({"lat": [10.1, 10.2, 50.5, 50.6, -30.0], "lon": [5.1, 5.3, 8.2, 8.9, 100.0]})
    held = split_by_cell(records, held_out=0.5, seed=3)
    assert held.any() and not held.all()  # this seed holds out some cells and keeps others
    assert held[0] == held[1] and held[2] == held[3]  # same 1-degree cell, same side


def test_held_out_places_come_from_held_out_records_of_the_true_species():
    from explorer.geo.records import held_out_places

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


def test_held_out_places_match_the_true_name_through_synonyms():
    from explorer.geo.records import held_out_places

    records = pd.DataFrame(
        {"lat": [40.0], "lon": [-100.0], "date": ["2020-05-01"], "day_of_year": [122.0], "taxon_index": [0]}
    )
    # the prior learned the Gadwall as Anas strepera; CUB labels its photo Mareca strepera
    places = held_out_places(["Mareca strepera", "Mareca  STREPERA"], ["Anas strepera"], records, np.array([True]))
    assert places["lat"].tolist() == [40.0, 40.0]


def test_checkpoint_carries_its_training_data_and_split_can_be_rebuilt(tiny_world, tmp_path):
    from explorer.geo.combine import bind_prior
    from explorer.geo.records import training_records

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
