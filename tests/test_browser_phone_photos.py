"""Phone photos as they come: an iPhone's HEIC (made here with pillow-heif from a CUB photo, with a GPS position and
a date in its EXIF) through the API and in a real Chromium: identified, its place and date read, the photo box
showing a JPEG copy (browsers cannot draw HEIC); a HEIC the browser does not label an image is explained under the
photo, and taken by the "More photos" box."""

import io
import shutil

import pytest
from conftest import CHROMIUM, HAVE_CORAL, HAVE_SHARED_DATA, SHARED_REASON, NetworkWatch, chromium_page, drop_file
from PIL import Image

from explorer.settings import DATA_DIR

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (HAVE_CORAL and HAVE_SHARED_DATA), reason=SHARED_REASON)]
BROWSER = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian chromium (apt-get install chromium)"),
]


def heic(name="Blue_Jay/0003.jpg") -> bytes:
    import explorer.photos.images  # noqa: F401 - registers pillow-heif's opener (and writer) with PIL

    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (40.0, 42.0, 0.0), 3: "W", 4: (74.0, 0.0, 0.0)}
    exif[0x8769] = {0x9003: "2024:05:10 08:00:00"}
    buffer = io.BytesIO()
    Image.open(DATA_DIR / "cub100" / "images" / name).convert("RGB").save(buffer, "HEIF", exif=exif, quality=90)
    return buffer.getvalue()


def test_the_identify_endpoint_reads_a_heic_photo(app_url, tmp_path):
    from gradio_client import Client, handle_file

    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(heic())
    answer = Client(app_url, verbose=False).predict(
        handle_file(str(path)), 3, "inat_bird", 0.78, 40.7, -74.0, "2024-05-10", api_name="/identify"
    )
    assert answer["predictions"][0]["scientific_name"] == "Cyanocitta cristata" and answer["prior"]["used"] is True
    # no place given: the photo's own (its EXIF), said in the notes
    read = Client(app_url, verbose=False).predict(handle_file(str(path)), 3, "inat_bird", api_name="/identify")
    assert read["place"] == {"lat": 40.7, "lon": -74.0, "date": "2024-05-10"} and read["prior"]["used"] is True
    assert read["notes"][0] == "Place from the photo's EXIF (40.7000, -74.0000), date 2024-05-10."
    assert read["provenance"] == "image + place"


@pytest.mark.parametrize("width", [1400, 400])
@pytest.mark.browser
@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian chromium (apt-get install chromium)")
def test_a_heic_photo_is_identified_placed_and_shown(app_url, width):
    with chromium_page(app_url, width, 1000) as page, NetworkWatch(page) as network:
        network.wait_idle()
        network.sent.clear()
        drop_file(page, heic(), "IMG_0001.HEIC", "image/heic")
        page.locator("#verdict").filter(has_text="Cyanocitta cristata").wait_for(timeout=90_000)
        page.wait_for_function(
            "(() => { const i = document.querySelector('#photo img'); return i && i.complete && i.naturalWidth > 0"
            " && i.src.endsWith('.jpg'); })()",
            timeout=30_000,
        )
        network.wait_idle()
        assert len([r for r in network.sent if r.method == "POST" and "/queue/join" in r.url]) == 1
        fields = [page.locator(f"#{f} input").input_value() for f in ("lat", "lon", "date")]
        assert fields == ["40.70000", "-74.00000", "2024-05-10"]  # read from the HEIC's EXIF
        assert "Re-ranked with the place" in page.locator("#notes").inner_text()
        page.screenshot(path=str(__import__("conftest").SHOTS / f"heic_{width}.png"), full_page=False)
        # the place is kept on the next change: the copy in the photo box is the same photo, its EXIF not read again
        page.locator("#lat input").fill("41.0")
        page.locator("#identify_button").click()
        page.locator("#lineages").filter(has_text="image alone").wait_for(timeout=60_000)
        assert page.locator("#lat input").input_value() == "41.0"


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian chromium (apt-get install chromium)")
def test_a_heic_the_browser_does_not_label_an_image_is_still_taken_and_other_files_are_explained(app_url):
    from test_api_observation import drop_files

    with chromium_page(app_url, 1400, 1000) as page, NetworkWatch(page) as network:
        network.wait_idle()
        network.sent.clear()
        drop_file(page, heic(), "IMG_0002.HEIC", "")  # no MIME type: what a browser without a HEIF codec sends
        page.locator("#verdict").filter(has_text="Cyanocitta cristata").wait_for(timeout=90_000)
        network.wait_idle()
        assert len([r for r in network.sent if r.method == "POST" and "/queue/join" in r.url]) == 1
        assert page.locator("#photo_limit_note").count() == 0
        network.sent.clear()
        drop_file(page, b"field notes", "notes.txt", "text/plain")
        note = page.locator("#photo_limit_note")
        note.wait_for(timeout=10_000)
        assert note.inner_text() == (
            "notes.txt is not an image file (text/plain), so the photo box did not take it. Photos: JPEG, PNG, WebP, "
            "AVIF, BMP, GIF, TIFF, HEIC/HEIF."
        )
        network.wait_idle()
        assert not [r for r in network.sent if r.method == "POST"]  # nothing was sent
        tmp = __import__("tempfile").mkdtemp()
        paths = [f"{tmp}/IMG_0002.HEIC", f"{tmp}/IMG_0003.HEIC"]
        open(paths[0], "wb").write(heic())
        open(paths[1], "wb").write(heic("Blue_Jay/0004.jpg"))
        drop_files(page, "#more_photos", paths, mime="")  # taken by their names, beside the photo box's own
        page.locator("#verdict").filter(has_text="One organism, 3 of 3 photos fused.").wait_for(timeout=90_000)
        assert "Cyanocitta cristata" in page.locator("#verdict").inner_text()
        assert "Decided by: **" not in page.locator("#verdict").inner_text()  # rendered, not raw markdown
        assert "Decided by: routed to inat_bird · 3 photos + place" in page.locator("#verdict").inner_text()
        fields = [page.locator(f"#{f} input").input_value() for f in ("lat", "lon", "date")]
        assert fields == ["40.70000", "-74.00000", "2024-05-10"]  # the photo's EXIF place, shown and used


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian chromium (apt-get install chromium)")
def test_a_heic_picked_with_the_file_chooser_is_identified(app_url, tmp_path):
    path = tmp_path / "IMG_0009.HEIC"  # Chromium here labels no HEIC: the page relabels it on the input's change
    path.write_bytes(heic())
    with chromium_page(app_url, 1400, 1000) as page:
        page.locator("#photo input[type=file]").set_input_files(str(path))
        page.locator("#verdict").filter(has_text="Cyanocitta cristata").wait_for(timeout=90_000)
        assert [page.locator(f"#{f} input").input_value() for f in ("lat", "lon", "date")] == [
            "40.70000",
            "-74.00000",
            "2024-05-10",
        ]
