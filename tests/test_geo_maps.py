"""Range maps: the land grid, one-matrix-vector-product ranges, escaped and self-contained (offline) HTML."""

import numpy as np
import pytest

from explorer.geo.maps import build_land_grid, land_cells, range_map, range_scores, score_raster
from explorer.geo.range_model import GeoPrior, GeoPriorConfig, presence


@pytest.fixture(scope="module")
def small_prior():
    import torch

    torch.manual_seed(0)
    return GeoPrior(3, GeoPriorConfig(hidden=32, layers=1)).eval()


def test_land_cells_are_land():
    lat, lon, rows, cols = land_cells(2.0)
    assert len(lat) == len(rows) and 0.2 < len(lat) / (90 * 180) < 0.45  # about 30 % of the globe is land
    assert not np.any((np.abs(lat) < 5) & (lon > -150) & (lon < -100))  # the eastern Pacific is sea


def test_range_scores_equal_a_full_forward_pass(small_prior):
    grid = build_land_grid(small_prior, step=2.0)
    fast = range_scores(small_prior, grid, 1)
    full = presence(small_prior, grid.lat, grid.lon)[:, 1]
    assert np.allclose(fast, full, atol=1e-5)
    assert score_raster(grid, fast).shape == (90, 180, 4)


def test_map_escapes_names(small_prior):
    grid = build_land_grid(small_prior, step=2.0)
    html = (
        range_map(grid, range_scores(small_prior, grid, 0), "<script>alert(1)</script>", 10.0, 20.0, "caveat <b>x</b>")
        .get_root()
        .render()
    )
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "caveat <b>x</b>" not in html


def test_standalone_map_needs_no_network_and_escapes_everything(small_prior):
    import re

    from explorer.geo.maps import map_iframe, standalone_html

    grid = build_land_grid(small_prior, step=2.0)
    title = 'Evil <img src=x onerror=alert(1)> "quoted"'
    points = (np.array([48.0, 49.0]), np.array([2.0, 3.0]))
    document = standalone_html(range_map(grid, range_scores(small_prior, grid, 0), title, 48.5, 2.5, "", points))
    assert not re.search(r"<script[^>]+src=", document)  # Leaflet is inline, not from a CDN
    assert not re.search(r"<link[^>]+href=[\"']?https?:", document)
    assert "Leaflet 1.9.4" in document and "L.Icon.Default.imagePath" in document
    assert "<img src=x" not in document and "&lt;img src=x onerror=alert(1)&gt;" in document
    assert "training records (2)" in document  # the occurrence layer, hidden until switched on
    frame = map_iframe(document)
    assert frame.startswith('<iframe class="range-map" sandbox="allow-scripts"')  # no same-origin access
    assert "<script" not in frame  # the document is an escaped attribute value


def test_range_mapper_builds_once_and_maps_each_taxon(small_prior):
    from explorer.geo.combine import BoundPrior
    from explorer.geo.maps import RangeMapper

    prior = BoundPrior(small_prior, ["A a", "B b", "C c"], np.array([0, 1, 2]), np.array([True, True, False]), {})
    mapper = RangeMapper(prior, step=2.0)
    first = mapper.html(0, "A a", 10.0, 20.0)
    grid = mapper.grid(None)
    second = mapper.html(2, "C c")
    assert mapper.grid(None) is grid  # the trunk features are computed once
    assert "A a" in first and "No training records of this taxon" in second
    assert "held-in eBird records" not in first  # no records given: no layer of them


def test_range_mapper_offers_the_records_it_is_given(small_prior):
    from explorer.geo.combine import BoundPrior
    from explorer.geo.maps import RangeMapper

    prior = BoundPrior(small_prior, ["A a", "B b"], np.array([0, 1]), np.array([True, True]), {})
    calls = []

    def load_points():
        calls.append(1)
        return {1: (np.array([10.0, 11.0, 12.0]), np.array([20.0, 21.0, 22.0]))}

    mapper = RangeMapper(prior, load_points, step=2.0)
    assert "held-in eBird records (3)" in mapper.html(1, "B b") and "held-in eBird records" not in mapper.html(0, "A a")
    assert calls == [1]  # read once, when the mapper warms up


def test_range_mapper_keeps_a_bounded_number_of_recent_maps(small_prior):
    from explorer.geo.combine import BoundPrior
    from explorer.geo.maps import RECENT_MAPS, RangeMapper

    prior = BoundPrior(small_prior, ["A a", "B b", "C c"], np.array([0, 1, 2]), np.array([True, True, True]), {})
    mapper = RangeMapper(prior, step=2.0)
    first = mapper.html(0, "A a", 10.0, 20.0)
    assert mapper.html(0, "A a", 10.0, 20.0) is first  # the same map again (a slider moved): not redrawn
    for i in range(RECENT_MAPS + 3):
        mapper.html(1, "B b", float(i), 0.0)
    assert len(mapper._recent) == RECENT_MAPS and mapper.html(0, "A a", 10.0, 20.0) is not first


def test_a_map_without_a_place_opens_on_the_range():
    from explorer.geo.maps import LandGrid, range_bounds

    lat, lon = np.array([45.0, 40.0, 10.0, -30.0]), np.array([-80.0, -100.0, 20.0, 150.0])
    grid = LandGrid(1.0, lat, lon, np.zeros(4, int), np.zeros(4, int), np.zeros((4, 2), np.float32))
    # North America scores high, Africa a little (below half the best), Australia nothing
    assert range_bounds(grid, np.array([0.9, 0.6, 0.3, 0.0])) == [[39.0, -101.0], [46.0, -79.0]]
    assert range_bounds(grid, np.array([0.9, 0.6, 0.3, 0.0]), share=0.3) == [[9.0, -101.0], [46.0, 21.0]]
    assert range_bounds(grid, np.zeros(4)) is None  # nothing drawn: the world view stays
