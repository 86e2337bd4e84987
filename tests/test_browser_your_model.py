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
    with launched_app(folder / "app.log", *args, "--data-root", str(folder)) as (url, _process):
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
