"""The dashboard's columnar route (a polars lazy view over the table's polars copy) gives exactly what the pandas
route gives, on hand-built data and on a shipped table."""

from dataclasses import asdict

import numpy as np
import pandas as pd
import polars as pl
import pytest
from pandas.testing import assert_frame_equal

from explorer.diagnose.calibration import CalibrationData, fit_temperature, reliability
from explorer.diagnose.frames import ROW, Subset, narrowed, rows_at, to_frame
from explorer.diagnose.geo_effect import geo_effect
from explorer.diagnose.metrics import (
    Filters,
    accuracy_by_clade,
    clade_tree,
    confused_pairs,
    error_rows,
    errors_by_rank,
    filter_table,
    filter_view,
    rollup_tradeoff,
    summary,
)
from explorer.settings import PROJECT_ROOT

FILTERS = [
    Filters(),
    Filters(min_confidence=0.3, max_confidence=0.9),
    Filters(outcome="incorrect", exclude_noted=True),
    Filters(clade_rank="order", clade_name="Passeriformes", in_vocab_only=True),
]


def same(a, b) -> None:
    """Equal dataclasses, NaN equal to NaN."""
    np.testing.assert_equal(asdict(a), asdict(b))


def both_routes(table: pd.DataFrame, filters: Filters):
    return filter_table(table, filters), filter_view(to_frame(table), filters)


def assert_same_charts(table: pd.DataFrame, filters: Filters) -> None:
    pandas_view, lazy_view = both_routes(table, filters)
    same(summary(pandas_view), summary(lazy_view))
    for chart in (errors_by_rank, clade_tree, confused_pairs, rollup_tradeoff):
        assert_frame_equal(chart(pandas_view), chart(lazy_view))
    assert_frame_equal(accuracy_by_clade(pandas_view, "family"), accuracy_by_clade(lazy_view, "family"))
    assert_frame_equal(error_rows(pandas_view), error_rows(lazy_view))
    same(fit_temperature(pandas_view), fit_temperature(lazy_view))
    np.testing.assert_equal(reliability(pandas_view)[1], reliability(lazy_view)[1])


@pytest.mark.parametrize("filters", FILTERS)
def test_hand_table_same_on_both_routes(hand_table, filters):
    assert_same_charts(hand_table, filters)


def test_error_rows_most_confident_first_ties_in_table_order():
    table = pd.DataFrame(
        {
            "status": ["ok", "ok", "ok", "ok", "unreadable", "ok"],
            "correct_1": [False, False, True, False, False, False],
            "confidence": [0.5, 0.9, 0.99, 0.5, 1.0, 0.7],
            "path": ["a", "b", "c", "d", "e", "f"],
        }
    )
    assert error_rows(table)["path"].tolist() == ["b", "f", "a", "d"]
    assert error_rows(to_frame(table), limit=3)["path"].tolist() == ["b", "f", "a"]
    assert ROW not in error_rows(to_frame(table)).columns
    narrow = error_rows(to_frame(table), only=["path"], keep_row=True)  # just the columns a gallery reads
    assert narrow.values.tolist() == [["b", 1], ["f", 5], ["a", 0], ["d", 3]] and list(narrow.columns) == ["path", ROW]


def test_rows_at_gathers_by_position_within_a_view():
    frame = to_frame(pd.DataFrame({"x": [10, 11, 12, 13, 14], "keep": [True, False, True, True, False]}))
    view = frame.lazy().filter("keep")
    assert rows_at(view, np.array([2, 3]), ["x"])["x"].to_list() == [12, 13]
    assert rows_at(view, np.array([1, 3]), ["x"])["x"].to_list() == [13]  # row 1 is not in the view


def test_subset_gathers_by_position_and_keeps_its_filter_and_fields():
    frame = to_frame(pd.DataFrame({"x": [10, 11, 12, 13, 14], "keep": [True, False, True, True, False]}))
    view = Subset(frame, pl.col("keep"), {"y": pl.col("x") * 2})
    assert view.columns == [ROW, "x", "keep", "y"]
    assert rows_at(view, np.array([1, 2, 3]), ["x", "y"]).rows() == [(12, 24), (13, 26)]  # row 1 fails the filter
    assert rows_at(view, np.array([], dtype=np.int64), ["x"]).height == 0
    smaller = narrowed(view, pl.col("x") > 12)
    assert isinstance(smaller, Subset) and rows_at(smaller, np.array([0, 2, 3]))["x"].to_list() == [13]
    on_field = narrowed(view, pl.col("y") > 20)  # reads a field, which exists only after the filter: a plain query
    assert isinstance(on_field, pl.LazyFrame) and on_field.collect()["x"].to_list() == [12, 13]
    # a frame whose ROW is not the position (a slice of a bigger one): the gather falls back to testing every row
    shifted = Subset(frame[2:], pl.col("keep"))
    assert shifted.gather(np.array([2, 3])) is None
    assert rows_at(shifted, np.array([2, 3]), ["x"])["x"].to_list() == [12, 13]
    assert rows_at(shifted, np.array([7]), ["x"]).height == 0  # beyond the frame: no row, no error


def test_calibration_gathers_the_logits_of_its_own_rows(hand_table):
    data = CalibrationData.from_table(filter_view(to_frame(hand_table), Filters()))
    keep = (hand_table["status"] == "ok") & hand_table["in_vocab"]
    expected = hand_table.loc[keep, "top_logit_00"].to_numpy(np.float32)
    assert np.array_equal(data.logits[:, 0], expected)
    half = data.subset(np.arange(len(data.rows)) % 2 == 1)
    assert np.array_equal(half.logits[:, 0], expected[1::2])


SHIPPED = PROJECT_ROOT / "assets" / "eval" / "inat_bird.parquet"


@pytest.mark.skipif(not SHIPPED.is_file(), reason="needs the shipped evaluation table assets/eval/inat_bird.parquet")
@pytest.mark.parametrize("filters", FILTERS)
def test_shipped_table_same_on_both_routes_and_as_plain_pandas(filters):
    from explorer.diagnose.metrics import for_dashboard
    from explorer.diagnose.schema import load_table

    table = for_dashboard(load_table(SHIPPED))
    assert_same_charts(table, filters)
    pandas_view, lazy_view = both_routes(table, filters)
    known = pandas_view[pandas_view["in_vocab"]]  # the headline figure, computed the plain pandas way
    assert summary(lazy_view).top1 == pytest.approx(known["correct_1"].mean(), abs=1e-12)
    assert summary(lazy_view).photos == len(pandas_view)
    same(geo_effect(lazy_view), geo_effect(pandas_view))


def test_light_figures_keep_what_validation_used_to_expand():
    from explorer.diagnose.figures import plot_clade_sunburst, plot_scope_tradeoff

    ranks = {f"true_{r}": ["A"] for r in ("class", "order", "family", "genus")}
    sunburst = plot_clade_sunburst(pd.DataFrame({**ranks, "correct_1": [True]}))
    assert sunburst.data[0].marker.colorscale[0] == (0.0, "rgb(165,0,38)")  # RdYlGn spelt out: red at 0
    curve = pd.DataFrame({"threshold": [0.0, 1.0], "in_scope_kept": [1.0, 0.5], "out_of_scope_accepted": [0.5, 0.0]})
    known = pd.DataFrame({"threshold": [0.0, 1.0], "known_kept": [1.0, 0.9], "unknown_flagged": [np.nan, np.nan]})
    figure = plot_scope_tradeoff(curve, known, 0.25, float("nan"))
    assert [(t.name, t.xaxis) for t in figure.data] == [
        ("model's own photos kept", "x"),
        ("out-of-scope photos accepted", "x"),
        ("known species kept", "x2"),
    ]
    assert [(s.xref, s.x0) for s in figure.layout.shapes] == [("x", 0.25)]  # no line for a NaN threshold


def test_side_by_side_runs_sections_at_once_and_merges_them_in_order():
    import threading

    from explorer.diagnose.frames import side_by_side

    meet = threading.Barrier(2, timeout=10)  # each of two sections waits for the other: one after another, it breaks

    def section(key, value):
        def run():
            meet.wait()
            return {key: value, "shared": value}

        return run

    assert side_by_side(section("a", 1), section("b", 2)) == {"a": 1, "shared": 2, "b": 2}
    assert side_by_side() == {}

    def broken():
        raise ValueError("this section failed")

    with pytest.raises(ValueError, match="this section failed"):
        side_by_side(lambda: {"a": 1}, broken)
