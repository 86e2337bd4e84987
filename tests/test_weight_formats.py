"""Weights formats behind one reader interface (explorer.models.formats): a new format is one reader and one registry
line; the shared helpers strip DDP/compile prefixes and digest a head with its base weights."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from explorer.models.cards import parse_model_card
from explorer.models.classifier import load_classifier
from explorer.models.formats import readers
from explorer.models.formats.loaded_weights import (
    LoadedWeights,
    Preprocessing,
    WeightsSource,
    sha256_file,
    strip_prefixes,
)
from explorer.models.formats.readers import register_reader
from explorer.models.formats.state_dict import StateDictReader
from explorer.models.registry import create_model
from explorer.settings import Settings

CLASSES = ("Parus major", "Sitta europaea", "Poecile atricapillus")


class NpzReader:
    """A made-up format: one numpy ``.npz`` holding the tensors (saved under DDP's ``module.`` prefix), the class
    names and the input size it was trained at. All a new format needs is a reader like this one."""

    names_classes = True

    def read(self, source: WeightsSource) -> LoadedWeights:
        path = source.find(source.file)
        with np.load(path) as data:
            state = {key: torch.from_numpy(data[key]) for key in data.files if not key.startswith("__")}
            names, size = tuple(str(name) for name in data["__classes__"]), int(data["__input_size__"])
        preprocessing = Preprocessing(size, (0.25, 0.5, 0.75), (0.5, 0.5, 0.5))
        return LoadedWeights(strip_prefixes(state), path, sha256_file(path), names, preprocessing)


@pytest.fixture
def npz_format(monkeypatch):
    """The "npz" format registered for one test (the registry is restored after it)."""
    monkeypatch.setattr(readers, "READERS", dict(readers.READERS))
    register_reader("npz", NpzReader())


def write_npz_checkpoint(folder: Path) -> tuple[Path, torch.nn.Module]:
    """A tiny_cnn in the made-up format, and a card that names neither classes nor preprocessing."""
    torch.manual_seed(3)
    model = create_model("tiny_cnn", len(CLASSES))
    with torch.no_grad():  # non-trivial batch-norm statistics, so loading them is seen in the logits
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    arrays = {f"module.{key}": value.numpy() for key, value in model.state_dict().items()}
    np.savez(folder / "tiny.npz", __classes__=np.array(CLASSES), __input_size__=np.array(48), **arrays)
    card = {"name": "tiny_npz", "architecture": "tiny_cnn", "weights": {"format": "npz", "file": "tiny.npz"}}
    (folder / "tiny_npz.json").write_text(json.dumps({**card, "cam_layer": "features", "taxonomy": "none"}))
    return folder / "tiny_npz.json", model


def test_a_new_format_is_one_reader_and_one_registry_line(npz_format, tmp_path):
    from explorer.models.cards import load_model_card

    card_path, reference = write_npz_checkpoint(tmp_path)
    classifier = load_classifier(load_model_card(card_path), Settings(checkpoint_dir=tmp_path))
    assert [label.scientific_name for label in classifier.labels] == list(CLASSES)
    assert (classifier.card.input_size, classifier.card.mean) == (48, (0.25, 0.5, 0.75))  # the reader's values
    assert classifier.weights_sha256 == hashlib.sha256((tmp_path / "tiny.npz").read_bytes()).hexdigest()
    rng = np.random.default_rng(0)
    x = classifier.preprocess(Image.fromarray(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)))
    assert x.shape == (1, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(classifier.module(x), reference.eval()(x))  # the very weights the file holds


def test_the_card_accepts_a_format_once_its_reader_is_registered(monkeypatch):
    card = {"name": "m", "architecture": "tiny_cnn", "weights": {"format": "npz", "file": "w.npz"}}
    with pytest.raises(ValueError, match=r"weights\.format 'npz' not in \('safetensors', 'state_dict', 'tflite'"):
        parse_model_card({**card, "labels_file": "l.txt"})
    monkeypatch.setattr(readers, "READERS", dict(readers.READERS))
    register_reader("npz", NpzReader())
    assert parse_model_card(card).weights.format == "npz"  # its weights name the classes: no labels_file needed
    register_reader("plain_npz", StateDictReader())
    with pytest.raises(ValueError, match=r"missing field\(s\) \['labels_file'\]"):
        parse_model_card({**card, "weights": {"format": "plain_npz", "file": "w.npz"}})


def test_a_format_cannot_be_registered_twice(monkeypatch):
    monkeypatch.setattr(readers, "READERS", dict(readers.READERS))
    with pytest.raises(ValueError, match="weights format 'birder' is already registered"):
        register_reader("birder", NpzReader())


def test_prefixes_of_ddp_and_compile_are_stripped():
    one, two, three = torch.zeros(1), torch.ones(2), torch.ones(3)
    saved = {"module._orig_mod.features.0.weight": one, "_orig_mod.classifier.bias": two, "module.head.bias": three}
    state = strip_prefixes(saved)  # DDP around a compiled model, a compiled model, DDP
    assert list(state) == ["features.0.weight", "classifier.bias", "head.bias"]
    assert state["features.0.weight"] is one and state["classifier.bias"] is two and state["head.bias"] is three


def test_a_state_dict_with_a_head_digests_both_files_and_takes_the_heads_tensors(tmp_path):
    torch.save({"state_dict": {"module.a": torch.zeros(2), "b": torch.zeros(1)}}, tmp_path / "base.pt")
    torch.save({"b": torch.full((1,), 7.0)}, tmp_path / "head.pt")
    source = WeightsSource("m", "base.pt", lambda name: tmp_path / name, tmp_path, head_weights="head.pt")
    weights = StateDictReader().read(source)
    assert {key: value.tolist() for key, value in weights.state.items()} == {"a": [0.0, 0.0], "b": [7.0]}
    base, head = (hashlib.sha256((tmp_path / f).read_bytes()).hexdigest() for f in ("base.pt", "head.pt"))
    assert weights.sha256 == hashlib.sha256((base + head).encode()).hexdigest()
    assert (weights.class_names, weights.preprocessing, weights.options) == (None, None, {})


def test_a_training_checkpoint_dict_is_unwrapped_or_refused_naming_its_keys(tmp_path):
    """{"model": state_dict, "epoch": 30} as a training script saves it: the weights inside are read; a dict with
    the weights under another key is refused, naming the keys it has."""
    from explorer.models.formats.state_dict import load_state_dict

    weights = {"module.fc.weight": torch.ones(2, 3), "fc.bias": torch.zeros(2)}
    for key in ("model", "state_dict", "model_state_dict"):
        torch.save({key: weights, "epoch": 30, "optimizer": {"lr": 0.1}}, tmp_path / f"{key}.pth")
        assert sorted(load_state_dict(tmp_path / f"{key}.pth")) == ["fc.bias", "fc.weight"], key
    torch.save(weights, tmp_path / "plain.pth")
    assert sorted(load_state_dict(tmp_path / "plain.pth")) == ["fc.bias", "fc.weight"]
    torch.save({"ema_weights": weights, "epoch": 3}, tmp_path / "other.pth")
    with pytest.raises(
        ValueError,
        match=r"without a state dict under any of \['state_dict', 'model'.*keys are \['ema_weights', 'epoch'\]",
    ):
        load_state_dict(tmp_path / "other.pth")


def test_num_classes_in_architecture_args_is_explained():
    from explorer.models.registry import create_model

    with pytest.raises(ValueError, match=r"\(num_classes is set from the label file: leave it out\)"):
        create_model("torchvision:resnet18", 3, {"num_classes": 3})
