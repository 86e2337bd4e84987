"""The `observation` endpoint (several photos of one organism) through gradio_client against the app launched the
README way, and the Identify tab's "more photos" box in a real Chromium: three photos dropped, one request, the
fused answer with each photo's part and maps."""

import base64
import json
import shutil

import pytest
from conftest import CHROMIUM, HAVE_CORAL, HAVE_SHARED_DATA, SHARED_REASON, SHOTS, NetworkWatch, chromium_page

from explorer.settings import DATA_DIR

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (HAVE_CORAL and HAVE_SHARED_DATA), reason=SHARED_REASON)]


def goldfinches(n=3) -> list[str]:
    return [str(p) for p in sorted((DATA_DIR / "cub100" / "images" / "American_Goldfinch").glob("*.jpg"))[:n]]


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def observe(client, paths, **kwargs):
    from gradio_client import handle_file

    return client.predict([handle_file(p) for p in paths], api_name="/observation", **kwargs)


def test_observation_endpoint_fuses_the_photos_and_says_which_carried_each(client):
    answer = observe(client, goldfinches(), top_k=3, model="inat_bird")
    fused = answer["fused"]
    assert answer["model"] == "inat_bird" and fused["fused_photos"] == [1, 2, 3] and fused["fusion_rule"] == "product"
    first = fused["predictions"][0]
    assert first["scientific_name"] == "Spinus tristis" and len(fused["predictions"]) == 3
    own = [p["probability"] for p in first["photos"]]
    assert [p["photo"] for p in first["photos"]] == [1, 2, 3] and first["carried_by"] == 1 + own.index(max(own))
    assert [photo["predictions"][0]["probability"] for photo in answer["photos"]] == pytest.approx(own, abs=1e-6)
    assert all(photo["scope"]["in_scope"] for photo in answer["photos"]) and "cams_of_fused" not in answer["photos"][0]
    single = client.predict(
        __import__("gradio_client").handle_file(goldfinches(1)[0]), api_name="/identify", top_k=3, model="inat_bird"
    )
    assert single["predictions"][0]["probability"] == pytest.approx(own[0], abs=1e-6)  # photo 1 as identify says


def test_observation_endpoint_maps_and_refusals(client, tmp_path):
    from gradio_client.exceptions import AppError

    answer = observe(client, goldfinches(2), top_k=2, model="inat_bird", cam_method="gradcam")
    maps = answer["photos"][1]["cams_of_fused"]
    assert maps["method"] == "gradcam" and len(maps["maps"]) == 2 and len(maps["maps"][0]) == maps["layout"]["grid"][0]
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    with pytest.raises(AppError, match=r"Photo 2 \(notes.txt\): "):
        observe(client, [goldfinches(1)[0], str(text)])
    with pytest.raises(AppError, match="at most 6 photos of one organism; got 7"):
        observe(client, goldfinches(7))
    with pytest.raises(AppError, match="unknown or unavailable model 'nope'"):
        observe(client, goldfinches(1), model="nope")
    assert observe(client, goldfinches(1), top_k=1)["fused"]["predictions"]  # still serving


def drop_files(page, selector: str, paths: list[str], mime: str = "image/jpeg") -> None:
    """Drop several files at once on an upload box, as a user's drag of a selection does (each with ``mime``)."""
    items = [[base64.b64encode(open(p, "rb").read()).decode(), p.rsplit("/", 1)[-1]] for p in paths]
    transfer = page.evaluate_handle(
        """([items, mime]) => { const dt = new DataTransfer(); for (const [b64, name] of items) {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        dt.items.add(new File([bytes], name, {type: mime})); } return dt; }""",
        [items, mime],
    )
    target = page.locator(f"{selector} button.upload-container").first
    for event in ("dragenter", "dragover", "drop"):
        target.dispatch_event(event, {"dataTransfer": transfer})


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian chromium (apt-get install chromium)")
@pytest.mark.parametrize("width", [1400, 400])
def test_three_photos_dropped_give_the_fused_answer_in_one_request(app_url, width):
    with chromium_page(app_url, width, 1000) as page, NetworkWatch(page) as network:
        network.wait_idle()
        network.sent.clear()
        drop_files(page, "#more_photos", goldfinches())
        page.wait_for_function("document.querySelectorAll('#cams img').length >= 15", timeout=120_000)
        network.wait_idle()
        joins = [r.url for r in network.sent if r.method == "POST" and "/queue/join" in r.url]
        uploads = [r.url for r in network.sent if r.method == "POST" and "/upload" in r.url]
        assert len(joins) == 1 and len(uploads) == 1, [r.url for r in network.sent]  # one drop: one upload, one call
        verdict = page.locator("#verdict").inner_text()
        assert "Spinus tristis (American Goldfinch)" in verdict and "One organism, 3 of 3 photos fused." in verdict
        assert "Top suggestions (fused)" in page.locator("#topk").inner_text()
        table = page.locator("#lineages table.observation")
        header = " ".join(table.locator("thead").inner_text().split())
        assert header == "# suggestion fused photo 1 photo 2 photo 3 carried by"
        first = table.locator("tbody tr").first.inner_text()
        assert "Spinus tristis" in first and "(#1)" in first
        captions = page.locator("#cams .caption-label, #cams figcaption").all_inner_texts()
        assert any(c.startswith("photo 3 · 1. Spinus tristis") for c in captions), captions[:6]
        assert "Photo 2 on its own" in page.locator("#lineages").inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.screenshot(path=str(SHOTS / f"observation_{width}.png"), full_page=True)
        with page.expect_download() as download:
            page.locator("#download_json").click()
        answer = json.loads(download.value.path().read_text())
        assert answer["fused"]["fused_photos"] == [1, 2, 3] and len(answer["photos"]) == 3


def test_api_page_observation_example_runs_and_its_output_is_true(app_url, capsys):
    import re

    from conftest import ROOT

    text = (ROOT / "docs" / "reference" / "api.md").read_text(encoding="utf-8")
    (code,) = [b for b in re.findall(r"```python\n(.*?)\n```", text, flags=re.S) if "/observation" in b]
    photos = '["goldfinch-1.jpg", "goldfinch-2.jpg", "goldfinch-3.jpg"]'
    assert photos in code and '"http://127.0.0.1:7860/"' in code
    runnable = code.replace(photos, repr(goldfinches())).replace('"http://127.0.0.1:7860/"', repr(app_url))
    exec(compile(runnable, "api.md", "exec"), {})  # noqa: S102 - the page's own example
    printed = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("Loaded as API")]
    promised = [line[2:] for line in code.splitlines() if line.startswith("# ")]
    assert printed == promised


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian chromium (apt-get install chromium)")
def test_photos_added_and_removed_each_answer_once_and_another_organism_is_flagged(app_url):
    waxwing = str(DATA_DIR / "cub100" / "images" / "Cedar_Waxwing" / "0001.jpg")
    verdict = lambda: page.locator("#verdict")  # noqa: E731

    def joins(network) -> int:
        network.wait_idle()
        count = len([r for r in network.sent if r.method == "POST" and "/queue/join" in r.url])
        network.sent.clear()
        return count

    with chromium_page(app_url, 1400, 1000) as page, NetworkWatch(page) as network:
        network.wait_idle()
        network.sent.clear()
        drop_files(page, "#more_photos", goldfinches(2))
        verdict().filter(has_text="One organism, 2 of 2 photos fused.").wait_for(timeout=90_000)
        assert joins(network) == 1
        drop_files(page, "#more_photos", [goldfinches(3)[2], waxwing])  # added to the two already there
        verdict().filter(has_text="One organism, 4 of 4 photos fused.").wait_for(timeout=90_000)
        assert joins(network) == 1
        assert "⚠ Photo 4 disagrees with this answer: the same organism? See the notes." in verdict().inner_text()
        assert "Photo 4 disagrees: on its own it says Bombycilla cedrorum" in page.locator("#notes").inner_text()
        page.locator("#more_photos .label-clear-button").last.click()  # the waxwing's ×
        verdict().filter(has_text="One organism, 3 of 3 photos fused.").wait_for(timeout=90_000)
        assert joins(network) == 1
        assert "disagrees" not in verdict().inner_text()
