"""Combining a classifier with a geo-prior: floored, renormalised, unknown taxa neutral, batch = row by row."""

import numpy as np
import pytest


def test_combine_reranks_floors_and_keeps_unknown_taxa_neutral():
    from explorer.geo.combine import align_taxa, combine

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
    from explorer.geo.combine import combine

    vision = np.array([0.7, 0.3])
    result = combine(vision, None, np.array([0, 1]), np.array([True, True]))
    assert np.allclose(result.combined, vision) and np.isnan(result.geo).all()


def test_combine_many_equals_combine_row_by_row():
    from explorer.geo.combine import combine, combine_many

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
