"""Why each error happened, in a real Chromium: the errors filtered by cause and ordered by the label check, one
request per choice, and the inspector's evidence (the causes with their tests, the label check, the neighbours)."""

import pytest
from conftest import BROWSER_MARKS, HAVE_CORAL, SHOTS, NetworkWatch, chromium_page

pytestmark = [
    *BROWSER_MARKS,
    pytest.mark.skipif(not HAVE_CORAL, reason="the inspector needs the real model and photos from ../shared"),
]


def choose(page, menu: str, option: str) -> int:
    """Pick ``option`` in the dropdown ``menu``; the requests that one choice sent (once the network is quiet)."""
    page.locator(f"{menu} input").first.click()
    with NetworkWatch(page) as network:
        page.get_by_role("option", name=option, exact=True).click()
        network.wait_idle()
    return len([r for r in network.sent if r.method == "POST"])


def error_rows(page) -> list[str]:
    return page.locator("#dash_error_table tbody tr").all_inner_texts()


@pytest.mark.parametrize("width", [1400, 400])
def test_errors_filtered_by_cause_open_with_their_evidence(app_url, width):
    with chromium_page(app_url) as page:
        page.set_viewport_size({"width": width, "height": 1000})
        page.get_by_role("tab", name="Diagnose").click()
        page.locator("#dash_summary").filter(has_text="top-1").wait_for(timeout=60_000)  # drawn on page load
        totals = page.locator("#dash_cause_totals")
        totals.locator("tbody tr").nth(7).wait_for(timeout=30_000)
        assert totals.locator("th").all_inner_texts()[:3] == ["cause", "errors", "test"]
        listed = {r.split("\t")[0]: r.split("\t")[1] for r in totals.locator("tbody tr").all_inner_texts()}
        assert set(listed) == {
            *("unknown species", "out of scope", "label probably wrong", "lookalike", "atypical photo"),
            *("rests on the surroundings", "the place broke it", "no cause found"),
        }
        assert listed["label probably wrong"] == "97"  # inat_bird's, doubtful-noted photos left out (the default)

        page.locator("#dash_cause_plot").scroll_into_view_if_needed()  # plots are drawn when shown
        page.locator("#dash_cause_plot .js-plotly-plot").wait_for(timeout=30_000)
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"causes_counts_{width}px.png"), full_page=False)
        assert choose(page, "#dash_cause", "label probably wrong") == 1  # one choice, one request
        page.wait_for_function(
            "() => { const rows = [...document.querySelectorAll('#dash_error_table tbody tr')];"
            " return rows.length > 0 && rows.every(r => r.innerText.includes('label probably wrong')); }",
            timeout=60_000,
        )
        assert choose(page, "#dash_error_order", "label most doubtful first") == 1
        page.wait_for_function(
            "() => { const r = document.querySelector('#dash_error_table tbody tr');"
            " return r && r.innerText.includes('Pacific_Loon/0030.jpg'); }",
            timeout=60_000,
        )
        rows = error_rows(page)
        assert all("label probably wrong" in r for r in rows) and len(rows) > 20
        # the summary and the other charts were not redrawn: the section's own controls redraw the section alone
        assert page.locator("#dash_summary").filter(has_text="top-1").count() == 1

        with NetworkWatch(page) as network:
            page.locator("#dash_error_table tbody tr").first.click()
            page.wait_for_function("document.querySelectorAll('#inspector img').length >= 10", timeout=90_000)
            network.wait_idle()
        assert len([r for r in network.sent if r.method == "POST"]) == 1
        text = page.locator("#inspector_text").inner_text()
        assert "Why this error, most likely" in text and "label probably wrong: label_issue_score >= 0.5" in text
        assert "Label check: score 1.00, wrong up to the order" in text
        assert "The same photo (by content) in other tables: cub100_effnet_head: the same label, score 1.00" in text
        captions = page.locator("#inspector .caption-label").all_inner_texts()
        assert sum(c.startswith("neighbour ") for c in captions) == 3
        assert sum(c.startswith("FinerCAM: Aechmophorus clarkii against its nearest rivals") for c in captions) == 1
        assert sum(c.startswith("bird blurred away: Aechmophorus clarkii ") for c in captions) == 1
        assert sum(c.startswith("surroundings blurred away: ") for c in captions) == 1
        assert "The bird or its surroundings?" in text and "lies outside the bird (located by" in text
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.locator("#inspector_row").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"causes_{width}px.png"), full_page=False)
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing wider than the screen
        assert "Can you trust the map" in text and "blurring the same area where it points least" in text

        # a confused pair's photos: a click on the pairs table lists them in the error gallery and table
        first_pair = page.locator("#dash_pairs tbody tr").first.inner_text().split("\t")[:2]
        with NetworkWatch(page) as network:
            page.locator("#dash_pairs tbody tr").first.click()
            page.wait_for_function(
                "pair => [...document.querySelectorAll('#dash_error_table tbody tr')].every("
                "r => r.innerText.startsWith(pair[0] + '\\t' + pair[1] + '\\t'))",
                arg=first_pair,
                timeout=60_000,
            )
            network.wait_idle()
        assert len([r for r in network.sent if r.method == "POST"]) == 1

        page.get_by_text("Can you trust the maps? Faithfulness of each CAM method").click()  # drawn at start-up
        faith = page.locator("#dash_faith_table")
        page.wait_for_function(
            "() => { const t = document.querySelector('#dash_faith_table'); return t && t.innerText.includes("
            "'random map (baseline)') && t.getBoundingClientRect().height > 100; }",
            timeout=30_000,
        )
        shown = page.locator("#dash_faith_table").inner_text()
        assert "cub100_effnet_head\ngradcam\n16\n" in shown and "inat_bird\nhirescam\n16\n" in shown
        faith.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"faithfulness_{width}px.png"), full_page=False)


@pytest.mark.parametrize("width", [1400, 400])
def test_clades_recognised_by_their_surroundings_are_listed_and_their_errors_filtered(app_url, width):
    with chromium_page(app_url) as page:
        page.set_viewport_size({"width": width, "height": 1000})
        page.get_by_role("tab", name="Diagnose").click()
        page.locator("#dash_summary").filter(has_text="top-1").wait_for(timeout=60_000)
        table = page.locator("#dash_surroundings")
        table.locator("tbody tr").first.wait_for(timeout=30_000)
        header = ["family", "photos", "rests_on_surroundings", "mean_off_subject_share", "off_subject_auc", "q_value"]
        header += ["top1_accuracy", "flagged"]
        assert table.locator("th").all_inner_texts() == header
        assert choose(page, "#dash_list_rank", "genus") == 1  # the clade tables' rank redraws it, one request
        page.wait_for_function(
            "() => { const h = document.querySelector('#dash_surroundings th'); return h && h.innerText === 'genus'; }",
            timeout=30_000,
        )
        shown = [r.split("\t")[5] for r in table.locator("tbody tr").all_inner_texts()]
        q_values = [0.0 if q == "< 0.001" else float(q) for q in shown]
        assert q_values == sorted(q_values) and len(q_values) > 3  # strongest evidence first
        table.scroll_into_view_if_needed()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"surroundings_{width}px.png"), full_page=False)
        assert choose(page, "#dash_cause", "rests on the surroundings") == 1
        page.wait_for_function(
            "() => { const rows = [...document.querySelectorAll('#dash_error_table tbody tr')];"
            " return rows.length > 0 && rows.every(r => r.innerText.includes('rests on the surroundings')); }",
            timeout=60_000,
        )
        assert page.evaluate("document.documentElement.scrollWidth") <= width
