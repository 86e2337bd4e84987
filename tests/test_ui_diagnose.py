"""The Diagnose tab's handlers (the browser test drives the page; these check every output's content)."""

from dataclasses import replace
from pathlib import Path

import gradio as gr
import pytest
from conftest import ROOT

from explorer.diagnose.schema import load_table
from explorer.services.resources import Resources, load_representations
from explorer.settings import Settings
from explorer.ui.changed import Sent
from explorer.ui.dashboard_handlers import REMEMBERED
from explorer.ui.dashboard_state import DashboardFilters, DashboardSession


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
    passerine_errors = DashboardFilters(
        table="cub100_effnet_head", clade_rank="order", clade="Passeriformes", outcome="incorrect"
    )
    shown = dashboard.refresh(passerine_errors)
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
    shown = geo_outputs(resources_without_photos, out, table, DashboardFilters())
    assert "no places" in shown[out.geo_summary] and shown[out.geo_clades] is None
    assert shown[out.geo_gallery] == [] and shown[out.geo_state]["rows"] == [] and shown[out.geo_compare] is None


def test_an_empty_view_says_no_photos_match(dashboard):
    from explorer.ui.dashboard_handlers import NO_MATCH

    shown = dashboard.refresh(DashboardFilters(table="cub100_effnet_head", max_conf=0.01, outcome="correct"))
    assert shown[dashboard.outputs.summary] == NO_MATCH
    assert "nan" not in str(shown[dashboard.outputs.calibration])


def test_comparison_obeys_the_filters_and_counts_only_photos_both_models_name(dashboard, resources_without_photos):
    out = dashboard.outputs
    gulls = DashboardFilters(table="cub100_effnet_head", clade_rank="family", clade="Laridae", other="inat_bird")
    shown = dashboard.refresh(gulls)
    a, b = (resources_without_photos.tables[n] for n in ("cub100_effnet_head", "inat_bird"))
    view = a[(a["true_family"] == "Laridae") & (a["status"] == "ok") & (a["note"].fillna("") == "")]
    named = view[view["photo_id"].isin(b.loc[b["in_vocab"], "photo_id"].astype(str))]
    assert len(named) < len(view)  # inat_bird lacks some of these gulls: they are left out, not its errors
    assert f"**{len(named)}** photos in view" in shown[out.compare_text]
    per_clade = shown[out.compare_plot].data[0]
    assert list(per_clade.y) == ["Laridae"] and list(per_clade.customdata) == [len(named)]
    b_right = b.set_index(b["photo_id"].astype(str)).loc[named["photo_id"].astype(str), "correct_1"].mean()
    assert per_clade.x[0] == pytest.approx(b_right - named["correct_1"].mean())
    none = dashboard.refresh(OPENING)
    assert none[out.compare_plot] is None and none[out.disagreements] is None


def test_min_above_max_confidence_is_refused_at_the_field(dashboard):
    out = dashboard.outputs
    shown = dashboard.refresh(replace(OPENING, min_conf=0.7, max_conf=0.4))
    assert set(shown) == {out.min_conf, out.max_conf, out.sent}  # nothing else redrawn: the last valid view stays
    assert shown[out.min_conf]["info"] == "0.7 is above the max (0.4), so no photo could match: lower it."
    assert shown[out.sent] == Sent(min_note=shown[out.min_conf]["info"], max_note="")
    typed = dashboard.refresh(replace(OPENING, min_conf=-0.5))
    assert typed[out.min_conf]["info"] == "-0.5 is outside 0..1: using 0." and typed[out.min_conf]["value"] == 0
    assert "**cub100_effnet_head**" in typed[out.summary]
    fixed = dashboard.refresh(
        OPENING, DashboardSession(sent=typed[out.sent])
    )  # a valid value again: the note shown last is cleared, and the untouched max slider is left alone
    assert fixed[out.min_conf]["info"] == "" and fixed[out.min_conf]["value"] == 0
    assert skipped(fixed[out.max_conf])


# the second table's opening filters (everything in view)
OPENING = DashboardFilters(table="cub100_effnet_head")


def skipped(value) -> bool:
    return isinstance(value, dict) and value == gr.skip()


def test_only_the_outputs_that_changed_are_sent(dashboard):
    out = dashboard.outputs
    first = dashboard.refresh(OPENING)
    assert not any(skipped(v) for c, v in first.items() if c not in (out.min_conf, out.max_conf))  # all, at first
    again = dashboard.refresh(OPENING, DashboardSession(sent=first[out.sent]))
    remembered = {getattr(out, name) for name in REMEMBERED}
    assert {c for c, v in again.items() if skipped(v)} == remembered | {out.min_conf, out.max_conf}
    wrong = dashboard.refresh(replace(OPENING, outcome="incorrect"), DashboardSession(sent=first[out.sent]))
    left = {c for c in remembered if skipped(wrong[c])}
    # the errors only: every chart of the photos changes; the comparison (none chosen) and the per-rank heads
    # (this table has none) do not, nor the list of photos behind the errors (the errors are the same photos)
    unchanged = {out.compare_plot, out.compare_ranks_plot, out.compare_text, out.disagreements, out.heads_text}
    assert unchanged <= left and out.summary not in left and out.sunburst not in left
    assert wrong[out.sent] != first[out.sent] and again[out.sent] == first[out.sent]


def test_csv_downloads_hold_the_view_and_its_tables(resources_without_photos):
    import pandas as pd

    from explorer.diagnose.causes import surroundings_by_clade
    from explorer.diagnose.metrics import Filters, accuracy_by_clade, filter_table
    from explorer.ui.diagnose_sections import view_csv_files

    filters = DashboardFilters(
        table="cub100_effnet_head",
        clade_rank="order",
        clade="Passeriformes",
        outcome="incorrect",
        other="inat_bird",
        geo_prior="inat_bird",
    )
    paths = view_csv_files(resources_without_photos, filters)
    names = [Path(p).name for p in paths]
    assert names == [
        "cub100_effnet_head-photos-in-view.csv",
        "cub100_effnet_head-clades-by-family.csv",
        "cub100_effnet_head-confused-pairs.csv",
        "cub100_effnet_head-errors.csv",
        "cub100_effnet_head-causes.csv",
        "cub100_effnet_head-surroundings-by-family.csv",
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
    errors = pd.read_csv(paths[3])
    assert len(errors) == len(view)  # every photo in this view is an error, each with its causes
    assert errors["causes"].notna().all() and "label_issue_score" in errors.columns
    causes = pd.read_csv(paths[4]).set_index("cause")
    assert causes.loc["lookalike", "errors"] == errors["causes"].str.contains("lookalike").sum()
    surroundings = pd.read_csv(paths[5])  # every family with 5 photos in view, most often by their surroundings
    expected = surroundings_by_clade(view, "family", 5)
    assert surroundings["family"].tolist() == expected["family"].tolist() and len(surroundings) > 0
    compared = pd.read_csv(paths[6])
    assert compared["prior"].tolist() == ["birdnet", "inat_bird"]  # the table's default first
    placed = view[view["lat"].notna() & view["in_vocab"] & (view["status"] == "ok")]
    ours = compared.set_index("prior").loc["inat_bird"]
    fixed = int((~placed["correct_1"] & placed["inat_bird__geo_correct_1"]).sum())
    assert ours["photos"] == len(placed) and ours["fixed"] == fixed


def test_representation_map_shows_the_photos_in_view_and_a_click_finds_its_row(dashboard, resources_without_photos):
    from explorer.ui.representation_section import MapPoints, picked_row

    out = dashboard.outputs
    tits = DashboardFilters(table="inat_bird", clade_rank="family", clade="Paridae", map_rank="genus")
    closed = dashboard.refresh(tits, DashboardSession(map_open=False))
    assert closed[out.map_plot] is None and closed[out.map_state] == MapPoints()  # drawn only while it is open
    shown = dashboard.refresh(tits, DashboardSession(map_open=True))
    table = resources_without_photos.tables["inat_bird"]
    view = table[(table["true_family"] == "Paridae") & (table["note"].fillna("") == "")]
    state = shown[out.map_state]
    assert state.table == "inat_bird" and list(state.photo_ids) == view["photo_id"].astype(str).tolist()
    figure = shown[out.map_plot]
    assert sum(len(trace.x) for trace in figure.data) == len(view)
    assert {trace.name for trace in figure.data} == set(view["true_genus"].astype(str))  # under 10 genera: no grey
    assert f"{len(view):,} of the {len(view):,} photos in view are on the map" in shown[out.map_text]
    row = picked_row(resources_without_photos, "3:1700000000", state)
    assert row["photo_id"] == state.photo_ids[3]
    assert picked_row(resources_without_photos, "99999:1", state) is None
    assert picked_row(resources_without_photos, "not a number", state) is None
    other = dashboard.refresh(replace(OPENING, map_rank="order"), DashboardSession(map_open=True))
    assert len(other[out.map_state].photo_ids) == 2999
    heads = other[out.heads_table]  # the CUB-100 model has per-rank heads; the bird model has none
    assert heads["visible"] and heads["value"].iloc[0, :2].tolist() == ["order", 2999]
    assert heads["value"].iloc[:, 0].tolist() == ["order", "family", "genus", "species"]
    assert shown[out.heads_table]["visible"] is False and "has no per-rank heads" in shown[out.heads_text]
    assert len(other[out.map_plot].data) == 11  # ten orders coloured, the rest grey


def test_a_sections_own_control_redraws_that_section_alone(dashboard, resources_without_photos):
    """The clade-table rank, the geo-prior's controls, the second table and the map's colour each redraw their own
    section: the same values the whole dashboard's handler gives, and nothing else."""
    from explorer.ui.dashboard_handlers import section_handlers

    out = dashboard.outputs
    own = section_handlers(resources_without_photos, out)
    assert set(own) == {
        *("list_rank", "min_photos", "geo_kind", "geo_prior", "other", "map_rank", "report_rank"),
        *("cause", "error_order"),
    }
    filters = DashboardFilters(
        table="cub100_effnet_head",
        clade_rank="order",
        clade="Passeriformes",
        outcome="incorrect",
        list_rank="genus",
        min_photos=3,
        geo_kind="broke",
        other="inat_bird",
    )
    whole = dashboard.refresh(filters)
    for name, (handler, outputs) in own.items():
        shown = handler(filters)
        assert set(shown) <= set(outputs), name  # its section's outputs, never another's
        for component in shown:
            if component is out.sent:  # what it remembers of its own outputs is what the whole handler remembers
                assert shown[out.sent].marks.items() <= whole[out.sent].marks.items(), name
            elif component in (out.compare_plot, out.compare_ranks_plot, out.confusion_plot, out.cause_plot):
                assert shown[component].to_json() == whole[component].to_json()
            elif hasattr(shown[component], "equals"):
                assert shown[component].equals(whole[component]), name
            else:
                assert shown[component] == whole[component], name
    redrawn = {out.clades, out.geo_clades, out.cause_plot, out.surroundings, out.sent}
    assert set(own["list_rank"][0](filters)) == redrawn
    assert set(own["min_photos"][0](filters)) == redrawn  # the fewest photos a clade needs: the same tables
    by_cause = own["cause"][0](replace(filters, cause="lookalike", error_order="label most doubtful first"))
    assert set(by_cause) <= {out.gallery, out.error_table, out.errors_state, out.sent}
    assert set(by_cause[out.error_table]["causes"]) and all(
        "lookalike" in c for c in by_cause[out.error_table]["causes"]
    )
    assert own["map_rank"][0](filters) == {}  # the map is closed: nothing to draw
    assert own["geo_kind"][0](replace(filters, min_conf=0.7, max_conf=0.4)) == {}  # refused range


def test_the_opening_dashboard_is_drawn_into_the_components(dashboard):
    """The page opens with the default table's dashboard already in the components' values (no request for it)."""
    import json

    from explorer.ui.demo import draw_initial_dashboard

    out = dashboard.outputs
    assert draw_initial_dashboard(dashboard)
    name = dashboard.inputs.controls["table"].value
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
    import threading

    from explorer.ui.demo import build_demo

    warmed = threading.Event()
    demo = build_demo(real_resources, warmed)
    assert warmed.wait(timeout=300)  # the warm-up thread has drawn the other tables' dashboards
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


def test_every_filter_is_one_field_and_one_control_of_that_name(dashboard):
    """The controls are named after DashboardFilters' fields, the session's states after DashboardSession's: a
    filter added to one and not the other fails here (and at start-up), instead of shifting the other values."""
    from dataclasses import fields

    assert sorted(dashboard.inputs.controls) == sorted(f.name for f in fields(DashboardFilters))
    assert sorted(dashboard.inputs.states) == ["clade_key", "map_open", "sent"]
    assert dashboard.inputs.components == {*dashboard.inputs.controls.values(), *dashboard.inputs.states.values()}


def test_a_control_without_a_field_or_a_field_without_a_control_is_refused(dashboard):
    from explorer.ui.dashboard_state import DashboardInputs

    controls, states = dict(dashboard.inputs.controls), dashboard.inputs.states
    colour = controls.pop("map_rank")
    with pytest.raises(ValueError, match=r"fields without a component \['map_rank'\], components without a field \[\]"):
        DashboardInputs(controls, states)
    with pytest.raises(ValueError, match=r"fields without a component \[\], components without a field \['colour'\]"):
        DashboardInputs({**controls, "map_rank": colour, "colour": colour}, states)
    with pytest.raises(ValueError, match=r"DashboardSession .* fields without a component \['sent'\]"):
        DashboardInputs({**controls, "map_rank": colour}, {k: v for k, v in states.items() if k != "sent"})


def test_the_page_opens_with_the_filters_defaults(dashboard):
    """The controls open with DashboardFilters' defaults; only the table and the geo-prior depend on the tables
    (no default model among them here: the first table; the first prior any table holds)."""
    opening = dashboard.inputs.opening()
    assert opening == DashboardFilters(table="cub100_effnet_head", geo_prior="birdnet")


def test_an_events_values_are_read_by_name_and_as_their_fields_types(dashboard):
    """Gradio hands a handler of a set of inputs one dict {component: value}; the adapter reads it by name, a
    slider's 3.0 photos as 3."""
    inputs = dashboard.inputs
    controls, states = inputs.controls, inputs.states
    values = {c: c.value for c in inputs.components}
    values |= {controls["table"]: "inat_bird", controls["min_photos"]: 3.0, controls["other"]: "cub100_effnet_head"}
    values |= {states["map_open"]: True, states["clade_key"]: "inat_bird|(all)", states["sent"]: Sent(min_note="x")}
    filters, session = inputs.read(values)
    assert filters == replace(inputs.opening(), table="inat_bird", min_photos=3, other="cub100_effnet_head")
    assert type(filters.min_photos) is int
    assert session == DashboardSession(map_open=True, clade_key="inat_bird|(all)", sent=Sent(min_note="x"))
    assert inputs.handler(lambda f, s: (f.table, s.clade_key))(values) == ("inat_bird", "inat_bird|(all)")
    assert inputs.filters_handler(lambda f: f.other)(values) == "cub100_effnet_head"
    with pytest.raises(KeyError):  # a control missing from the event's inputs is an error, never a default
        inputs.read({c: v for c, v in values.items() if c is not controls["outcome"]})


def test_a_table_of_other_weights_is_flagged_on_the_page_and_in_the_api(tiny_classifier, hand_table):
    """hand_table is tiny's; the same table under other weights is flagged in the summary, the inspector's text and
    the tables API, naming both hashes; the table of the loaded weights is not."""
    from explorer.services.inspection import inspect_error
    from explorer.ui.api import api_handlers
    from explorer.ui.diagnose_tab import build_diagnose_tab

    other = hand_table.assign(weights_sha256="f" * 64)
    settings = Settings(checkpoint_dir=Path("."), data_root=Path("/nonexistent"))
    resources = Resources({"tiny": tiny_classifier}, {}, [], settings, {"current": hand_table, "other": other})
    loaded = tiny_classifier.weights_sha256
    assert resources.stale_note("current") == ""
    assert resources.stale_note("other") == (
        f"**This table was made by other weights than the loaded `tiny`** (table: ffffffffffff; loaded: "
        f"{loaded[:12]}). Its numbers are those weights' answers; Grad-CAMs drawn now are the loaded weights'. Run "
        "`explorer-evaluate --model tiny` again to bring it up to date."
    )
    assert api_handlers(resources)["tables"]() == [
        {
            "table": "current",
            "model": "tiny",
            "photos": 6,
            "weights_sha256": [loaded],
            "loaded_weights_sha256": loaded,
            "made_by_loaded_weights": True,
        },
        {
            "table": "other",
            "model": "tiny",
            "photos": 6,
            "weights_sha256": ["f" * 64],
            "loaded_weights_sha256": loaded,
            "made_by_loaded_weights": False,
        },
    ]
    with gr.Blocks():
        view = build_diagnose_tab(resources)
    flagged = view.refresh(DashboardFilters(table="other"))[view.outputs.summary]
    assert flagged.startswith("⚠ **This table was made by other weights than the loaded `tiny`**")
    assert "other weights" not in view.refresh(DashboardFilters(table="current"))[view.outputs.summary]
    row = resources.row("other", 1)
    assert "made by other weights than the loaded tiny" in inspect_error(resources, row).html
    assert "other weights" not in inspect_error(resources, resources.row("current", 1)).html


def test_the_photo_set_filter_narrows_every_chart_to_one_set(dashboard, resources_without_photos):
    """The shipped inat_bird table holds two photo sets: each alone, then both, in the summary's photo count."""
    import re

    from explorer.ui.dashboard_layout import photo_sets

    out = dashboard.outputs
    menu = dashboard.inputs.controls["photo_set"].choices
    assert [c[0] for c in menu] == ["(every photo set)", *photo_sets(resources_without_photos)]
    assert {"birds525-valid", "cub100-test"} <= set(photo_sets(resources_without_photos))
    counts = {}
    for photo_set in ("(every photo set)", "birds525-valid", "cub100-test"):
        shown = dashboard.refresh(DashboardFilters(table="inat_bird", photo_set=photo_set, exclude_noted=False))
        counts[photo_set] = int(re.search(r"\): (\d+) photos of", shown[out.summary])[1])
    assert counts == {"(every photo set)": 4109, "birds525-valid": 1110, "cub100-test": 2999}


def test_a_comparison_with_no_shared_photo_says_how_to_get_one(tiny_classifier, hand_table):
    from explorer.ui.diagnose_sections import comparison_outputs

    elsewhere = hand_table.assign(photo_id=[f"other:{i}" for i in range(6)], model="other_model")
    settings = Settings(checkpoint_dir=Path("."), data_root=Path("/nonexistent"))
    resources = Resources({"tiny": tiny_classifier}, {}, [], settings, {"mine": hand_table, "theirs": elsewhere})
    with gr.Blocks():
        from explorer.ui.diagnose_tab import build_diagnose_tab

        view = build_diagnose_tab(resources)
    from explorer.ui.diagnose_sections import filtered_view

    filters = DashboardFilters(table="mine", other="theirs", exclude_noted=False)
    text = comparison_outputs(resources, view.outputs, filtered_view(resources, filters), filters)[
        view.outputs.compare_text
    ]
    assert text.startswith("**0** photos in view that both tables hold (matched by their files' contents)")
    assert "evaluate `other_model` on them too: `explorer-evaluate --model other_model --images YOUR_PHOTOS" in text


def test_the_faithfulness_section_lists_every_measured_model_and_method(real_resources, tmp_path):
    """The shipped reports: each table's six methods and the random map; a table without one is named with the
    command that measures it."""
    from dataclasses import replace

    from explorer.cam.gradcam import BATCHED_METHODS
    from explorer.diagnose.map_faithfulness import RANDOM_MAP
    from explorer.ui.faithfulness_section import faithfulness_table

    found, missing = faithfulness_table(real_resources)
    assert missing == [] and len(found) == 7 * len(real_resources.tables)
    assert found.groupby("model")["method"].apply(list).map(lambda m: m == [*BATCHED_METHODS, RANDOM_MAP]).all()
    empty = replace(real_resources, settings=replace(real_resources.settings, eval_dir=tmp_path, base_eval_dirs=()))
    found, missing = faithfulness_table(empty)
    assert found.empty and len(missing) == len(real_resources.tables)  # no report found: each table named
    assert "`inat_bird`: not measured (`explorer-faithfulness --model inat_bird`)" in missing
