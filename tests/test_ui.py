"""UI glue that a browser test cannot reach cheaply: the dashboard handler and the inspector's fallbacks."""

from pathlib import Path

import pytest
from conftest import ROOT

from explorer.config import Settings
from explorer.evaluate import load_table
from explorer.resources import Resources


@pytest.fixture(scope="module")
def resources_without_photos(tiny_classifier, tmp_path_factory):
    table = load_table(ROOT / "assets" / "eval" / "cub100_effnet_head.parquet")
    settings = Settings(checkpoint_dir=Path("."), data_root=tmp_path_factory.mktemp("no_photos"))
    return Resources({"tiny": tiny_classifier}, {}, [], settings, {"cub100_effnet_head": table})


def test_dashboard_handler_draws_every_output(resources_without_photos):
    from explorer.ui import _make_dashboard_handler

    handler = _make_dashboard_handler(resources_without_photos)
    out = handler(
        "cub100_effnet_head", "order", "Passeriformes", 0.0, 1.0, "incorrect", True, False, "family", 5, "fixed"
    )
    summary, errors_plot, sunburst, clades, pairs, reliability, tradeoff, calibration, gallery, table, state = out[:11]
    assert "top-1 **0.0%**" in summary and len(state) == len(table) > 0
    assert gallery == []  # no photos on this machine: no thumbnails, but every number is there
    assert all(row["true_order"] == "Passeriformes" for row in state)
    geo_summary, geo_clades, geo_gallery, geo_state = out[11:]
    assert "fixed" in geo_summary and geo_gallery == []  # the photos the prior fixed among these errors
    assert all(not row["correct_1"] and row["geo_correct_1"] for row in geo_state)
    assert 0 < geo_clades["fixed"].sum() <= len(geo_state) and geo_clades["broke"].sum() == 0  # clades >= 5 photos


def test_dashboard_geo_section_without_places(resources_without_photos):
    from explorer.evaluate import GEO_SCHEMA
    from explorer.ui import _geo_outputs

    table = resources_without_photos.tables["cub100_effnet_head"].drop(columns=list(GEO_SCHEMA))
    text, clades, gallery, state = _geo_outputs(resources_without_photos, table, "family", 5, "fixed")
    assert "no places" in text and clades is None and gallery == [] and state == []


def test_inspector_without_photo_says_so(resources_without_photos):
    from explorer.dashboard import error_rows
    from explorer.ui import inspect_error

    row = error_rows(resources_without_photos.tables["cub100_effnet_head"]).iloc[0].to_dict()
    text, images = inspect_error(resources_without_photos, row)
    assert "not on this machine" in text and images == [] and "<table" in text


def test_temp_sweeper_deletes_old_uploads_and_keeps_example_files(tmp_path):
    import gradio as gr

    from explorer.ui import sweep_temp_files

    with gr.Blocks() as demo:
        image = gr.Image()
    folders = [tmp_path / f"hash{i}" for i in range(3)]
    files = []
    for folder in folders:
        folder.mkdir()
        files.append(folder / "photo.jpg")
        files[-1].write_bytes(b"x")
    demo.upload_file_set.update(str(f) for f in files)
    image.keep_in_cache = {str(files[2])}  # what Gradio keeps for examples
    assert sweep_temp_files(demo, ttl_s=3600) == 0 and all(f.exists() for f in files)  # young files stay
    assert sweep_temp_files(demo, ttl_s=-1) == 2
    assert not files[0].exists() and not folders[0].exists() and files[2].exists()
    assert str(files[0]) not in demo.upload_file_set


def test_models_tab_says_which_prior_and_how_many_species_it_covers(tiny_classifier):
    import numpy as np

    from explorer.geo import BoundPrior, GeoPrior, GeoPriorConfig, align_taxa
    from explorer.ui import models_markdown

    names = [lab.scientific_name for lab in tiny_classifier.labels]
    taxa = [names[0], names[1], "Other species"]
    prior = BoundPrior(
        GeoPrior(3, GeoPriorConfig(hidden=8, layers=1)),
        taxa,
        align_taxa(names, taxa),
        np.array([True, False, True]),  # the second species had no training records
        {"held_out_site_map": 0.25, "location_blind_map": 0.05},
        Path("geo/shared.safetensors"),
    )
    settings = Settings(checkpoint_dir=Path("."))
    text = models_markdown(Resources({"tiny": tiny_classifier}, {}, [], settings, {}, {"tiny": prior}))
    assert "`shared.safetensors`, 2 of its 3 taxa with records; 1 of this model's 4 species matched" in text
    assert "held-out site MAP 0.250 (location-blind 0.050)" in text
