"""The Diagnose tab on a table the size of a validation set, in a real Chromium: 20,000 photos of 5,000 species
(benchmarks/validation_sized.py, with a synthetic map layout) added with --eval-dir. The sunburst says which rings
it left out, the clade table lists its best and worst with a note, a filter change is one request, and the map
draws its fixed sample of 12,000 and says so; at 1400 and 400 px."""

import sys

import pandas as pd
import pytest
from conftest import BROWSER_MARKS, ROOT, SHOTS, NetworkWatch, chromium_page

from explorer.diagnose.metrics import accuracy_by_clade, for_dashboard
from explorer.diagnose.representation import MAP_MAX_POINTS
from explorer.ui.dashboard_state import DEFAULTS
from explorer.ui.launcher import launched_app

pytestmark = BROWSER_MARKS
ROWS, CLASSES = 20_000, 5_000


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_dashboard_browser import BIG, validation_sized_folder

    folder = tmp_path_factory.mktemp("validation_sized")
    flags = validation_sized_folder(folder, ROWS, CLASSES)
    table = pd.read_parquet(folder / "tables" / f"{BIG}.parquet")
    with launched_app(folder / "app.log", *flags, timeout_s=600) as (url, _process):
        yield url, BIG, table


def _open_table(page, name: str):
    page.get_by_role("tab", name="Diagnose").click()
    page.locator("#dash_table input").first.click()
    page.get_by_role("option", name=name, exact=True).click()
    summary = page.locator("#dash_summary .prose").first
    summary.filter(has_text=f"{name} (model").wait_for(timeout=120_000)
    return summary


def test_the_dashboard_of_a_validation_sized_table_says_what_it_left_out(big):
    url, name, table = big
    genera = table["true_genus"].nunique()
    families = len(accuracy_by_clade(for_dashboard(table), "family", DEFAULTS.min_photos))  # the slider's floor
    with chromium_page(url) as page:
        summary = _open_table(page, name)
        title = page.locator("#dash_sunburst .gtitle").first
        title.wait_for(timeout=60_000)
        assert title.text_content() == "Accuracy per clade (class → order → family)"
        subtitle = page.locator("#dash_sunburst .gtitle-subtitle").first.text_content()
        assert subtitle == f"Too many to draw, so not drawn: {genera:,} genus wedges. Choose a clade to see them."
        note = page.locator("#dash_clades .lt-note")
        assert note.inner_text().startswith(f"The 100 best and the 100 worst of {families:,} family clades")
        assert page.locator("#dash_clades tbody tr").count() == 200
        before = summary.inner_text()
        with NetworkWatch(page) as network:
            page.locator("#dash_outcome label").filter(has_text="incorrect").click()
            page.wait_for_function(
                "b => document.querySelector('#dash_summary .prose').innerText !== b", arg=before, timeout=60_000
            )
            network.wait_idle()
        assert len([r for r in network.sent if r.method == "POST"]) == 1  # one change, one request
        assert page.locator(".error, .status-tracker.error").count() == 0
        page.screenshot(path=str(SHOTS / "validation_sized_1400.png"), full_page=False)


def test_the_map_of_a_validation_sized_table_draws_its_fixed_sample(big):
    url, name, _table = big
    with chromium_page(url) as page:
        _open_table(page, name)
        page.locator("#dash_representation button").first.click()
        text = page.locator("#dash_map_text")
        text.filter(has_text="are drawn").wait_for(timeout=120_000)
        in_view = int(page.locator("#dash_summary .prose").first.inner_text().split(" photos of ")[0].split()[-1])
        assert f"{in_view:,} of the {in_view:,} photos in view are on the map of" in text.inner_text()
        assert f"{MAP_MAX_POINTS:,} of them are drawn, a fixed sample" in text.inner_text()
        page.locator("#dash_map").scroll_into_view_if_needed()
        page.wait_for_selector("#dash_map canvas", timeout=60_000)
        page.screenshot(path=str(SHOTS / "validation_sized_map_1400.png"), full_page=False)


def test_a_validation_sized_table_at_phone_width(big):
    url, name, _table = big
    with chromium_page(url, width=400, height=900) as page:
        _open_table(page, name)
        page.locator("#dash_clades .lt-note").wait_for(timeout=60_000)
        assert page.evaluate("document.documentElement.scrollWidth") <= 400
        page.screenshot(path=str(SHOTS / "validation_sized_400.png"), full_page=False)
