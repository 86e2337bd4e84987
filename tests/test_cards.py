"""Model cards (parsed, validated, sorted) and the label files they name."""

import json

import pytest
from conftest import TINY_LABELS

from explorer.models.cards import find_file, load_model_card, load_model_cards, parse_model_card, read_labels
from explorer.settings import Settings

BASE = {
    "name": "m",
    "architecture": "tiny_cnn",
    "labels_file": "l.txt",
    "weights": {"format": "safetensors", "file": "w.safetensors"},
}


def test_parse_minimal_card_has_defaults():
    card = parse_model_card(BASE)
    assert card.input_size == 224 and card.mean == (0.5, 0.5, 0.5) and card.label == "m"


def test_missing_fields_are_named():
    with pytest.raises(ValueError, match=r"missing field\(s\) \['labels_file'\]"):
        parse_model_card({k: v for k, v in BASE.items() if k != "labels_file"})


def test_bad_weight_format_lists_valid_ones():
    with pytest.raises(ValueError, match="weights.format 'pickle' not in"):
        parse_model_card({**BASE, "weights": {"format": "pickle", "file": "x"}})


def test_unknown_field_is_rejected():
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['colour'\]"):
        parse_model_card({**BASE, "colour": "red"})


@pytest.mark.parametrize(
    "field,value,message",
    [("taxonomy", "gbif", "taxonomy 'gbif'"), ("std", [1, 0, 1], "std > 0"), ("input_size", 5, "outside")],
)
def test_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        parse_model_card({**BASE, field: value})


def test_invalid_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_model_card(path)


def test_cards_sorted_by_priority_and_unique(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({**BASE, "name": "a", "priority": 50}))
    (tmp_path / "b.json").write_text(json.dumps({**BASE, "name": "b", "priority": 5}))
    assert [c.name for c in load_model_cards(tmp_path)] == ["b", "a"]
    (tmp_path / "c.json").write_text(json.dumps({**BASE, "name": "a"}))
    with pytest.raises(ValueError, match="repeated: \\['a'\\]"):
        load_model_cards(tmp_path)


def test_shipped_cards_parse():
    from conftest import ROOT

    names = {c.name for c in load_model_cards(ROOT / "checkpoints")}
    assert {"inat_bird", "inat_insect", "efficientnet_lite0_imagenet"} <= names


def test_read_coral_labels(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("\n".join(TINY_LABELS) + "\nGenus sp. (Some (odd) name)\n")
    names = read_labels(path, "coral")
    assert names[0] == ("Poecile atricapillus", "Black-capped Chickadee") and names[4] == ("background", "")
    assert names[5] == ("Genus sp.", "Some (odd) name")


def test_find_file_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.bin not found"):
        find_file("nothing.bin", Settings(checkpoint_dir=tmp_path))


def test_a_card_with_a_bird_scope_is_about_birds_unless_it_says_otherwise():
    from explorer.models.cards import parse_model_card

    base = {"name": "m", "architecture": "tiny_cnn", "weights": {"format": "safetensors", "file": "m.safetensors"}}
    base["labels_file"] = "m.txt"
    assert parse_model_card({**base, "taxon_scope": {"class": "Aves"}}).subject == "bird"
    assert parse_model_card({**base, "taxon_scope": {"class": "Insecta"}}).subject == "insect"
    assert parse_model_card({**base, "taxon_scope": {"class": "Aves"}, "subject": "owl"}).subject == "owl"
    assert parse_model_card(base).subject == "organism"
