"""The Diagnose tab's handlers (the browser test drives the page; these check every output's content)."""

from pathlib import Path

import gradio as gr
import pytest
from conftest import ROOT

from explorer.diagnose.schema import load_table
from explorer.services.resources import Resources, load_representations
from explorer.settings import Settings
from explorer.ui.diagnose_tab import REMEMBERED


@pytest.fixture(scope="module")
def resources_without_photos(tiny_classifier, tmp_path_factory):
    tables = {
        name: load_table(ROOT / "assets" / "eval" / f"{name}.parquet") for name in ("cub100_effnet_head", "inat_bird")
    }
    settings = Settings(checkpoint_dir=Path("."), data_root=tmp_path_factory.mktemp("no_photos"))
    reports = load_representations(ROOT / "assets" / "eval", tables)
    return Resources({"tiny": tiny_classifier}, {}, [], settings, tables, representations=reports)


@pytest.fixture(scope="module")
def dashboard(resources_without_photos):
    """The Diagnose tab built as the app builds it (components inside a Blocks)."""
    import gradio as gr

    from explorer.ui.diagnose_tab import build_diagnose_tab

    with gr.Blocks():
        return build_diagnose_tab(resources_without_photos)


def test_dashboard_handler_draws_every_output(dashboard, resources_without_photos):
    out = dashboard.outputs
    shown = dashboard.refresh(
        "cub100_effnet_head",
        "order",
        "Passeriformes",
        0.0,
        1.0,
        "incorrect",
        True,
        False,
        "family",
        5,
        "fixed",
        "(none)",
    )
    assert set(shown) == set(out)  # a value for every output, keyed by component
    refs, table = shown[out.errors_state], shown[out.error_table]
    assert refs["table"] == "cub100_effnet_head" and refs["prior"] is None
    state = [resources_without_photos.row(refs["table"], r) for r in refs["rows"]]  # what a click fetches
    assert "top-1 **0.0%**" in shown[out.summary] and len(state) == len(table) > 0
    assert [row["path"] for row in state] == table["path"].tolist()  # the row a click names is the row shown
    assert shown[out.gallery] == []  # no photos on this machine: no thumbnails, but every number is there
    assert all(row["true_order"] == "Passeriformes" for row in state)
    geo_refs, geo_clades = shown[out.geo_state], shown[out.geo_clades]
    geo_state = [resources_without_photos.row(geo_refs["table"], r, geo_refs["prior"]) for r in geo_refs["rows"]]
    assert "fixed" in shown[out.geo_summary] and shown[out.geo_gallery] == []  # the prior's fixes among these errors
    assert all(not row["correct_1"] and row["geo_correct_1"] for row in geo_state)
    assert 0 < geo_clades["fixed"].sum() <= len(geo_state) and geo_clades["broke"].sum() == 0  # clades >= 5 photos


def test_dashboard_geo_section_without_places(dashboard, resources_without_photos):
    from explorer.diagnose.schema import GEO_SCHEMA
    from explorer.ui.geo_section import geo_outputs

    out = dashboard.outputs
    table = resources_without_photos.tables["cub100_effnet_head"].drop(columns=list(GEO_SCHEMA))
    shown = geo_outputs(resources_without_photos, out, table, "family", 5, "fixed", None)
    assert "no places" in shown[out.geo_summary] and shown[out.geo_clades] is None
    assert shown[out.geo_gallery] == [] and shown[out.geo_state]["rows"] == [] and shown[out.geo_compare] is None


def test_an_empty_view_says_no_photos_match(dashboard):
    from explorer.ui.diagnose_tab import NO_MATCH

    shown = dashboard.refresh(
        "cub100_effnet_head", "(all)", None, 0.0, 0.01, "correct", True, False, "family", 5, "fixed", "(none)"
    )
    assert shown[dashboard.outputs.summary] == NO_MATCH
    assert "nan" not in str(shown[dashboard.outputs.calibration])


def test_comparison_obeys_the_filters_and_counts_only_photos_both_models_name(dashboard, resources_without_photos):
    out = dashboard.outputs
    shown = dashboard.refresh(
        "cub100_effnet_head", "family", "Laridae", 0.0, 1.0, "all", True, False, "family", 5, "fixed", "inat_bird"
    )
    a, b = (resources_without_photos.tables[n] for n in ("cub100_effnet_head", "inat_bird"))
    view = a[(a["true_family"] == "Laridae") & (a["status"] == "ok") & (a["note"].fillna("") == "")]
    named = view[view["photo_id"].isin(b.loc[b["in_vocab"], "photo_id"].astype(str))]
    assert len(named) < len(view)  # inat_bird lacks some of these gulls: they are left out, not its errors
    assert f"**{len(named)}** photos in view" in shown[out.compare_text]
    per_clade = shown[out.compare_plot].data[0]
    assert list(per_clade.y) == ["Laridae"] and list(per_clade.customdata) == [len(named)]
    b_right = b.set_index(b["photo_id"].astype(str)).loc[named["photo_id"].astype(str), "correct_1"].mean()
    assert per_clade.x[0] == pytest.approx(b_right - named["correct_1"].mean())
    none = dashboard.refresh(
        "cub100_effnet_head", "(all)", None, 0.0, 1.0, "all", True, False, "family", 5, "fixed", "(none)"
    )
    assert none[out.compare_plot] is None and none[out.disagreements] is None


def test_min_above_max_confidence_is_refused_at_the_field(dashboard):
    out = dashboard.outputs
    shown = dashboard.refresh(
        "cub100_effnet_head", "(all)", None, 0.7, 0.4, "all", True, False, "family", 5, "fixed", "(none)"
    )
    assert set(shown) == {out.min_conf, out.max_conf, out.sent}  # nothing else redrawn: the last valid view stays
    assert shown[out.min_conf]["info"] == "0.7 is above the max (0.4), so no photo could match: lower it."
    typed = dashboard.refresh(
        "cub100_effnet_head", "(all)", None, -0.5, 1.0, "all", True, False, "family", 5, "fixed", "(none)"
    )
    assert typed[out.min_conf]["info"] == "-0.5 is outside 0..1: using 0." and typed[out.min_conf]["value"] == 0
    assert "**cub100_effnet_head**" in typed[out.summary]
    fixed = dashboard.refresh(
        *OPENING, "family", None, False, "", typed[out.sent]
    )  # a valid value again: the note shown last is cleared, and the untouched max slider is left alone
    assert fixed[out.min_conf]["info"] == "" and fixed[out.min_conf]["value"] == 0
    assert skipped(fixed[out.max_conf])


# the second table's opening filters (everything in view), in the handler's order
OPENING = ["cub100_effnet_head", "(all)", None, 0.0, 1.0, "all", True, False, "family", 5, "fixed", "(none)"]


def skipped(value) -> bool:
    return isinstance(value, dict) and value == gr.skip()


def test_only_the_outputs_that_changed_are_sent(dashboard):
    out = dashboard.outputs
    args = OPENING
    first = dashboard.refresh(*args, "family", None, False, "", None)
    assert not any(skipped(v) for c, v in first.items() if c not in (out.min_conf, out.max_conf))  # all, at first
    again = dashboard.refresh(*args, "family", None, False, "", first[out.sent])
    remembered = {getattr(out, name) for name in REMEMBERED}
    assert {c for c, v in again.items() if skipped(v)} == remembered | {out.min_conf, out.max_conf}
    wrong = dashboard.refresh(*args[:5], "incorrect", *args[6:], "family", None, False, "", first[out.sent])
    left = {c for c in remembered if skipped(wrong[c])}
    # the errors only: every chart of the photos changes; the comparison (none chosen) and the per-rank heads
    # (this table has none) do not, nor the list of photos behind the errors (the errors are the same photos)
    unchanged = {out.compare_plot, out.compare_ranks_plot, out.compare_text, out.disagreements, out.heads_text}
    assert unchanged <= left and out.summary not in left and out.sunburst not in left
    assert wrong[out.sent] != first[out.sent] and again[out.sent] == first[out.sent]


def test_csv_downloads_hold_the_view_and_its_tables(resources_without_photos):
    import pandas as pd

    from explorer.diagnose.metrics import Filters, accuracy_by_clade, filter_table
    from explorer.ui.diagnose_sections import view_csv_files

    filters = ("order", "Passeriformes", 0.0, 1.0, "incorrect", True, False)
    paths = view_csv_files(
        resources_without_photos, "cub100_effnet_head", filters, "family", 5, "fixed", "inat_bird", "inat_bird"
    )
    names = [Path(p).name for p in paths]
    assert names == [
        "cub100_effnet_head-photos-in-view.csv",
        "cub100_effnet_head-clades-by-family.csv",
        "cub100_effnet_head-confused-pairs.csv",
        "cub100_effnet_head-errors.csv",
        "cub100_effnet_head-priors-compared.csv",
        "cub100_effnet_head-geo-inat_bird-fixed-by-family.csv",  # the prior chosen in the section
        "cub100_effnet_head-vs-inat_bird-by-family.csv",
    ]
    table = resources_without_photos.tables["cub100_effnet_head"]
    view = filter_table(table, Filters("order", "Passeriformes", 0.0, 1.0, "incorrect", True, False))
    photos = pd.read_csv(paths[0])
    assert len(photos) == len(view) > 0 and set(photos["true_order"]) == {"Passeriformes"}
    clades = pd.read_csv(paths[1])
    assert clades["clade"].tolist() == accuracy_by_clade(view, "family", 5)["clade"].tolist()
    assert len(pd.read_csv(paths[3])) == len(view)  # every photo in this view is an error
    compared = pd.read_csv(paths[4])
    assert compared["prior"].tolist() == ["birdnet", "inat_bird"]  # the table's default first
    placed = view[view["lat"].notna() & view["in_vocab"] & (view["status"] == "ok")]
    ours = compared.set_index("prior").loc["inat_bird"]
    fixed = int((~placed["correct_1"] & placed["inat_bird__geo_correct_1"]).sum())
    assert ours["photos"] == len(placed) and ours["fixed"] == fixed


def test_representation_map_shows_the_photos_in_view_and_a_click_finds_its_row(dashboard, resources_without_photos):
    from explorer.ui.representation_section import picked_row

    out = dashboard.outputs
    closed = dashboard.refresh(
        "inat_bird",
        "family",
        "Paridae",
        0.0,
        1.0,
        "all",
        True,
        False,
        "family",
        5,
        "fixed",
        "(none)",
        "genus",
        None,
        False,
    )
    assert closed[out.map_plot] is None and closed[out.map_state] == {}  # drawn only while the section is open
    shown = dashboard.refresh(
        "inat_bird",
        "family",
        "Paridae",
        0.0,
        1.0,
        "all",
        True,
        False,
        "family",
        5,
        "fixed",
        "(none)",
        "genus",
        None,
        True,
    )
    table = resources_without_photos.tables["inat_bird"]
    view = table[(table["true_family"] == "Paridae") & (table["note"].fillna("") == "")]
    state = shown[out.map_state]
    assert state["table"] == "inat_bird" and state["photo_ids"] == view["photo_id"].astype(str).tolist()
    figure = shown[out.map_plot]
    assert sum(len(trace.x) for trace in figure.data) == len(view)
    assert {trace.name for trace in figure.data} == set(view["true_genus"].astype(str))  # under 10 genera: no grey
    assert f"{len(view):,} of the {len(view):,} photos in view are on the map" in shown[out.map_text]
    row = picked_row(resources_without_photos, "3:1700000000", state)
    assert row["photo_id"] == state["photo_ids"][3]
    assert picked_row(resources_without_photos, "99999:1", state) is None
    assert picked_row(resources_without_photos, "not a number", state) is None
    other = dashboard.refresh(
        "cub100_effnet_head",
        "(all)",
        None,
        0.0,
        1.0,
        "all",
        True,
        False,
        "family",
        5,
        "fixed",
        "(none)",
        "order",
        None,
        True,
    )
    assert len(other[out.map_state]["photo_ids"]) == 2999
    heads = other[out.heads_table]  # the CUB-100 model has per-rank heads; the bird model has none
    assert heads["visible"] and heads["value"].iloc[0, :2].tolist() == ["order", 2999]
    assert heads["value"].iloc[:, 0].tolist() == ["order", "family", "genus", "species"]
    assert shown[out.heads_table]["visible"] is False and "has no per-rank heads" in shown[out.heads_text]
    assert len(other[out.map_plot].data) == 11  # ten orders coloured, the rest grey


def test_a_sections_own_control_redraws_that_section_alone(dashboard, resources_without_photos):
    """The clade-table rank, the geo-prior's controls, the second table and the map's colour each redraw their own
    section: the same values the whole dashboard's handler gives, and nothing else."""
    from explorer.ui.diagnose_tab import _section_handlers

    out = dashboard.outputs
    own = _section_handlers(resources_without_photos, out)
    assert set(own) == {"list_rank", "min_photos", "geo_kind", "geo_prior", "other", "map_rank"}
    filters = ("cub100_effnet_head", "order", "Passeriformes", 0.0, 1.0, "incorrect", True, False, "genus", 3)
    whole = dashboard.refresh(*filters, "broke", "inat_bird")
    for name, (handler, outputs) in own.items():
        shown = handler(*filters, "broke", "inat_bird")
        assert set(shown) <= set(outputs), name  # its section's outputs, never another's
        for component in shown:
            if component is out.sent:  # what it remembers of its own outputs is what the whole handler remembers
                assert shown[out.sent].items() <= whole[out.sent].items(), name
            elif component in (out.compare_plot, out.compare_ranks_plot):
                assert shown[component].to_json() == whole[component].to_json()
            elif hasattr(shown[component], "equals"):
                assert shown[component].equals(whole[component]), name
            else:
                assert shown[component] == whole[component], name
    assert set(own["list_rank"][0](*filters, "broke", "inat_bird")) == {out.clades, out.geo_clades, out.sent}
    assert own["map_rank"][0](*filters, "broke", "inat_bird") == {}  # the map is closed: nothing to draw
    assert own["geo_kind"][0](*filters[:3], 0.7, 0.4, *filters[5:], "broke", "inat_bird") == {}  # refused range


def test_the_opening_dashboard_is_drawn_into_the_components(dashboard):
    """The page opens with the default table's dashboard already in the components' values (no request for it)."""
    import json

    from explorer.ui.demo import draw_initial_dashboard

    out = dashboard.outputs
    assert draw_initial_dashboard(dashboard)
    name = dashboard.filters.table.value
    assert out.summary.value.startswith(f"**{name}**") and "photos" in out.summary.value
    assert json.loads(out.errors_plot.value)["data"][0]["type"] == "bar"  # as FastPlot sends it
    assert out.clades.value["columns"][:2] == ["clade", "photos"]  # as LightTable sends it
    assert out.errors_state.value["table"] == name and len(out.errors_state.value["rows"]) == len(
        out.error_table.value["rows"]
    )


def test_the_page_holds_only_the_tabs_and_the_hidden_api_row(real_resources):
    """Drawing the opening dashboard at build time (and warming the others) adds nothing to the page: the
    handlers answer updates as gr.update(...), where a component made while the layout is open (the clade menu's
    gr.Dropdown, the heads' gr.Dataframe) used to appear under the tabs as a stray, unlabelled control."""
    import time

    from explorer.ui.demo import build_demo

    demo = build_demo(real_resources)
    time.sleep(3)  # the warm-up thread draws the other tables' dashboards meanwhile
    assert [type(child).__name__ for child in demo.children] == ["Markdown", "Tabs", "Row"]
    assert demo.children[2].visible is False  # the API's inputs and outputs


MATPLOTLIB_AFTER_ONE_EVENT = """
import sys
{settle}
from gradio.utils import MatplotlibBackendMananger
manager = MatplotlibBackendMananger()  # what gradio wraps every event handler in
manager.__enter__()
manager.__exit__(None, None, None)
print("matplotlib.pyplot" in sys.modules)
"""


@pytest.mark.parametrize("settled, imports_pyplot", [(False, "True"), (True, "False")])
def test_the_first_event_does_not_import_pyplot_once_matplotlib_is_settled(settled, imports_pyplot):
    """Gradio reads matplotlib's backend around every handler; unsettled, the first read imports pyplot (0.3 s on
    the first click). The app settles it at start-up (demo.warm_dashboard)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the backend left to matplotlib's "auto"
    settle = "from explorer.ui.demo import settle_matplotlib; settle_matplotlib()" if settled else "import matplotlib"
    code = MATPLOTLIB_AFTER_ONE_EVENT.format(settle=settle)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True, env=env
    )
    assert done.stdout.strip() == imports_pyplot
