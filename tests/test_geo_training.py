"""Training the geo-prior on a tiny synthetic world and judging it on held-out sites."""

import numpy as np
import pandas as pd
import pytest

from explorer.geo.range_model import presence
from explorer.geo.training import mean_average_precision


def test_mean_average_precision_known_answer():
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.7], [0.7, 0.15]])  # 4 sites x 2 taxa
    present = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=bool)
    value, counted = mean_average_precision(scores, present)
    # taxon 0: its sites rank 1, 2 -> AP 1; taxon 1: its sites rank 1 and 3 -> AP (1 + 2/3) / 2
    assert counted == 2 and value == pytest.approx((1 + (1 + 2 / 3) / 2) / 2)


def test_site_presence():
    from explorer.geo.training import site_presence

    records = pd.DataFrame(
        {"lat": [1.0, 1.02, 5.0], "lon": [2.0, 2.02, 6.0], "site": ["a", "a", "b"], "taxon_index": [0, 1, 1]}
    )
    sites, present = site_presence(records, 3)
    assert list(sites["site"]) == ["a", "b"] and present.tolist() == [[True, True, False], [False, True, False]]


def test_training_learns_a_known_range(tiny_world):
    scores = presence(tiny_world, np.array([50.0, -20.0, 0.0]), np.array([10.0, -55.0, 150.0]))
    assert scores[0, 0] > 0.5 and scores[0, 1] < 0.2  # Europe: taxon 0 yes, taxon 1 no
    assert scores[1, 1] > 0.5 and scores[1, 0] < 0.2  # South America: the reverse
    assert scores[2].max() < 0.2  # the mid-Pacific: neither
