"""The model families in the launched app, as a user brings them: `python app.py --checkpoint-dir` a folder holding a
timm ViT with register tokens, a timm Swin and a birder ViT with birder rank heads and iNat 2021 class names (tiny
random-weight models written by their own libraries, tests/families.py). Through the API (identify, explain) and in
a real Chromium (the suggestions, one CAM per suggestion, the rank heads)."""

import shutil

import numpy as np
import pytest
from conftest import CHROMIUM, SHOTS, chromium_page, drop_file
from families import write_birder_checkpoint, write_timm_checkpoint
from PIL import Image

from explorer.ui.launcher import launched_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def families_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("families_app")
    checkpoints = folder / "checkpoints"
    write_timm_checkpoint(checkpoints, "vit_reg4", priority=10, display_name="My ViT with registers (timm)")
    write_timm_checkpoint(checkpoints, "swin", display_name="My Swin (timm)")
    write_birder_checkpoint(checkpoints, display_name="My birder ViT (iNat21 names, rank heads)")
    nothing = str(folder / "nothing")
    args = ["--no-shipped", "--checkpoint-dir", str(checkpoints), "--examples-dir", nothing, "--eval-dir", nothing]
    with launched_app(folder / "app.log", *args) as (url, _process):
        yield url


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    pixels = np.random.default_rng(0).integers(0, 256, (150, 200, 3), dtype=np.uint8)  # texture in every patch
    pixels[20:90, 20:90] = (200, 40, 40)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def client(families_app):
    from gradio_client import Client

    return Client(families_app, verbose=False)


def test_identify_api_answers_with_lineage_common_names_and_rank_heads(client, photo):
    from gradio_client import handle_file

    result = client.predict(handle_file(str(photo)), 4, "birder_vit", 0.78, api_name="/identify")
    assert result["model"] == "birder_vit" and len(result["predictions"]) == 4
    by_name = {p["scientific_name"]: p for p in result["predictions"]}
    chickadee = by_name["Poecile atricapillus"]
    assert chickadee["common_name"] == "Black-capped Chickadee" and chickadee["lineage"]["family"] == "Paridae"
    assert by_name["Athene cunicularia"]["lineage"]["order"] == "Strigiformes"
    assert [h["rank"] for h in result["rank_heads"]] == ["order", "family", "genus"]


@pytest.mark.parametrize(
    "model, method, layer, kind, grid",
    [
        ("vit_reg4", "gradcam", "blocks.1.norm1", "tokens", [4, 4]),
        ("vit_reg4", "eigencam", "blocks.1.norm1", "tokens", [4, 4]),
        ("swin", "gradcam", "layers.1.blocks.0.norm1", "nhwc", [8, 8]),
        ("birder_vit", "gradcam++", "encoder.block.1.norm1", "tokens", [4, 4]),
    ],
)
def test_explain_api_returns_a_cam_per_suggestion_at_the_patch_grid(client, photo, model, method, layer, kind, grid):
    from gradio_client import handle_file

    result = client.predict(handle_file(str(photo)), 3, model, method, api_name="/explain")
    cams = result["cams"]
    layout = cams["layout"]
    assert (cams["method"], cams["layer"], layout["kind"], layout["grid"]) == (method, layer, kind, grid)
    assert len(cams["maps"]) == 3 and all(len(m) == grid[0] and len(m[0]) == grid[1] for m in cams["maps"])
    values = np.asarray(cams["maps"])  # min-max scaled per map, as pytorch-grad-cam does (random weights: faint maps)
    assert values.min() >= 0 and values.max() <= 1 and values.std() > 0
    assert "not named in the card" in cams["layer_why"]


def test_explain_api_refuses_an_unknown_method_and_keeps_serving(client, photo):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    from explorer.cam.gradcam import METHODS

    with pytest.raises(AppError) as refused:
        client.predict(handle_file(str(photo)), 3, "swin", "magiccam", api_name="/explain")
    assert refused.value.message == f"unknown CAM method 'magiccam'; choose from {list(METHODS)}"
    assert refused.value.title == "Cannot explain this photo"
    assert client.predict(handle_file(str(photo)), 2, "swin", "gradcam", api_name="/explain")["model"] == "swin"


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian chromium (apt-get install chromium)")
@pytest.mark.parametrize("width", [1400, 400])
def test_a_birder_vit_identifies_and_explains_in_the_browser(families_app, photo, width):
    with chromium_page(families_app, width=width) as page:
        page.locator("#model input").first.click()
        page.get_by_role("option", name="My birder ViT (iNat21 names, rank heads)").click()
        page.wait_for_timeout(500)
        posts = []
        page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and "/queue/join" in r.url else None)
        drop_file(page, photo.read_bytes(), "photo.png", "image/png")
        page.locator("#rank_heads").wait_for(timeout=90_000)
        page.locator("#cams img").first.wait_for(timeout=30_000)
        assert len(posts) == 1  # one photo, one request
        rows = page.locator("#rank_heads tr").all_inner_texts()
        assert [r.split("\t")[0] for r in rows] == ["Rank", "order", "family", "genus"]
        assert page.locator("#cams img").count() == 4  # one CAM per suggestion (top-5 of 4 classes)
        lineage = page.locator("#lineages").inner_text()
        assert "Black-capped Chickadee" in page.locator("body").inner_text() and "Paridae" in lineage
        page.locator("#cams").scroll_into_view_if_needed()
        page.wait_for_function(
            "[...document.querySelectorAll('#cams img')].every(i => i.complete && i.naturalWidth > 0)", timeout=30_000
        )
        page.locator("#cams").screenshot(path=str(SHOTS / f"birder_vit_cams_{width}.png"))
        page.screenshot(path=str(SHOTS / f"birder_vit_{width}.png"), full_page=True)
        page.get_by_role("tab", name="Models").click()
        models = page.locator("body").inner_text()
        assert "CAM layer encoder.block.1.norm1 (not named in the card" in models
        assert "tokens: 4 prefix tokens dropped, 16 patch tokens as a 4×4 grid" in models


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian chromium (apt-get install chromium)")
@pytest.mark.parametrize("model", ["My ViT with registers (timm)", "My Swin (timm)"])
def test_timm_transformers_identify_and_explain_in_the_browser(families_app, photo, model):
    with chromium_page(families_app) as page:
        page.locator("#model input").first.click()
        page.get_by_role("option", name=model).click()
        page.wait_for_timeout(500)
        drop_file(page, photo.read_bytes(), "photo.png", "image/png")
        page.locator("#lineages table").wait_for(timeout=90_000)
        page.wait_for_function(
            "document.querySelectorAll('#cams img').length === 5"
            " && [...document.querySelectorAll('#cams img')].every(i => i.complete && i.naturalWidth > 0)",
            timeout=30_000,
        )
        assert "Great Horned Owl" in page.locator("#lineages").inner_text()  # all 5 classes, common names
        assert page.locator("#rank_heads").count() == 0  # no rank heads on these cards


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian chromium (apt-get install chromium)")
def test_changing_the_cam_method_redraws_with_one_request(families_app, photo):
    with chromium_page(families_app) as page:
        page.locator("#model input").first.click()
        page.get_by_role("option", name="My ViT with registers (timm)").click()
        drop_file(page, photo.read_bytes(), "photo.png", "image/png")
        page.wait_for_function("document.querySelectorAll('#cams img').length === 5", timeout=90_000)
        posts = []
        page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and "/queue/join" in r.url else None)
        page.locator("#cam_method input").first.click()
        page.get_by_role("option", name="eigencam", exact=True).click()
        page.wait_for_function("document.querySelectorAll('#cams img').length === 1", timeout=60_000)
        assert "it ignores the class, so it is the same for every suggestion" in page.locator("#cams").inner_text()
        assert len(posts) == 1
        page.locator("#cam_method input").first.click()
        page.get_by_role("option", name="gradcam++", exact=True).click()
        page.wait_for_function("document.querySelectorAll('#cams img').length === 5", timeout=60_000)
        assert "(gradcam++): one CAM per suggestion" in page.locator("#cams").inner_text() and len(posts) == 2
