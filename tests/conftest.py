"""Shared fixtures and helpers: paths to ../shared, tiny registered models (and checkpoints for them), the
hand-built evaluation table, a tiny trained geo-prior, the real models, and a launched app.

One marker for shared data: a test marked ``shared_data`` is skipped, with the reason, when ../shared lacks the
Coral models or the labelled photos."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.settings import CORAL_DIR, DATA_DIR, PROJECT_ROOT, SHARED_DIR
from explorer.ui.launcher import CHROMIUM_FLAGS, CHROMIUM_PATH, launched_app

ROOT, SHARED, CORAL = PROJECT_ROOT, SHARED_DIR, CORAL_DIR
SAMPLE_PHOTOS = ["bird.bmp", "owl.jpg", "parrot.jpg", "dragonfly.bmp", "sunflower.bmp", "cat.bmp", "grace_hopper.bmp"]
HAVE_CORAL = (CORAL / "mobilenet_v2_1.0_224_inat_bird_quant.tflite").is_file()
HAVE_SHARED_DATA = (DATA_DIR / "cub100").is_dir() and (DATA_DIR / "birds525-valid").is_dir()
SHARED_REASON = f"needs ../shared ({SHARED}): the Coral models in models/coral and the labelled photos in data/"

# Real bird names, so the tiny model's classes resolve in the real taxonomy (two Poecile, one Parus, one owl).
TINY_LABELS = [
    "Poecile atricapillus (Black-capped Chickadee)",
    "Poecile gambeli (Mountain Chickadee)",
    "Parus major (Great Tit)",
    "Athene cunicularia (Burrowing Owl)",
    "background",
]


def pytest_collection_modifyitems(config, items):
    """Tests marked shared_data skip, saying why, when ../shared is not beside the checkout."""
    if HAVE_CORAL and HAVE_SHARED_DATA:
        return
    skip = pytest.mark.skip(reason=SHARED_REASON)
    for item in items:
        if "shared_data" in item.keywords:
            item.add_marker(skip)


def write_tiny_checkpoint(
    folder: Path,
    labels: list[str] = TINY_LABELS,
    num_outputs: int | None = None,
    name: str = "tiny",
    seed: int = 0,
    **card_fields,
) -> Path:
    """A real card + safetensors + label file for the registered tiny_cnn; returns the card path."""
    from safetensors.torch import save_file

    from explorer.models.registry import create_model

    torch.manual_seed(seed)
    model = create_model("tiny_cnn", num_outputs or len(labels))
    folder.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(folder / f"{name}.safetensors"))
    (folder / f"{name}_labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    card = {
        "name": name,
        "architecture": "tiny_cnn",
        "labels_file": f"{name}_labels.txt",
        "input_size": 64,
        "weights": {"format": "safetensors", "file": f"{name}.safetensors"},
        "cam_layer": "features",
        "background_label": "background",
        "subject": "bird",
        "taxon_scope": {"class": "Aves"},
        **card_fields,
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(card), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_ckpt")
    write_tiny_checkpoint(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_classifier(tiny_dir):
    from explorer.models.cards import load_model_card
    from explorer.models.classifier import load_classifier
    from explorer.settings import Settings
    from explorer.taxa.taxonomy import load_taxonomy

    taxonomy = load_taxonomy([label.split(" (")[0] for label in TINY_LABELS])
    return load_classifier(load_model_card(tiny_dir / "tiny.json"), Settings(checkpoint_dir=tiny_dir), taxonomy)


@pytest.fixture(scope="session")
def real_resources():
    """The app's real models, loaded the way app.py loads them."""
    if not HAVE_CORAL:
        pytest.skip(SHARED_REASON)
    from explorer.services.resources import load_resources
    from explorer.settings import parse_settings

    return load_resources(parse_settings([]))


@pytest.fixture
def photo_rgb() -> Image.Image:
    """A real photo when ../shared is there, else a drawn one (for tests that only need some image)."""
    if HAVE_CORAL:
        return Image.open(CORAL / "bird.bmp").convert("RGB")
    image = Image.new("RGB", (160, 120), (90, 140, 60))
    image.paste((200, 40, 40), (50, 30, 110, 90))
    return image


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    """python app.py, launched the README way on a free loopback port; yields its URL."""
    with launched_app(tmp_path_factory.mktemp("app") / "app.log") as (url, _process):
        yield url


# (true name, the class the logits favour, expected rank of divergence)
CASES = [
    ("Poecile atricapillus", 0, "correct"),
    ("Poecile atricapillus", 1, "species"),  # right genus, wrong species
    ("Poecile gambeli", 2, "genus"),  # Parus: same family
    ("Athene cunicularia", 0, "order"),  # owl called a chickadee
    ("Quercus alba", 3, "kingdom"),  # an oak: out of vocabulary, wrong kingdom
    ("Parus major", 4, "no prediction"),  # the model says "no bird"
]


@pytest.fixture(scope="session")
def hand_table(tiny_classifier):
    """An evaluation table built from logits whose answers are known (see CASES); photo 5 has a doubtful label."""
    import numpy as np
    import pandas as pd

    from explorer.diagnose.table import build_eval_table
    from explorer.taxa.taxonomy import load_taxonomy

    manifest = pd.DataFrame(
        {
            "path": [f"p{i}.jpg" for i in range(len(CASES))],
            "scientific_name": [c[0] for c in CASES],
            "common_name": "",
            "note": ["", "", "", "", "", "doubtful"],
            "source": "hand",
            "abs_path": [f"/photos/p{i}.jpg" for i in range(len(CASES))],
        }
    )
    logits = np.full((len(CASES), len(TINY_LABELS)), -2.0, dtype=np.float32)
    for row, (_, favoured, _) in enumerate(CASES):
        logits[row, favoured] = 3.0
    logits[1, 0] = 2.0  # the true class is second for case 1
    taxonomy = load_taxonomy([c[0] for c in CASES] + [label.split(" (")[0] for label in TINY_LABELS])
    return build_eval_table(tiny_classifier, manifest, logits, ["ok"] * len(CASES), taxonomy)


@pytest.fixture(scope="session")
def tiny_world():
    """A geo-prior trained on a made-up world: taxon 0 lives only in Europe-ish, taxon 1 in South America-ish."""
    import numpy as np
    import pandas as pd

    from explorer.geo.range_model import GeoPriorConfig
    from explorer.geo.training import train_geo_prior

    rng = np.random.default_rng(0)
    n = 600
    lat = np.concatenate([rng.uniform(40, 60, n), rng.uniform(-35, -5, n)])
    lon = np.concatenate([rng.uniform(-5, 25, n), rng.uniform(-70, -40, n)])
    records = pd.DataFrame(
        {"lat": lat, "lon": lon, "day_of_year": rng.uniform(1, 365, 2 * n), "taxon_index": np.repeat([0, 1], n)}
    )
    config = GeoPriorConfig(hidden=64, layers=2, epochs=60, batch_size=256, lr=2e-3, positive_weight=8.0, dropout=0.0)
    return train_geo_prior(records, 2, config, progress=False)


# ---- photos made in the test, and the browser -----------------------------------------------------------------


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def good_rgb(size=(64, 48)) -> Image.Image:
    array = np.random.default_rng(0).integers(0, 255, (*size[::-1], 3), dtype=np.uint8)
    return Image.fromarray(array, "RGB")


def photo_with_exif(gps=None, date=None, image: Image.Image | None = None) -> bytes:
    """A JPEG with the given EXIF GPS and capture date: of ``image``, or of a drawn test pattern."""
    exif = Image.Exif()
    if gps is not None:
        exif[0x8825] = gps
    if date is not None:
        exif[0x8769] = {0x9003: date}
    return encode(image if image is not None else good_rgb(), "JPEG", exif=exif)


CHROMIUM, FLAGS = CHROMIUM_PATH, CHROMIUM_FLAGS  # Debian's browser, never a downloaded one
SHOTS = PROJECT_ROOT / "tmp" / "screenshots"  # screenshots to look at


@contextlib.contextmanager
def chromium_page(url: str, width: int = 1400, height: int = 1100):
    """A page of the app in Debian's headless Chromium, opened and ready for a photo."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            page.wait_for_selector("#photo")
            yield page
        finally:
            browser.close()


def drop_file(page, data: bytes, name: str, mime: str) -> None:
    """Dispatch dragenter/dragover/drop with a real File in a DataTransfer, as a user's drag does."""
    transfer = page.evaluate_handle(
        """([b64, name, mime]) => { const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer(); dt.items.add(new File([bytes], name, {type: mime})); return dt; }""",
        [base64.b64encode(data).decode(), name, mime],
    )
    clear = page.locator("#photo button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    target = page.locator("#photo button.upload-container").first
    for event in ("dragenter", "dragover", "drop"):
        target.dispatch_event(event, {"dataTransfer": transfer})


BROWSER_MARKS = [  # every browser test module's pytestmark starts with these
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian chromium (apt-get install chromium)"),
]


def app_request(request) -> bool:
    """A request to the app's API, but not the heartbeat stream Gradio keeps open for the whole session."""
    return "/gradio_api/" in request.url and "/heartbeat/" not in request.url


class NetworkWatch:
    """The page's requests (those ``keep`` accepts) from its start on, and a wait until none of them has been in
    flight for a while: how a test shows that no late request follows, where a fixed sleep only guesses.

    Use it as a context manager (the listeners go with it); ``sent`` lists the requests in order.
    """

    def __init__(self, page, keep: Callable = app_request):
        self.page, self.keep = page, keep
        self.sent: list = []
        self.in_flight: set = set()
        self.last_change = time.monotonic()
        self._listeners = {"request": self._started, "requestfinished": self._ended, "requestfailed": self._ended}

    def __enter__(self) -> NetworkWatch:
        for event, listener in self._listeners.items():
            self.page.on(event, listener)
        return self

    def __exit__(self, *_exc) -> None:
        for event, listener in self._listeners.items():
            self.page.remove_listener(event, listener)

    def _started(self, request) -> None:
        if self.keep(request):
            self.sent.append(request)
            self.in_flight.add(request)
            self.last_change = time.monotonic()

    def _ended(self, request) -> None:
        if request in self.in_flight:
            self.in_flight.discard(request)
            self.last_change = time.monotonic()

    def wait_idle(self, quiet_ms: int = 1000, timeout_ms: int = 60_000) -> None:
        """Return once no kept request has been in flight, and none has started, for ``quiet_ms``; raise
        AssertionError naming what is still in flight after ``timeout_ms``."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            now = time.monotonic()
            quiet_left = quiet_ms / 1000 - (now - self.last_change)
            if not self.in_flight and quiet_left <= 0:
                return
            if now > deadline:
                pending = sorted(r.url for r in self.in_flight)
                raise AssertionError(f"the network was not quiet for {quiet_ms} ms in {timeout_ms} ms: {pending}")
            # Playwright hands over the page's events only while a call waits: wait for the next event that can
            # change the answer (a request ending while some are in flight, else a new one), at most the quiet time
            event, wait_s = ("requestfinished", quiet_ms / 1000) if self.in_flight else ("request", quiet_left)
            with contextlib.suppress(PlaywrightTimeout):
                self.page.wait_for_event(event, timeout=max(min(wait_s, deadline - now), 0.05) * 1000)
