"""Labelled photos in the layouts people have (class folders, tables, COCO / iNat 2021 JSON), and their labels
matched to a model's classes or refused: exact answers on hand-built layouts and classes."""

import json

import pandas as pd
import pytest
from PIL import Image

from explorer.models.class_labels import ClassLabel
from explorer.models.label_matching import (
    COMMON,
    EXACT,
    INAT21,
    INDEX,
    NOT_IN_MODEL,
    SCIENTIFIC,
    SYNONYM,
    UNMATCHED,
    candidate_names,
    match_labels,
)
from explorer.photos.labelled import read_labelled
from explorer.taxa.taxonomy import Lineage

CLASSES = [
    ClassLabel(0, "Calypte anna", "Anna's Hummingbird", Lineage(ranks={})),
    ClassLabel(1, "Anas strepera", "Gadwall", Lineage(ranks={})),
    ClassLabel(2, "Selasphorus rufus", "Rufous Hummingbird", Lineage(ranks={})),
    ClassLabel(3, "background", "", Lineage(ranks={}), is_background=True),
]
INAT21_RUFUS = "00042_Animalia_Chordata_Aves_Apodiformes_Trochilidae_Selasphorus_rufus"


def _photo(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)
    return path


def test_every_spelling_of_a_class_is_matched_and_said_how():
    labels = {
        "Calypte anna": EXACT,
        "Calypte anna (Anna's Hummingbird)": EXACT,
        "calypte_anna": SCIENTIFIC,
        "CALYPTE ANNA": SCIENTIFIC,
        "Mareca strepera": SYNONYM,
        INAT21_RUFUS: INAT21,
        "Rufous_Hummingbird": COMMON,
        "001.Anna_Hummingbird": COMMON,  # CUB: a number, underscores, no possessive
        "GADWALL": COMMON,
        "Horned_Puffin": NOT_IN_MODEL,  # an English name of a species the model has no class for
        "Fratercula corniculata": NOT_IN_MODEL,
        "Hummingbird_sp": UNMATCHED,
    }
    photos = [label for label in labels for _ in range(2)] + ["Calypte anna"]
    report = match_labels(photos, CLASSES)
    assert {label: m.how for label, m in report.matches.items()} == labels
    index = {label: m.class_index for label, m in report.matches.items()}
    assert [index["calypte_anna"], index["Mareca strepera"], index[INAT21_RUFUS], index["001.Anna_Hummingbird"]] == [
        0,
        1,
        2,
        0,
    ]
    assert report.matches["Horned_Puffin"].name == "Fratercula corniculata" and index["Horned_Puffin"] == -1
    assert report.matches["Mareca strepera"].detail.startswith("Anas strepera = Mareca strepera")
    assert report.summary() == (
        "25 photos, 12 labels: 2 exactly, 2 by scientific name, 1 through synonyms, 1 by iNat 2021 name, "
        "3 by common name, 2 not in the model, 1 unmatched"
    )
    assert report.details() == [
        "2 species the model has no class for (kept, as out of vocabulary), 4 photos:",
        "  'Horned_Puffin' (2 photos): Horned Puffin = Fratercula corniculata",
        "  'Fratercula corniculata' (2 photos): the species Fratercula corniculata",
        "1 labels that match no class and no species we know (kept, as out of vocabulary), 2 photos:",
        "  'Hummingbird_sp' (2 photos): nearest classes: Selasphorus rufus (Rufous Hummingbird); Calypte anna "
        "(Anna's Hummingbird)",
    ]
    assert report.refusal == ""
    assert {"Calypte anna", "Selasphorus rufus", "Fratercula corniculata", "Anna Hummingbird"} <= candidate_names(
        list(labels)
    )


def test_whole_numbers_are_class_indices_when_every_label_is_one():
    report = match_labels(["0", "0", "2", "3", "7"], CLASSES)
    assert {label: (m.how, m.class_index) for label, m in report.matches.items()} == {
        "0": (INDEX, 0),
        "2": (INDEX, 2),
        "3": (UNMATCHED, -1),  # the background is not a species
        "7": (UNMATCHED, -1),
    }
    assert report.matches["7"].detail == "no species class 7 (the model's classes are 0 .. 3)"
    assert report.summary() == "5 photos, 4 labels: 2 by class index, 2 unmatched"
    assert report.refusal == ""  # half, not most


def test_most_labels_matching_nothing_is_refused_with_the_nearest_names():
    report = match_labels(["Rufus hummingbrd", "Anas_sp", "Gadwall", "zzz"], CLASSES)
    assert report.count(UNMATCHED) == 3
    nearest = "nearest classes: Selasphorus rufus (Rufous Hummingbird); Calypte anna (Anna's Hummingbird)"
    assert report.matches["Rufus hummingbrd"].detail == nearest
    assert report.refusal.startswith(
        f"3 of 4 labels match no class of the model and no species we know (e.g. 'Rufus hummingbrd': {nearest}); "
        "nothing was evaluated."
    )


def test_class_folders_keep_the_folder_name_as_written(tmp_path):
    root = tmp_path / "val"
    _photo(root / "Rufous_Hummingbird" / "a.jpg")
    _photo(root / "Rufous_Hummingbird" / "deeper" / "b.png")
    _photo(root / "001.Anna_Hummingbird" / "c.jpg")
    _photo(root / "loose.jpg")
    (root / "Rufous_Hummingbird" / "notes.txt").write_text("not a photo")
    photos = read_labelled(root)
    assert photos.frame[["path", "label", "source"]].values.tolist() == [
        ["001.Anna_Hummingbird/c.jpg", "001.Anna_Hummingbird", "val"],
        ["Rufous_Hummingbird/a.jpg", "Rufous_Hummingbird", "val"],
        ["Rufous_Hummingbird/deeper/b.png", "Rufous_Hummingbird", "val"],
    ]
    assert photos.describe() == (
        "3 photos from val (class folders: the label is the folder's name); 1 photos outside any class folder"
    )
    assert read_labelled(root, name="my-birds").frame["source"].unique().tolist() == ["my-birds"]
    with pytest.raises(ValueError, match="no photos in class folders .* 1 photos lie loose"):
        read_labelled(_photo(tmp_path / "flat" / "x.jpg").parent)


def test_a_table_with_its_own_column_names(tmp_path):
    _photo(tmp_path / "imgs" / "1.jpg")
    _photo(tmp_path / "imgs" / "2.jpg")
    table = pd.DataFrame(
        {"img_file": ["imgs/1.jpg", "imgs/2.jpg", "imgs/3.jpg"], "taxon_label": ["1", "2", ""], "latitude": [1, 2, 3]}
    )
    table.to_csv(tmp_path / "photos.csv", index=False)
    with pytest.raises(ValueError, match=r"no path column \(looked for path, file_name.*--path-column"):
        read_labelled(tmp_path / "photos.csv")
    with pytest.raises(ValueError, match="no column 'labels' \\(--label-column\\); its columns are"):
        read_labelled(tmp_path / "photos.csv", path_column="img_file", label_column="labels")
    photos = read_labelled(tmp_path / "photos.csv", path_column="img_file", label_column="taxon_label")
    assert photos.frame[["path", "label", "lat"]].values.tolist() == [
        ["imgs/1.jpg", "1", "1"],
        ["imgs/2.jpg", "2", "2"],
    ]
    assert photos.left_out == ("1 rows with an empty label",)
    table.to_parquet(tmp_path / "photos.parquet")
    again = read_labelled(tmp_path / "photos.parquet", path_column="img_file", label_column="taxon_label")
    assert again.frame["label"].tolist() == ["1", "2"] and again.frame["source"].iloc[0] == "photos"


def test_a_coco_or_inat_json_with_places(tmp_path):
    for name in ("a", "b", "c", "d"):
        _photo(tmp_path / "train_mini" / f"{name}.jpg")
    data = {
        "images": [
            {
                "id": 1,
                "file_name": "train_mini/a.jpg",
                "latitude": 37.7,
                "longitude": -122.4,
                "date": "2019-05-03 10:00",
            },
            {"id": 2, "file_name": "train_mini/b.jpg"},
            {"id": 3, "file_name": "train_mini/c.jpg"},
            {"id": 4, "file_name": "train_mini/d.jpg"},
        ],
        "annotations": [
            {"image_id": 1, "category_id": 7},
            {"image_id": 2, "category_id": 8},
            {"image_id": 4, "category_id": 7},
            {"image_id": 4, "category_id": 8},
        ],
        "categories": [{"id": 7, "name": "Calypte anna"}, {"id": 8, "name": INAT21_RUFUS}],
    }
    (tmp_path / "annotations.json").write_text(json.dumps(data))
    photos = read_labelled(tmp_path / "annotations.json")
    frame = photos.frame
    assert frame[["path", "label"]].values.tolist() == [
        ["train_mini/a.jpg", "Calypte anna"],
        ["train_mini/b.jpg", INAT21_RUFUS],
    ]
    assert (frame["lat"].iloc[0], frame["lon"].iloc[0], frame["date"].iloc[0]) == (37.7, -122.4, "2019-05-03")
    assert photos.left_out == ("1 images without an annotation", "1 images of several categories")
    assert frame["source"].iloc[0] == tmp_path.name  # annotations.json is named by its folder
    (tmp_path / "bad.json").write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="needs 'images', 'annotations' and 'categories'; it lacks"):
        read_labelled(tmp_path / "bad.json")


def test_missing_files_are_said_where_they_were_looked_for(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder or file"):
        read_labelled(tmp_path / "nowhere")
    pd.DataFrame({"path": ["x/1.jpg"], "label": ["Calypte anna"]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(
        FileNotFoundError, match=r"none of its 1 photo files was found, e.g. 'x/1.jpg' \(paths are read"
    ):
        read_labelled(tmp_path / "m.csv")


def _folders_matched(folder, model):
    from explorer.models.label_matching import candidate_names
    from explorer.services.resources import load_classifier_for
    from explorer.settings import parse_settings
    from explorer.taxa.synonymy import load_synonyms

    photos = read_labelled(folder).frame
    classifier, taxonomy = load_classifier_for(parse_settings([]), model, sorted(candidate_names(photos["label"])))
    report = match_labels(photos["label"].tolist(), classifier.labels, taxonomy)
    synonyms = load_synonyms()
    index = {synonyms.canonical(c.scientific_name): c.class_index for c in classifier.labels}
    return report, lambda name: index.get(synonyms.canonical(name), -1)


@pytest.mark.shared_data
@pytest.mark.slow
def test_the_shared_photo_sets_class_folders_match_as_their_curated_names_say():
    """CUB's and BIRDS 525's own folder names (English names, one set in capitals and with typos) against the Coral
    bird model: the figures of the docs' 'Your labelled photos', and no class matched that the sets' curated
    scientific names contradict."""
    from conftest import SHARED

    data = SHARED / "data"
    cub = pd.read_csv(data / "cub100" / "classes_taxonomy.csv")
    cub_truth = dict(zip(cub["cub_name"], cub["scientificName"]))
    report, class_of = _folders_matched(data / "cub100" / "images", "inat_bird")
    assert report.summary() == "5902 photos, 100 labels: 83 by common name, 11 not in the model, 6 unmatched"
    assert all(m.class_index == class_of(cub_truth[label]) for label, m in report.matches.items() if m.matched)
    assert report.matches["Anna_Hummingbird"].name == "Calypte anna"
    assert report.matches["Geococcyx"].detail == "nearest classes: Geococcyx velox (Lesser Roadrunner)"

    birds = pd.read_csv(data / "birds525-valid" / "manifest.csv")
    birds_truth = dict(zip(birds["path"].str.split("/").str[1], birds["scientific_name"]))
    report, class_of = _folders_matched(data / "birds525-valid" / "valid", "inat_bird")
    assert report.summary() == (
        "1110 photos, 222 labels: 1 by scientific name, 179 by common name, 1 not in the model, 41 unmatched"
    )
    assert all(m.class_index == class_of(birds_truth[label]) for label, m in report.matches.items() if m.matched)
    assert report.matches["BROWN CREPPER"].detail.startswith("nearest classes: Certhia americana (Brown Creeper)")
    assert report.refusal == ""

    report, _ = _folders_matched(data / "cub100" / "images", "cub100_effnet_head")
    assert report.summary() == "5902 photos, 100 labels: 100 by common name, 0 unmatched"


def test_class_names_written_as_folder_names_get_their_species(tmp_path):
    """A plain label file of a model trained on class folders: English names and CUB numbers resolve to species
    (with their lineage, through the iNat taxonomy); a Latin binomial stays and gets its English name; anything
    else stays as written."""
    from conftest import write_tiny_checkpoint

    from explorer.models.cards import load_model_card, read_card_labels
    from explorer.models.classifier import load_classifier
    from explorer.settings import Settings
    from explorer.taxa.inat21 import class_name_as_taxon
    from explorer.taxa.taxonomy import load_taxonomy

    assert class_name_as_taxon("Blue_Jay") == ("Cyanocitta cristata", "Blue Jay")
    assert class_name_as_taxon("001.Black_footed_Albatross") == ("Phoebastria nigripes", "Black-footed Albatross")
    assert class_name_as_taxon("Parus_major") == ("Parus major", "Great Tit")
    assert class_name_as_taxon("Not_a_bird_name") == ("Not_a_bird_name", "")
    labels = ["Blue_Jay", "001.Black_footed_Albatross", "Parus major", "Not_a_bird_name", "background"]
    card = write_tiny_checkpoint(tmp_path, labels=labels, labels_format="plain")
    names = read_card_labels(load_model_card(card), Settings(checkpoint_dir=tmp_path))
    assert [n for n, _ in names] == [
        "Cyanocitta cristata",
        "Phoebastria nigripes",
        "Parus major",
        "Not_a_bird_name",
        "background",
    ]
    taxonomy = load_taxonomy([n for n, _ in names])
    classifier = load_classifier(load_model_card(card), Settings(checkpoint_dir=tmp_path), taxonomy)
    assert classifier.labels[0].lineage.at("family") == "Corvidae" and classifier.labels[0].common_name == "Blue Jay"
    report = match_labels(["Blue_Jay", "Cyanocitta_cristata", "Not_a_bird_name"], classifier.labels, taxonomy)
    assert [m.class_index for m in report.matches.values()] == [0, 0, 3]


def test_a_table_beside_the_folder_of_its_photos_finds_them_there(tmp_path):
    """labels.csv naming bare files that sit in pics/ beside it (a stranger's first try): found, and said so."""
    (tmp_path / "pics").mkdir()
    (tmp_path / "other").mkdir()
    for name in ("IMG_1.jpg", "IMG_2.jpg", "IMG_3.jpg"):
        _photo(tmp_path / "pics" / name)
    pd.DataFrame(
        {"file": ["IMG_1.jpg", "IMG_2.jpg", "IMG_3.jpg", "IMG_4.jpg"], "species": ["a", "b", "c", "d"]}
    ).to_csv(tmp_path / "labels.csv", index=False)
    photos = read_labelled(tmp_path / "labels.csv")
    assert photos.layout == "table: paths in 'file', labels in 'species'; photo files found in pics/ beside it"
    assert photos.frame["abs_path"].tolist()[:3] == [
        str((tmp_path / "pics" / f"IMG_{i}.jpg").resolve()) for i in (1, 2, 3)
    ]
    assert photos.left_out == ("1 photo files not found (kept, unreadable)",)
    _photo(tmp_path / "other" / "IMG_1.jpg")  # two folders hold the first photo: neither is guessed
    with pytest.raises(FileNotFoundError, match="none of its 4 photo files was found"):
        read_labelled(tmp_path / "labels.csv")
