"""A cause for every error, on a hand-built table: each test, several causes per photo, none found, the gallery's
orders, per clade, and the causes a table cannot test."""

import numpy as np
import pandas as pd
import pytest

from explorer.diagnose.causes import (
    NO_CAUSE,
    cause_totals,
    caused_errors,
    causes_by_clade,
    untested,
    with_causes,
)
from explorer.diagnose.causes import (
    tested as causes_tested,  # not collected as a test
)
from explorer.diagnose.frames import to_frame

T, F = True, False
ROWS = [
    # truth, prediction, correct, in_vocab, in_scope, label score, divergence, geo right, family, confidence
    ("a1", "a2", F, T, T, 0.1, "species", F, "A", 0.9),  # lookalike (same genus)
    ("a1", "a2", F, T, F, 0.7, "species", F, "A", 0.8),  # lookalike, out of scope, label
    ("b1", "c1", F, T, T, 0.9, "family", F, "B", 0.7),  # label; b1 -> c1 three times: a confused pair
    ("b1", "c1", F, T, T, 0.2, "family", F, "B", 0.6),  # lookalike (the pair)
    ("b1", "c1", F, T, T, np.nan, "family", F, "B", 0.5),  # lookalike (the pair)
    ("x9", "c1", F, F, T, np.nan, "order", F, "B", 0.4),  # unknown species
    ("c1", "b2", F, T, T, 0.3, "family", F, "C", 0.95),  # no cause found
    ("c1", "c1", T, T, T, 0.0, "correct", F, "C", 0.99),  # right, but the place broke it
    ("c1", "c1", T, T, T, 0.0, "correct", T, "C", 0.98),  # right: no error
]


@pytest.fixture
def table():
    columns = ["true_name", "pred_name", "correct_1", "in_vocab", "in_scope", "label_issue_score"]
    columns += ["divergence_rank", "geo_correct_1", "true_family", "confidence"]
    frame = pd.DataFrame(ROWS, columns=columns)
    frame["status"] = "ok"
    frame["path"] = [f"p{i}.jpg" for i in range(len(frame))]
    return frame


def test_each_error_gets_every_cause_a_test_finds(table):
    found = with_causes(to_frame(table)).to_pandas()
    assert found["_row"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7]  # the correct photo the place broke is listed too
    assert found["causes"].tolist() == [
        "lookalike",
        "out of scope; label probably wrong; lookalike",
        "label probably wrong; lookalike",
        "lookalike",
        "lookalike",
        "unknown species",
        NO_CAUSE,
        "the place broke it",
    ]
    assert found["image_error"].tolist() == [T] * 7 + [F]


def test_the_gallery_lists_one_cause_in_either_order(table):
    view = to_frame(table)
    every = caused_errors(view, only=["true_name", "confidence"])
    assert every["_row"].tolist() == [6, 0, 1, 2, 3, 4, 5]  # image errors, most confident first
    labels = caused_errors(view, "label probably wrong", "label most doubtful first", only=["path"])
    assert labels["_row"].tolist() == [2, 1] and labels["path"].tolist() == ["p2.jpg", "p1.jpg"]
    doubtful = caused_errors(view, order="label most doubtful first", only=["path"])
    assert doubtful["_row"].tolist() == [2, 1, 6, 3, 0, 4, 5]  # unscored last, in table order
    assert caused_errors(view, "the place broke it", only=["path"])["_row"].tolist() == [7]
    assert caused_errors(view, NO_CAUSE, only=["path"])["causes"].tolist() == [NO_CAUSE]
    assert caused_errors(view, "lookalike", limit=2, only=["path"])["_row"].tolist() == [0, 1]
    with pytest.raises(ValueError, match="cause must be one of"):
        caused_errors(view, "gremlins")
    with pytest.raises(ValueError, match="order must be one of"):
        caused_errors(view, order="random")


def test_causes_add_up_per_clade_and_in_total(table):
    view = to_frame(table)
    by = causes_by_clade(view, "family").set_index("family")
    assert by["errors"].to_dict() == {"B": 4, "A": 2, "C": 2}
    assert by.loc["B", ["label probably wrong", "lookalike", "unknown species"]].tolist() == [1, 3, 1]
    assert by.loc["A", ["out of scope", "lookalike"]].tolist() == [1, 2]
    assert by.loc["C", ["the place broke it", NO_CAUSE]].tolist() == [1, 1]
    totals = cause_totals(view).set_index("cause")["errors"].to_dict()
    assert totals == {
        "unknown species": 1,
        "out of scope": 1,
        "label probably wrong": 2,
        "lookalike": 5,
        "the place broke it": 1,
        NO_CAUSE: 1,
    }


def test_a_table_without_a_tests_columns_does_not_test_it(table):
    older = to_frame(table.drop(columns=["label_issue_score", "geo_correct_1", "in_scope"]))
    assert [c.label for c in causes_tested(older)] == ["unknown species", "lookalike"]
    assert [c.label for c in untested(older)] == [
        "out of scope",
        "label probably wrong",
        "atypical photo",
        "rests on the surroundings",
        "the place broke it",
    ]
    found = with_causes(older).to_pandas()
    assert len(found) == 7 and found["causes"].tolist()[1] == "lookalike"
    assert caused_errors(older, "label probably wrong")["_row"].tolist() == []  # asked for, not tested: none
