"""The honest page in a real Chromium: one request per upload, the scope headline, the automatic model, a typed
out-of-range value and a bad place answered at their fields without error badges."""

import pytest
from conftest import BROWSER_MARKS, CORAL, SHOTS, NetworkWatch, chromium_page, drop_file

pytestmark = [*BROWSER_MARKS, pytest.mark.shared_data]


@pytest.fixture(scope="module")
def page(app_url):
    with chromium_page(app_url) as page, NetworkWatch(page) as network:
        network.wait_idle()  # the page's own load events (the dashboard) are over before a photo is dropped
        yield page


def is_identify_request(request) -> bool:
    """An identify call: a queue join that carries a photo (the Diagnose dashboard's joins carry none)."""
    body = request.post_data or ""
    return "queue/join" in request.url and '"fn_index"' in body and "FileData" in body


def verdict_changes(page, before: str, contains: str):
    page.wait_for_function(
        "([before, text]) => { const v = document.querySelector('#verdict').innerText;"
        " return v !== before && v.includes(text); }",
        arg=[before, contains],
        timeout=60_000,
    )


def no_error_badges(page) -> None:
    assert page.locator(".error, .status-tracker.error").count() == 0
    for element in ("#verdict", "#topk", "#lat", "#lineages"):
        assert "Error" not in page.locator(element).inner_text()


def test_auto_model_one_request_per_upload_and_scope_headlines(page):
    assert page.locator("#model input").first.input_value().startswith("Best model for this photo")
    for name, headline in [
        ("owl.jpg", "Athene cunicularia"),
        ("leeds", "Danaus plexippus"),
        ("cat.bmp", "closest: ImageNet says 'Egyptian cat'"),
    ]:
        before = page.locator("#verdict").inner_text()
        data = (CORAL / name).read_bytes() if name != "leeds" else _butterfly()
        with NetworkWatch(page) as network:
            drop_file(page, data, "photo.png", "image/png")
            verdict_changes(page, before, headline)
            network.wait_idle(quiet_ms=1500)  # every request of the upload has ended, and no duplicate followed
        joins = [r for r in network.sent if is_identify_request(r)]
        assert len(joins) == 1, f"{name}: {len(joins)} identify requests for one upload"
    assert "Chose" not in page.locator("#verdict").inner_text()  # the cat: no model fits, no clade claimed
    page.screenshot(path=str(SHOTS / "auto_cat.png"), full_page=True)


def _butterfly() -> bytes:
    from conftest import DATA_DIR

    return sorted((DATA_DIR / "leeds-butterflies" / "leeds_butterfly").glob("001*.png"))[0].read_bytes()


def test_out_of_scope_for_the_bird_model(page):
    page.locator("#model input").first.click()
    page.get_by_role("option", name="iNat birds: 964 species (Coral MobileNetV2)").click()
    before = page.locator("#verdict").inner_text()
    verdict_changes(page, before, "This does not look like a bird")
    assert "treat these as unlikely" in page.locator("#topk").inner_text()
    page.screenshot(path=str(SHOTS / "out_of_scope.png"), full_page=True)


def test_typed_out_of_range_values_are_clamped_at_their_field(page):
    box = page.locator("#top_k input[type='number']").first
    box.fill("25")
    box.press("Enter")
    page.locator("#top_k").filter(has_text="25 is outside 1..20").wait_for(timeout=60_000)
    assert box.input_value() == "20"
    threshold = page.locator("#threshold input[type='number']").first
    threshold.fill("0.3")
    threshold.press("Enter")
    page.locator("#threshold").filter(has_text="0.3 is outside 0.5..0.99").wait_for(timeout=60_000)
    no_error_badges(page)
    page.screenshot(path=str(SHOTS / "clamped.png"), full_page=True)


def test_bad_place_gets_a_message_per_field_and_an_image_only_result(page):
    page.locator("#lat textarea, #lat input").first.fill("95")
    page.locator("#lon textarea, #lon input").first.fill("200")
    page.locator("#date textarea, #date input").first.fill("yesterday")
    before = page.locator("#notes").inner_text()
    page.locator("#identify_button").click()
    page.locator("#lat").filter(has_text="latitude 95 is outside -90..90").wait_for(timeout=60_000)
    assert "longitude 200 is outside -180..180" in page.locator("#lon").inner_text()
    assert "not a date in the form YYYY-MM-DD" in page.locator("#date").inner_text()
    page.locator("#notes").filter(has_text="The place was not used").wait_for(timeout=30_000)
    assert before != page.locator("#notes").inner_text()
    assert "This does not look like a bird" in page.locator("#verdict").inner_text()  # still identified
    no_error_badges(page)
    page.screenshot(path=str(SHOTS / "bad_place.png"), full_page=True)
