"""Shared fixtures: paths to ../shared, tiny registered models, the real models, and a launched app."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from explorer.launcher import launched_app  # noqa: F401 (tests use it from here)

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EXPLORER_SHARED_DIR", ROOT.parent / "shared"))
CORAL = SHARED / "models" / "coral"
SAMPLE_PHOTOS = ["bird.bmp", "owl.jpg", "parrot.jpg", "dragonfly.bmp", "sunflower.bmp", "cat.bmp", "grace_hopper.bmp"]
HAVE_CORAL = (CORAL / "mobilenet_v2_1.0_224_inat_bird_quant.tflite").is_file()
needs_shared = pytest.mark.skipif(not HAVE_CORAL, reason=f"needs the Coral models and photos in {CORAL} (../shared)")
HAVE_SHARED_DATA = (SHARED / "data" / "cub100").is_dir() and (SHARED / "data" / "birds525-valid").is_dir()

# Real bird names, so the tiny model's classes resolve in the real taxonomy (two Poecile, one Parus, one owl).
TINY_LABELS = [
    "Poecile atricapillus (Black-capped Chickadee)",
    "Poecile gambeli (Mountain Chickadee)",
    "Parus major (Great Tit)",
    "Athene cunicularia (Burrowing Owl)",
    "background",
]


def pytest_configure(config):
    for marker, text in [
        ("slow", "takes more than a few seconds"),
        ("browser", "drives headless Chromium"),
        ("gpu", "needs CUDA"),
        ("shared_data", "needs ../shared"),
    ]:
        config.addinivalue_line("markers", f"{marker}: {text}")


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

    from explorer.registry import create_model

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
    from explorer.config import Settings, load_model_card
    from explorer.model import load_classifier
    from explorer.taxonomy import load_taxonomy

    taxonomy = load_taxonomy([label.split(" (")[0] for label in TINY_LABELS])
    return load_classifier(load_model_card(tiny_dir / "tiny.json"), Settings(checkpoint_dir=tiny_dir), taxonomy)


@pytest.fixture(scope="session")
def real_resources():
    """The app's real models, loaded the way app.py loads them."""
    if not HAVE_CORAL:
        pytest.skip(f"needs the Coral models in {CORAL} (../shared)")
    import app
    from explorer.resources import load_resources

    return load_resources(app.parse_settings([]))


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
