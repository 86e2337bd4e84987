"""Classifiers from cards: weights, labels, preprocessing, checks that fail at load, devices."""

import json
import pickle

import pytest
import torch
from conftest import write_tiny_checkpoint

from explorer.models.cards import load_model_card
from explorer.models.classifier import load_classifier, pick_device
from explorer.models.formats.state_dict import load_state_dict
from explorer.services.resources import load_resources
from explorer.settings import Settings


def test_tiny_classifier_loads_with_lineages(tiny_classifier):
    assert tiny_classifier.name == "tiny" and len(tiny_classifier.labels) == 5
    chickadee = tiny_classifier.labels[0]
    assert chickadee.common_name == "Black-capped Chickadee" and chickadee.lineage.at("family") == "Paridae"
    assert tiny_classifier.labels[4].is_background and tiny_classifier.background_index == 4
    assert len(tiny_classifier.weights_sha256) == 64


def test_preprocess_uses_card_size_and_normalisation(tiny_classifier, photo_rgb):
    x = tiny_classifier.preprocess(photo_rgb)
    assert x.shape == (1, 3, 64, 64) and -1.01 <= float(x.min()) and float(x.max()) <= 1.01


def test_label_count_mismatch_names_both_numbers(tmp_path):
    card = write_tiny_checkpoint(tmp_path, num_outputs=7)  # 5 labels, weights with 7 outputs
    with pytest.raises(ValueError, match="has 5 classes but the weights' classifier.weight has 7 outputs"):
        load_classifier(load_model_card(card), Settings(checkpoint_dir=tmp_path))


def test_missing_weights_file_is_file_not_found(tmp_path):
    card = write_tiny_checkpoint(tmp_path)
    (tmp_path / "tiny.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="tiny.safetensors not found"):
        load_classifier(load_model_card(card), Settings(checkpoint_dir=tmp_path))


def test_wrong_cam_layer_fails_at_load(tmp_path):
    card = write_tiny_checkpoint(tmp_path, cam_layer="features.99")
    with pytest.raises(ValueError, match="cam_layer 'features.99' is not a module of tiny_cnn"):
        load_classifier(load_model_card(card), Settings(checkpoint_dir=tmp_path))


def test_user_checkpoint_torchvision_state_dict(tmp_path):
    """The bring-your-own-model recipe (docs/guide/bring-your-own-model.md): a torchvision architecture, a torch
    state_dict (saved from DDP), a class list."""
    from explorer.models.registry import create_model

    model = create_model("torchvision:resnet18", 3)
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "mine.pt")
    (tmp_path / "classes.txt").write_text("Parus major\nCyanistes caeruleus\nSitta europaea\n")
    (tmp_path / "mine.json").write_text(
        json.dumps(
            {
                "name": "mine",
                "architecture": "torchvision:resnet18",
                "labels_file": "classes.txt",
                "labels_format": "plain",
                "weights": {"format": "state_dict", "file": "mine.pt"},
                "cam_layer": "layer4",
                "mean": [0.485, 0.456, 0.406],
                "std": [0.229, 0.224, 0.225],
            }
        )
    )
    resources = load_resources(Settings(checkpoint_dir=tmp_path))
    classifier = resources.get("mine")
    assert [lab.scientific_name for lab in classifier.labels] == [
        "Parus major",
        "Cyanistes caeruleus",
        "Sitta europaea",
    ]
    assert classifier.labels[1].lineage.at("family") == "Paridae"  # resolved through the real iNat taxonomy


def test_load_state_dict_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"weights": torch.zeros(1), "payload": object()}, path)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_state_dict(path)


def test_pick_device():
    assert pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert pick_device("auto").type == "cpu"
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_identify_matches_cpu(tiny_dir, photo_rgb):
    from explorer.identify.answer import identify

    card = load_model_card(tiny_dir / "tiny.json")
    cpu = identify(load_classifier(card, Settings(checkpoint_dir=tiny_dir, device="cpu")), photo_rgb, 3)
    gpu = identify(load_classifier(card, Settings(checkpoint_dir=tiny_dir, device="cuda")), photo_rgb, 3)
    assert [p.class_index for p in gpu.predictions] == [p.class_index for p in cpu.predictions]
