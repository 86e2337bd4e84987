"""The `identify` endpoint through gradio_client against the app launched the README way."""

import io

import pytest
from conftest import CORAL, HAVE_CORAL
from PIL import Image

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def good_photo(tmp_path_factory):
    if HAVE_CORAL:
        return CORAL / "bird.bmp"
    path = tmp_path_factory.mktemp("photos") / "drawn.png"
    image = Image.new("RGB", (200, 150), (40, 120, 40))
    image.paste((230, 200, 30), (60, 40, 140, 110))
    image.save(path)
    return path


def call(client, path, **kwargs):
    from gradio_client import handle_file

    return client.predict(handle_file(str(path)), api_name="/identify", **kwargs)


def test_identify_returns_documented_json(client, good_photo):
    result = call(client, good_photo, top_k=3)
    assert set(result) >= {"model", "predictions", "rollup"} and len(result["predictions"]) == 3
    first = result["predictions"][0]
    assert set(first) >= {"class_index", "scientific_name", "common_name", "lineage", "probability"}
    assert 0 < first["probability"] <= 1 and "text" in result["rollup"]
    if HAVE_CORAL:
        assert result["model"] == "inat_bird" and first["scientific_name"] == "Poecile atricapillus"
        assert first["lineage"]["family"] == "Paridae"


def test_model_can_be_chosen(client, good_photo):
    result = call(client, good_photo, top_k=2, model="efficientnet_lite0_imagenet")
    assert result["model"] == "efficientnet_lite0_imagenet" and result["rank_heads"] == []
    heads = call(client, good_photo, top_k=2, model="cub100_effnet_head")["rank_heads"]  # it has per-rank heads
    assert [h["rank"] for h in heads] == ["order", "family", "genus", "species"]
    assert set(heads[0]) == {
        "rank",
        "head_name",
        "head_probability",
        "rollup_name",
        "rollup_probability",
        "top1_name",
        "consistent",
    }
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="unknown or unavailable model 'nope'"):
        call(client, good_photo, model="nope")


def _encoded(image, fmt):
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


BAD_FILES = {
    "notes.txt": (b"just some text", "not an image we can read"),
    "empty.jpg": (b"", "empty"),
    "tiny.png": (_encoded(Image.new("RGB", (1, 1)), "PNG"), "at least 16 px"),
    "bomb.png": (_encoded(Image.new("L", (12_000, 12_000)), "PNG"), "the limit is 60 MP"),
    "truncated.jpg": (_encoded(Image.new("RGB", (400, 400), (9, 9, 9)), "JPEG")[:300], "corrupt"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_files_get_clean_errors_and_server_keeps_serving(client, good_photo, tmp_path, name):
    from gradio_client.exceptions import AppError

    data, message = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(AppError, match=message):
        call(client, path)
    assert call(client, good_photo, top_k=1)["predictions"]  # the next good request succeeds


def test_bad_parameters(client, good_photo):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="top_k must be between 1 and 20"):
        call(client, good_photo, top_k=500)
    with pytest.raises(AppError, match="threshold must be in"):
        call(client, good_photo, threshold=2)


def test_upload_size_cap(client, good_photo, tmp_path):
    """A file over --max-upload-mb (25 MB): the client refuses it from the app's config, and the server itself
    answers 413 to an upload that gets past the client; the next good request succeeds."""
    import httpx

    cap = 25 * 2**20
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8" + b"\x00" * (26 * 2**20))
    with pytest.raises(ValueError) as refused:
        call(client, big)
    # gradio_client's own words (the API's hidden inputs carry no label in the config, hence "in  component")
    assert str(refused.value) == f"File {big} exceeds the maximum file size of {cap} bytes set in  component."
    with big.open("rb") as data:
        response = httpx.post(client.upload_url, files=[("files", ("big.jpg", data))], timeout=60)
    assert (response.status_code, response.text) == (413, f"File size exceeded maximum allowed size of {cap} bytes.")
    assert call(client, good_photo, top_k=1)["predictions"]


@pytest.mark.skipif(not HAVE_CORAL, reason="the bird model's geo-prior needs the bird model from ../shared")
def test_identify_with_a_location_reports_both_rankings(client, good_photo):
    result = call(client, good_photo, top_k=5, lat=43.65, lon=-79.38, date="2021-05-16")  # Toronto, in May
    assert result["place"] == {"lat": 43.65, "lon": -79.38, "date": "2021-05-16"}
    for prediction in result["predictions"]:
        assert 0 <= prediction["vision_probability"] <= 1 and prediction["vision_rank"] >= 1
    known = [p for p in result["predictions"] if p["geo_score"] is not None]
    assert known and all(0 <= p["geo_score"] <= 1 for p in known)
    assert result["predictions"][0]["scientific_name"] == "Poecile atricapillus"  # a chickadee in Toronto


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"lat": 95.0, "lon": 0.0}, "latitude 95.0 is outside"),
        ({"lat": 10.0}, "both latitude and longitude"),
        ({"lat": 10.0, "lon": 10.0, "date": "2099-01-01"}, "in the future"),
        ({"lat": 10.0, "lon": 10.0, "date": "yesterday"}, "YYYY-MM-DD"),
    ],
)
def test_impossible_places_get_clean_errors(client, good_photo, kwargs, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message):
        call(client, good_photo, **kwargs)


def test_range_map_endpoint_returns_an_offline_map(client):
    """Any model with a geo-prior (the bird model, or the CUB head that shares it) draws a species' range."""
    import re

    from gradio_client.exceptions import AppError

    model = "inat_bird" if HAVE_CORAL else "cub100_effnet_head"
    document = client.predict(model, "Passerina cyanea", 42.36, -71.06, "2021-05-01", api_name="/range_map")
    assert "Indigo Bunting (Passerina cyanea)" in document and "Observation" in document
    assert not re.search(r"<script[^>]+src=", document)
    with pytest.raises(AppError, match=f"'Quercus alba' is not one of {model}'s classes: no range to show"):
        client.predict(model, "Quercus alba", None, None, "", api_name="/range_map")
    with pytest.raises(AppError, match="latitude 91.0 is outside"):
        client.predict(model, "Passerina cyanea", 91.0, 0.0, "", api_name="/range_map")


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("photo", "model", "answered_by", "in_scope"),
    [
        ("cat.bmp", "inat_bird", "inat_bird", False),
        ("owl.jpg", "inat_bird", "inat_bird", True),
        ("owl.jpg", "auto", "inat_bird", True),
        ("dragonfly.bmp", "auto", "inat_insect", True),
        ("cat.bmp", "auto", "efficientnet_lite0_imagenet", None),
    ],
)
def test_scope_and_auto(client, photo, model, answered_by, in_scope):
    result = call(client, CORAL / photo, top_k=3, model=model)
    assert result["model"] == answered_by
    if in_scope is None:  # nothing covers a cat: ImageNet answers, and no clade is claimed
        assert result["scope"] is None and result["rollup"]["rank"] is None
        assert result["rollup"]["text"].endswith("closest: ImageNet says 'Egyptian cat'.")
    else:
        scope = result["scope"]
        assert set(scope) >= {"in_scope", "score", "threshold", "explanation"}
        assert scope["in_scope"] is in_scope and (scope["score"] >= scope["threshold"]) is in_scope
    if in_scope is False:
        assert result["rollup"]["rank"] is None
        assert result["rollup"]["text"].startswith("This does not look like a bird")
    assert (result.get("routed_from") == "auto") is (model == "auto")


@pytest.mark.skipif(not HAVE_CORAL, reason="the shipped embeddings belong to the real models in ../shared")
def test_similar_returns_the_nearest_labelled_photos(client):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    found = client.predict(handle_file(str(CORAL / "bird.bmp")), 6, "inat_bird", api_name="/similar")
    assert found["model"] == "inat_bird" and found["table"] == "inat_bird" and found["photos_searched"] > 4000
    assert found["scope"]["in_scope"] is True  # the same scope verdict as identify, from the same call
    neighbours = found["neighbours"]
    assert len(neighbours) == 6 and [n["similarity"] for n in neighbours] == sorted(
        (n["similarity"] for n in neighbours), reverse=True
    )
    assert neighbours[0]["true_name"] == "Poecile atricapillus" and neighbours[0]["in_suggestions"] is True
    assert all(abs(n["distance"] - (1 - n["similarity"])) < 1e-6 for n in neighbours)
    by_rank = {}
    for example in found["examples"]:
        by_rank.setdefault(example["suggestion"], []).append(example["true_name"])
    assert by_rank[1] == ["Poecile atricapillus"] * 2  # real photos of the first suggestion, nearest first
    assert set(found["suggestions"]) >= {names[0] for names in by_rank.values()}
    with pytest.raises(AppError, match="k must be between 1 and 50"):
        client.predict(handle_file(str(CORAL / "bird.bmp")), 0, "inat_bird", api_name="/similar")


def test_the_plain_rest_protocol_answers_and_refuses_as_the_client_does(app_url, good_photo, tmp_path):
    """What the README's HTTP example and the load generator speak (benchmarks/gradio_rest.py): a good photo gets the
    JSON, a bad one an error event carrying the page's message, and the server keeps serving."""
    import asyncio
    import sys

    import httpx
    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gradio_rest

    bad = tmp_path / "notes.txt"
    bad.write_bytes(b"just some text")

    async def calls():
        async with httpx.AsyncClient(timeout=60) as http:
            good = await gradio_rest.identify(http, app_url, good_photo, (43.65, -79.38, "2021-05-16"), "s1")
            with pytest.raises(gradio_rest.RestError, match="not an image we can read"):
                await gradio_rest.identify(http, app_url, bad, (None, None, ""), "s1")
            again = await gradio_rest.identify(http, app_url, good_photo, (None, None, ""), "s1")
            return good, again

    good, again = asyncio.run(calls())
    assert gradio_rest.check(good, (43.65, -79.38, "")) is None and good["place"] is not None
    assert len(good["predictions"]) == 5 and again["place"] is None and gradio_rest.check(again, (None,)) is None
    assert gradio_rest.check({"predictions": []}, (None,)) == "no predictions"


def test_errors_and_why_say_why_each_error_happened(client, tmp_path_factory):
    """`errors` lists a table's errors with one cause, with the test behind each cause; `why` gives one photo's
    causes and the label check's evidence, the same photo's score in the other tables included."""
    import pandas as pd
    from conftest import ROOT
    from gradio_client.exceptions import AppError

    from explorer.diagnose.causes import cause_totals
    from explorer.diagnose.frames import to_frame

    table = pd.read_parquet(ROOT / "assets" / "eval" / "inat_bird.parquet")
    expected = cause_totals(to_frame(table)).set_index("cause")["errors"]
    listed = client.predict("inat_bird", "label probably wrong", "label most doubtful first", 1000, api_name="/errors")
    assert listed["tested"] == [
        "unknown species",
        "out of scope",
        "label probably wrong",
        "lookalike",
        "atypical photo",
        "rests on the surroundings",
        "the place broke it",
    ]
    assert len(listed["errors"]) == expected["label probably wrong"] == 107
    first = listed["errors"][0]
    assert first["photo_id"] == "cub100-test:images/Pacific_Loon/0030.jpg" and first["label_issue_score"] > 0.99
    assert {"cause": "label probably wrong", "test": first["causes"][0]["test"]} in first["causes"]
    scores = [e["label_issue_score"] for e in listed["errors"]]
    assert scores == sorted(scores, reverse=True)

    why = client.predict("inat_bird", first["photo_id"], api_name="/why")
    assert [c["cause"] for c in why["causes"]] == ["label probably wrong"] and why["untested"] == []
    label = why["label"]
    assert label["rank"] == "order" and len(label["neighbours"]) == 10
    assert label["agreement"]["species"] == sum(n["shares"] == "species" for n in label["neighbours"]) / 10
    measured = why["surroundings"]  # the organism-or-surroundings columns of the same row
    assert measured["subject_locator"] == "coral_imagenet_mobilenet_v2" and 0 <= measured["off_subject_share"] <= 1
    row = table[table["photo_id"] == first["photo_id"]].iloc[0]
    assert measured["p_without_subject"] == pytest.approx(float(row["p_without_subject"]))
    cub = label["other_tables"]["cub100_effnet_head"]  # the same photo, by content, in the CUB model's table
    assert cub["label"] == "Gavia pacifica" and cub["score"] > 0.99  # the same label, and that model doubts it too

    with pytest.raises(AppError, match="no evaluation table 'nope'"):
        client.predict("nope", "(every error)", "most confident first", 5, api_name="/errors")
    with pytest.raises(AppError, match="cause must be one of"):
        client.predict("inat_bird", "gremlins", "most confident first", 5, api_name="/errors")
    with pytest.raises(AppError, match="has no photo 'nothing'"):
        client.predict("inat_bird", "nothing", api_name="/why")
    assert client.predict("inat_bird", "(every error)", "most confident first", 1, api_name="/errors")["errors"]
    log = (tmp_path_factory.getbasetemp() / "app0" / "app.log").read_text()  # the app_url fixture's server log
    assert "refused: table 'inat_bird' has no photo 'nothing'" in log  # one line per refusal,
    assert "gradio.exceptions.Error" not in log  # never a traceback for a user's mistake
