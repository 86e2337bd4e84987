"""Security review, as tests: what the server will serve, markup in a user's own class names, how checkpoints are
loaded, where the server listens, and the upload caps (size and pixel count: tests/test_api.py)."""

import ast
import shutil
import urllib.error
import urllib.request

import pytest
from conftest import CHROMIUM, FLAGS, HAVE_CORAL, ROOT, SHOTS, drop_file, write_tiny_checkpoint
from PIL import Image

from explorer.ui.launcher import launched_app

EVIL = [
    '<img src=x onerror="window.__pwned=1">Evilus maximus (Markup <b>Bird</b>)',
    "Poecile atricapillus (Black-capped <script>window.__pwned=2</script>Chickadee)",
    "Parus major (Great Tit)",
    'Athene cunicularia (Burrowing Owl" onmouseover="window.__pwned=3)',
    "background",
]


def status_of(url: str) -> int:
    try:
        return urllib.request.urlopen(url, timeout=10).status
    except urllib.error.HTTPError as err:
        return err.code


@pytest.mark.slow
def test_only_the_apps_own_files_are_served(app_url, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web")
    for path in [ROOT / "app.py", ROOT / "checkpoints" / "geo" / "inat_bird.safetensors", secret, "/etc/passwd"]:
        assert status_of(f"{app_url}gradio_api/file={path}") in (403, 404), path
    assert status_of(f"{app_url}gradio_api/file=../../../../etc/passwd") in (400, 403, 404)
    if HAVE_CORAL:  # the staged copy of an example photo is served (the UI shows it)
        staged = ROOT / "checkpoints" / ".cache" / "examples" / "parrot.jpg"
        assert status_of(f"{app_url}gradio_api/file={staged}") == 200


@pytest.fixture(scope="module")
def hostile_app(tmp_path_factory):
    """The app serving a user's own checkpoint whose class names carry markup."""
    folder = tmp_path_factory.mktemp("hostile")
    write_tiny_checkpoint(folder / "checkpoints", EVIL, name="hostile")
    nothing = str(folder / "nothing")
    args = [
        "--no-shipped",
        "--checkpoint-dir",
        str(folder / "checkpoints"),
        "--examples-dir",
        nothing,
        "--eval-dir",
        nothing,
    ]
    with launched_app(folder / "app.log", *args) as (url, _process):
        yield url


def test_markup_in_class_names_is_text_through_the_api(hostile_app, tmp_path):
    from gradio_client import Client, handle_file

    photo = tmp_path / "p.png"
    Image.new("RGB", (120, 90), (90, 60, 30)).save(photo)
    result = Client(hostile_app, verbose=False).predict(
        handle_file(str(photo)), 5, "", 0.78, None, None, "", api_name="/identify"
    )
    names = {p["scientific_name"] for p in result["predictions"]}
    assert '<img src=x onerror="window.__pwned=1">Evilus maximus' in names  # data, returned as given


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which("/usr/bin/chromium"), reason="needs Debian chromium (apt-get install chromium)")
def test_markup_in_class_names_never_runs_in_the_page(hostile_app, tmp_path):
    from playwright.sync_api import sync_playwright

    photo = tmp_path / "p.png"
    Image.new("RGB", (120, 90), (90, 60, 30)).save(photo)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(hostile_app)
        page.wait_for_selector("#photo")
        drop_file(page, photo.read_bytes(), "p.png", "image/png")
        page.wait_for_function("document.querySelectorAll('#cams img').length >= 5", timeout=60_000)
        page.locator("#lineages").filter(has_text="Evilus maximus").wait_for(timeout=30_000)
        page.locator("#lineages tr").nth(1).hover()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "hostile_labels.png"), full_page=True)
        assert page.evaluate("window.__pwned") is None and dialogs == []
        assert page.locator("img[src='x']").count() == 0 and page.locator("#lineages b").count() == 0
        assert "<img src=x" in page.locator("#lineages").inner_text()  # shown as text
        browser.close()


def test_checkpoints_load_with_weights_only_or_safetensors():
    """Every torch.load in the package passes weights_only=True (no pickle code runs from a checkpoint)."""
    calls = 0
    for path in (ROOT / "explorer").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) in ("torch.load", "load")
                and any(k.arg == "weights_only" for k in node.keywords)
            ):
                calls += 1
                flag = next(k for k in node.keywords if k.arg == "weights_only")
                assert ast.unparse(flag.value) == "True", f"{path}: {ast.unparse(node)}"
            elif isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                pytest.fail(f"{path}: torch.load without weights_only=True: {ast.unparse(node)}")
    assert calls >= 1


def test_server_listens_on_loopback_unless_told_otherwise():
    from explorer.settings import Settings, parse_settings

    assert Settings(checkpoint_dir=ROOT).host == "127.0.0.1"
    assert parse_settings([]).host == "127.0.0.1" and parse_settings([]).share is False
    assert parse_settings(["--host", "0.0.0.0"]).host == "0.0.0.0"
