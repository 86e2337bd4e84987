"""Everyday actions in a real Chromium: a phone-width page (photo, then results; tables that scroll; a map that
opens on the range), downloads, a photo over the upload cap, and the dashboard's refusals, scope section,
comparison, CSV files and geo inspector."""

import json
import shutil

import pytest
from conftest import CHROMIUM, CORAL, SHARED, SHOTS, chromium_page, drop_file

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.shared_data,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian chromium (apt-get install chromium)"),
]
BIRD_MODEL = "iNat birds: 964 species (Coral MobileNetV2)"


def top(page, selector: str) -> float:
    return page.locator(selector).first.bounding_box()["y"]


def map_view(page) -> list:
    """[lat, lon, zoom] of the Leaflet map inside the range-map frame, once the map has a size (the frame is
    looked up afresh each time: the page may replace it)."""
    script = (
        "(() => { const m = window[Object.keys(window).find(k => k.startsWith('map_'))];"
        " if (!m || !m.__viewSet) return null; const c = m.getCenter(); return [c.lat, c.lng, m.getZoom()]; })()"
    )
    view = None
    for _ in range(60):
        frame = page.locator("#range_map iframe").first.element_handle().content_frame()
        try:
            view = frame.evaluate(script)
        except Exception:  # noqa: BLE001 (the frame was replaced while we asked)
            view = None
        if view is not None and view[2] >= 1:
            return view
        page.wait_for_timeout(500)
    return view


def test_phone_width_page_photo_first_then_results_and_downloads(app_url, tmp_path):
    with chromium_page(app_url, 400, 900) as page:
        drop_file(page, (CORAL / "bird.bmp").read_bytes(), "bird.bmp", "image/bmp")
        page.wait_for_function("document.querySelectorAll('#cams img').length >= 5", timeout=90_000)
        assert top(page, "#photo") < top(page, "#verdict") < top(page, "#topk") < top(page, "#model")
        assert top(page, "#lineages") < top(page, "#top_k") < top(page, "#lat")  # the settings come last
        width, shown, overflow = page.evaluate(
            "(() => { const e = document.querySelector('#lineages');"
            " return [e.scrollWidth, e.clientWidth, getComputedStyle(e).overflowX]; })()"
        )
        assert width > shown and overflow == "auto"  # the lineage table scrolls inside its box
        assert page.evaluate("document.documentElement.scrollWidth") <= 400  # the page itself does not
        lat, lon, zoom = map_view(page)
        assert 30 < lat < 75 and -130 < lon < -60 and zoom >= 1  # the chickadee's range, not the Atlantic
        page.screenshot(path=str(SHOTS / "phone_width.png"), full_page=True)
        with page.expect_download() as download:
            page.locator("#download_json").click()
        answer = json.loads(download.value.path().read_text())
        first = answer["predictions"][0]
        assert first["scientific_name"] == "Poecile atricapillus"
        shown = page.locator("#topk").inner_text()
        assert f"Poecile atricapillus (Black-capped Chickadee): {first['probability']:.1%}" in shown
        assert f"{round(first['probability'] * 100)}%\n" not in shown + "\n"  # the rounded copy is hidden
        assert answer["scope"]["in_scope"] is True and answer["routed_from"] == "auto"
        with page.expect_download() as download:
            page.locator("#download_csv").click()
        rows = download.value.path().read_text().splitlines()
        assert rows[0].startswith("rank,scientific_name,common_name,probability") and len(rows) == 6
        assert rows[1].startswith(f"1,Poecile atricapillus,Black-capped Chickadee,{first['probability']}")
        drop_file(page, b"not a photo at all", "notes.jpg", "image/jpeg")  # a toast, at the bottom on a phone
        toast = page.locator(".toast-body").first
        toast.wait_for(timeout=60_000)
        assert toast.bounding_box()["y"] > 450  # not over the header


def test_a_photo_over_the_cap_is_refused_with_the_limit_under_the_photo(app_url, tmp_path):
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8\xff" + bytes(30 * 2**20))
    with chromium_page(app_url) as page:
        assert "(up to 25 MB)" in page.locator("#photo").inner_text()
        page.locator("#photo input[type=file]").set_input_files(str(big))
        note = page.locator("#photo_limit_note")
        note.wait_for(timeout=10_000)
        assert note.inner_text().startswith("big.jpg is 30.0 MB: photos up to 25 MB are accepted.")
        assert top(page, "#photo") < top(page, "#photo_limit_note") < top(page, "#model")
        page.locator("#photo input[type=file]").set_input_files(str(CORAL / "owl.jpg"))
        page.locator("#verdict").filter(has_text="Athene cunicularia").wait_for(timeout=60_000)
        assert page.locator("#photo_limit_note").count() == 0  # a good photo clears the note


def test_similar_labelled_photos_open_in_the_inspector(app_url):
    with chromium_page(app_url) as page:
        drop_file(page, (CORAL / "bird.bmp").read_bytes(), "bird.bmp", "image/bmp")
        page.wait_for_function("document.querySelectorAll('#similar img').length >= 8", timeout=90_000)
        assert "Poecile atricapillus ✓" in page.locator("#similar").inner_text()  # its nearest: chickadees
        assert "#1 Poecile atricapillus" in page.locator("#suggestion_examples").inner_text()
        assert "4109 labelled photos of the inat_bird evaluation table" in page.locator("#similar_note").inner_text()
        page.locator("#similar button.thumbnail-item").first.click()
        page.wait_for_function("document.querySelectorAll('#similar_inspector img').length >= 4", timeout=90_000)
        text = page.locator("#similar_inspector_text").inner_text()
        assert "truth" in text and "The model got this photo right" in text  # the nearest chickadee: one CAM
        assert page.locator("#similar_inspector img").count() == 4  # the photo, its CAM, bird and surroundings blurred
        page.screenshot(path=str(SHOTS / "similar.png"), full_page=True)


def test_per_rank_heads_answer_beside_the_species_head(app_url):
    # a CUB-100 test photo the species head gets right (Lazuli Bunting, 89 %) while the genus head says Setophaga
    photo = SHARED / "data" / "cub100" / "images" / "Lazuli_Bunting" / "0037.jpg"
    with chromium_page(app_url) as page:
        page.locator("#model input").first.click()
        cub = "CUB birds: 100 species (EfficientNet-Lite0 + linear head, trained here)"
        page.get_by_role("option", name=cub).click()
        drop_file(page, photo.read_bytes(), "bunting.jpg", "image/jpeg")
        page.locator("#rank_heads").wait_for(timeout=90_000)
        rows = page.locator("#rank_heads tr").all_inner_texts()
        assert [r.split("\t")[0] for r in rows] == ["Rank", "order", "family", "genus", "species"]
        assert "Setophaga" in rows[3] and "⚠ inconsistent: the top species is in Passerina" in rows[3]
        assert "Passerina amoena" in rows[4] and "agrees" in rows[4]
        page.locator("#rank_heads").screenshot(path=str(SHOTS / "rank_heads.png"))


@pytest.fixture(scope="module")
def dashboard(app_url):
    """One Diagnose page for the tests below (they run last: a page open here keeps Playwright's loop busy)."""
    with chromium_page(app_url) as page:
        page.get_by_role("tab", name="Diagnose").click()
        settled(page)
        yield page


def settled(page, other_than: str = "") -> str:
    """The dashboard summary once no request is drawing it (and it differs from ``other_than``)."""
    page.wait_for_function(
        "before => { const e = document.querySelector('#dash_summary .prose'); const t = e ? e.innerText : '';"
        " return t.includes('inat_bird') && t !== before; }",
        arg=other_than,
        timeout=60_000,
    )
    return page.locator("#dash_summary .prose").first.inner_text()


def test_dashboard_scope_section_and_confidence_refusal(dashboard):
    page = dashboard
    text = page.locator("#dash_scope_text").inner_text()
    assert "Is it in scope?" in text and "held-out out-of-scope photos" in text and "AUROC" in text
    page.locator("#dash_scope").scroll_into_view_if_needed()  # plots are drawn when shown
    page.locator("#dash_scope .js-plotly-plot").wait_for(timeout=30_000)
    everything = page.locator("#dash_summary .prose").first.inner_text()
    box = page.locator("#dash_min_conf input[type='number']").first
    box.fill("0.7")
    box.press("Enter")
    before = settled(page, everything)  # the view of 0.7..1
    page.locator("#dash_max_conf input[type='number']").first.fill("0.4")
    page.locator("#dash_max_conf input[type='number']").first.press("Enter")
    page.wait_for_function(
        "document.querySelector('#dash_min_conf').innerText.includes('above the max (0.4)')", timeout=30_000
    )
    assert page.locator("#dash_summary .prose").first.inner_text() == before  # refused: the last view stays
    assert page.locator(".error, .status-tracker.error").count() == 0
    page.locator("#dash_min_conf input[type='number']").first.fill("0")
    page.locator("#dash_min_conf input[type='number']").first.press("Enter")
    page.locator("#dash_max_conf input[type='number']").first.fill("1")
    page.locator("#dash_max_conf input[type='number']").first.press("Enter")
    page.wait_for_function(
        "!document.querySelector('#dash_min_conf').innerText.includes('above the max')", timeout=30_000
    )
    page.screenshot(path=str(SHOTS / "dashboard_scope.png"), full_page=True)


def test_dashboard_comparison_csv_files_and_geo_inspector(dashboard):
    page = dashboard
    page.get_by_text("Compare with another model").click()
    page.locator("#dash_other input").first.click()
    page.get_by_role("option", name="cub100_effnet_head").click()
    page.locator("#dash_compare_text").filter(has_text="both models have a class for").wait_for(timeout=60_000)
    assert "of a species one model cannot name" in page.locator("#dash_compare_text").inner_text()
    page.locator("#dash_compare_ranks").scroll_into_view_if_needed()
    page.locator("#dash_compare_ranks .js-plotly-plot").wait_for(timeout=30_000)  # errors by rank, side by side
    assert "Where each model's errors leave the truth" in page.locator("#dash_compare_ranks").inner_text()
    page.get_by_text("Download this view's tables (CSV)").click()
    page.locator("#dash_csv_button").click()
    page.locator("#dash_csv").filter(has_text="inat_bird-photos-in-view").wait_for(timeout=60_000)
    assert "inat_bird-vs-cub100_effnet_head-by-family" in page.locator("#dash_csv").inner_text()
    page.locator("#dash_geo_kind").get_by_text("broke", exact=True).click()
    page.locator("#dash_geo_gallery").filter(has_text="broke:").wait_for(timeout=60_000)
    page.locator("#dash_geo_gallery button.thumbnail-item").first.click()
    page.locator("#inspector").filter(has_text="with the place:").wait_for(timeout=90_000)
    assert "image alone:" in page.locator("#inspector").inner_text()
    assert ", wrong." in page.locator("#inspector_text").inner_text()


MAP_POINT = """() => { const gd = document.querySelector('#dash_map .js-plotly-plot');
  const trace = gd._fullData.find(d => d.name !== 'other' && d.x.length > 0);
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
  return {x: box.left + xa._offset + xa.l2p(trace.x[0]), y: box.top + ya._offset + ya.l2p(trace.y[0])}; }"""


def test_representation_map_is_drawn_and_a_click_opens_the_inspector(dashboard):
    page = dashboard
    page.get_by_text("Representation: does the model learn taxonomy?").click()
    fits = page.locator("#dash_fits").inner_text()
    assert "inat_bird" in fits and "cub100_effnet_head" in fits and "Recall@5" in fits
    page.locator("#dash_map").scroll_into_view_if_needed()
    page.locator("#dash_map .js-plotly-plot").wait_for(timeout=30_000)
    assert "are on the map of" in page.locator("#dash_map_text").inner_text()
    page.wait_for_function(
        "() => { const gd = document.querySelector('#dash_map .js-plotly-plot'); return gd && gd.__pickBound; }",
        timeout=10_000,
    )
    joins = []
    page.on("request", lambda r: joins.append(r.url) if "/queue/join" in r.url else None)
    point = page.evaluate(MAP_POINT)
    page.mouse.move(point["x"], point["y"])
    page.mouse.click(point["x"], point["y"])
    page.locator("#map_inspector img").first.wait_for(timeout=90_000)
    assert "truth" in page.locator("#map_inspector_text").inner_text()
    assert len(joins) == 1  # one click, one request
    page.locator("#dash_representation").screenshot(path=str(SHOTS / "representation.png"))
