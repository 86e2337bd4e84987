"""A user's own model in the launched app, as they first try it: `python app.py --checkpoint-dir mine --eval-dir
my_tables` shows their model and table beside the shipped ones; a table made by other weights than those loaded is
flagged (the API's tables, the dashboard); a new evaluation and a new table appear after the Models tab's reload,
without a restart, one click one request."""

import subprocess

import numpy as np
import pytest
from conftest import BROWSER_MARKS, SHOTS, NetworkWatch, chromium_page, write_tiny_checkpoint
from PIL import Image

from explorer.ui.launcher import launched_app

pytestmark = BROWSER_MARKS
FOLDERS = ("Black-capped_Chickadee", "poecile_gambeli", "Parus_major", "004.Burrowing_Owl")


def _evaluate(cards, photos, out, cwd):
    command = ["explorer-evaluate", "--no-shipped", "--checkpoint-dir", str(cards), "--model", "tiny"]
    done = subprocess.run(
        [*command, "--images", str(photos), "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=cwd
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def first_try(tmp_path_factory):
    """The user's folder: their card (the weights loaded), an older copy of it (other weights) that made their first
    table, and their photos in class folders; the app launched over the shipped folders and theirs."""
    folder = tmp_path_factory.mktemp("first_try")
    write_tiny_checkpoint(folder / "mine", name="tiny", seed=0, display_name="My tiny model")
    write_tiny_checkpoint(folder / "older", name="tiny", seed=1)
    rng = np.random.default_rng(0)
    for name in FOLDERS:
        for i in range(3):
            (folder / "photos" / name).mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / "photos" / name / f"{i}.jpg")
    _evaluate(folder / "older", folder / "photos", folder / "tables" / "tiny.parquet", folder)
    args = ["--checkpoint-dir", str(folder / "mine"), "--eval-dir", str(folder / "tables")]
    with launched_app(folder / "app.log", *args) as (url, _process):  # their photos lie outside the data root
        yield folder, url


def test_the_api_lists_every_table_and_flags_the_one_of_other_weights(first_try):
    from gradio_client import Client

    _folder, url = first_try
    tables = {t["table"]: t for t in Client(url, verbose=False).predict(api_name="/tables")}
    assert {"inat_bird", "cub100_effnet_head", "tiny"} <= set(tables)  # the shipped tables and the user's
    assert tables["tiny"]["made_by_loaded_weights"] is False and tables["tiny"]["photos"] == 12
    assert tables["cub100_effnet_head"]["made_by_loaded_weights"] is True


def test_the_dashboard_flags_the_table_and_a_reload_brings_the_new_one(first_try):
    folder, url = first_try
    with chromium_page(url) as page:
        page.get_by_role("tab", name="Diagnose").click()
        page.locator("#dash_table input").first.click()
        page.get_by_role("option", name="tiny", exact=True).click()
        summary = page.locator("#dash_summary .prose").first
        summary.filter(has_text="made by other weights than the loaded").wait_for(timeout=60_000)
        assert "Run explorer-evaluate --model tiny again" in summary.inner_text()
        page.locator("#dash_gallery").scroll_into_view_if_needed()
        page.wait_for_function(  # the user's photos (outside the data root) as thumbnails of the errors
            "() => { const i = [...document.querySelectorAll('#dash_gallery img')];"
            " return i.length > 0 && i.every(e => e.complete && e.naturalWidth > 0); }",
            timeout=30_000,
        )
        page.screenshot(path=str(SHOTS / "your_model_stale.png"), full_page=True)

        # the user evaluates again with the weights loaded, and adds a second table
        _evaluate(folder / "mine", folder / "photos", folder / "tables" / "tiny.parquet", folder)
        _evaluate(folder / "mine", folder / "photos", folder / "tables" / "tiny_again.parquet", folder)
        page.get_by_role("tab", name="Models").click()
        assert "My tiny model" in page.locator("#models_overview").inner_text()
        assert "inat_bird" in page.locator("#models_overview").inner_text()  # the shipped models are still there
        with NetworkWatch(page) as network:
            page.locator("#reload").click()
            note = page.locator("#reload_note")
            note.filter(has_text="Looked again").wait_for(timeout=120_000)
            network.wait_idle()
        assert "added table tiny_again; changed table tiny." in note.inner_text()
        assert len([r for r in network.sent if r.method == "POST"]) == 1  # one click, one request
        page.screenshot(path=str(SHOTS / "your_model_reloaded.png"), full_page=True)

        page.get_by_role("tab", name="Diagnose").click()
        page.locator("#dash_table input").first.click()
        page.get_by_role("option", name="tiny_again", exact=True).click()
        page.locator("#dash_summary .prose").first.filter(has_text="tiny_again").wait_for(timeout=60_000)
        assert "other weights" not in page.locator("#dash_summary .prose").first.inner_text()


def test_the_models_tab_at_phone_width(first_try):
    _folder, url = first_try
    with chromium_page(url, width=400, height=900) as page:
        page.get_by_role("tab", name="Models").click()
        page.locator("#reload").wait_for()
        assert page.evaluate("document.documentElement.scrollWidth") <= 400
        page.screenshot(path=str(SHOTS / "your_model_models_400.png"), full_page=True)


def test_per_class_scores_confusion_cells_and_the_photo_set_filter(first_try):
    """The shipped inat_bird table: one photo set alone; the per-class table and the largest confusions at
    species; a click on a cell shows its photos, a click on one opens the inspector: one request each."""
    _folder, url = first_try
    with chromium_page(url) as page:
        page.get_by_role("tab", name="Diagnose").click()
        summary = page.locator("#dash_summary .prose").first
        summary.filter(has_text="inat_bird").wait_for(timeout=60_000)
        page.locator("#dash_photo_set input").first.click()
        with NetworkWatch(page) as network:
            page.get_by_role("option", name="birds525-valid", exact=True).click()
            summary.filter(has_text="1075 photos of").wait_for(timeout=60_000)  # doubtful labels left out
            network.wait_idle()
        assert len([r for r in network.sent if r.method == "POST"]) == 1
        page.get_by_text("Per class: precision, recall, F1 and the largest confusions").click()
        scores = page.locator("#dash_class_scores")
        scores.locator("tr").nth(3).wait_for(timeout=30_000)
        assert scores.locator("th").all_inner_texts()[:7] == [
            "class",
            "photos",
            "predicted",
            "correct",
            "precision",
            "recall",
            "f1",
        ]
        page.locator("#dash_confusion").scroll_into_view_if_needed()  # plots are drawn when shown
        page.locator("#dash_confusion .js-plotly-plot").wait_for(timeout=30_000)
        cells = page.locator("#dash_confusion_cells tbody tr")
        first_cell = cells.first.inner_text().split("\t")
        with NetworkWatch(page) as network:
            cells.first.click()
            page.locator("#dash_cell_gallery img").first.wait_for(state="attached", timeout=60_000)
            page.locator("#dash_cell_gallery").scroll_into_view_if_needed()  # thumbnails load when shown
            page.wait_for_function(
                "() => { const i = [...document.querySelectorAll('#dash_cell_gallery img')];"
                " return i.length > 0 && i.every(e => e.complete && e.naturalWidth > 0); }",
                timeout=60_000,
            )
            network.wait_idle()
        assert len([r for r in network.sent if r.method == "POST"]) == 1
        count = page.locator("#dash_cell_gallery img").count()
        assert count == int(first_cell[2])  # as many photos as the cell counts
        with NetworkWatch(page) as network:
            page.locator("#dash_cell_gallery img").first.click()
            page.locator("#inspector img").nth(1).wait_for(timeout=90_000)  # the photo and its Grad-CAMs
            network.wait_idle()
        assert first_cell[0] in page.locator("#inspector_text").inner_text()
        page.screenshot(path=str(SHOTS / "class_report.png"), full_page=True)
    with chromium_page(url, width=400, height=900) as page:
        page.get_by_role("tab", name="Diagnose").click()
        page.get_by_text("Per class: precision, recall, F1 and the largest confusions").click()
        page.locator("#dash_class_scores tr").nth(3).wait_for(timeout=60_000)
        page.locator("#dash_confusion").scroll_into_view_if_needed()
        page.locator("#dash_confusion .js-plotly-plot").wait_for(timeout=30_000)
        assert page.evaluate("document.documentElement.scrollWidth") <= 400
        page.locator("#dash_confusion").screenshot(path=str(SHOTS / "class_report_400.png"))
