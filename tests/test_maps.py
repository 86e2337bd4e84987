"""Range-map pieces (groundwork): the land grid, one-matrix-vector-product ranges, escaped HTML."""

import numpy as np
import pytest

from explorer.geo import GeoPrior, GeoPriorConfig, presence
from explorer.maps import build_land_grid, land_cells, range_map, range_scores, score_raster


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
