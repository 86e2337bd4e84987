"""Per-class precision, recall and F1, and the confusion matrix's largest cells, on hand_table (CASES in conftest):
exact counts at species and at genus, and a cell's photos as the dashboard opens them."""

import math

import gradio as gr
import pytest

from explorer.diagnose.class_report import class_scores, confusion_cells, plot_confusion
from explorer.diagnose.frames import to_frame
from explorer.diagnose.metrics import Filters, filter_view


@pytest.fixture
def view(hand_table):
    return filter_view(to_frame(hand_table), Filters())


def _rows(frame):
    return [[None if isinstance(v, float) and math.isnan(v) else v for v in row] for row in frame.values.tolist()]


def test_class_scores_at_species_count_by_class_index(view):
    """In vocabulary: photos 0, 1 (chickadee), 2 (Mountain Chickadee), 3 (owl), 5 (Great Tit, called background)."""
    scores = class_scores(view, "species")
    assert scores.columns.tolist() == ["class", "photos", "predicted", "correct", "precision", "recall", "f1"]
    assert _rows(scores) == [
        ["Athene cunicularia", 1, 0, 0, None, 0.0, 0.0],  # never predicted: no precision, and found on no photo
        ["Parus major", 1, 1, 0, 0.0, 0.0, 0.0],
        ["Poecile gambeli", 1, 1, 0, 0.0, 0.0, 0.0],
        ["Poecile atricapillus", 2, 2, 1, 0.5, 0.5, 0.5],
        ["background", 0, 1, 0, 0.0, None, None],  # "nothing here" said once, on the Great Tit: no recall, last
    ]


def test_class_scores_at_genus_count_the_lineages(view):
    """At genus photo 1 (a chickadee called a Mountain Chickadee) is right; the background has no genus."""
    scores = class_scores(view, "genus").set_index("class")
    assert scores.loc["Poecile", ["photos", "predicted", "correct"]].tolist() == [3, 3, 2]
    assert scores.loc["Poecile", "precision"] == pytest.approx(2 / 3) and scores.loc["Poecile", "f1"] == pytest.approx(
        2 / 3
    )
    assert scores.loc["Parus", ["photos", "predicted", "correct"]].tolist() == [1, 1, 0]
    assert scores.loc["Athene", ["photos", "predicted"]].tolist() == [1, 0]
    with pytest.raises(ValueError, match="rank must be one of"):
        class_scores(view, "tribe")


def test_confusion_cells_largest_first_with_the_truths_share(view):
    cells = confusion_cells(view, "species")
    assert _rows(cells) == [
        ["Athene cunicularia", "Poecile atricapillus", 1, 1.0],
        ["Parus major", "background", 1, 1.0],
        ["Poecile atricapillus", "Poecile gambeli", 1, 0.5],
        ["Poecile gambeli", "Parus major", 1, 1.0],
    ]
    assert _rows(confusion_cells(view, "genus")) == [["Athene", "Poecile", 1, 1.0], ["Poecile", "Parus", 1, 1 / 3]]
    figure = plot_confusion(cells, "species")
    assert list(figure.data[0].y) == ["Athene cunicularia", "Parus major", "Poecile atricapillus", "Poecile gambeli"]
    assert plot_confusion(cells.iloc[0:0], "species") is None


def test_a_click_on_a_cell_shows_its_photos(tiny_classifier, hand_table, tmp_path):
    from explorer.services.resources import Resources
    from explorer.settings import Settings
    from explorer.ui.class_report_section import make_cell_photos
    from explorer.ui.dashboard_state import DashboardFilters

    settings = Settings(checkpoint_dir=tmp_path, data_root=tmp_path)
    resources = Resources({"tiny": tiny_classifier}, {}, [], settings, {"hand": hand_table})
    on_cell = make_cell_photos(resources)
    event = gr.SelectData(None, {"index": [2, 0], "value": "Poecile atricapillus"})
    gallery, refs = on_cell(DashboardFilters(table="hand", exclude_noted=False), event)
    assert gallery == []  # no photo files on this machine: no thumbnails, but the row is named
    row = resources.row("hand", refs["rows"][0])
    assert len(refs["rows"]) == 1 and (row["true_name"], row["pred_name"]) == (
        "Poecile atricapillus",
        "Poecile gambeli",
    )
    assert on_cell(DashboardFilters(table="hand"), gr.SelectData(None, {"index": [9, 0], "value": ""}))[0] == []
