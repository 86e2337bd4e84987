"""`explorer-evaluate` on a user's own photos, run as a user runs it (the console script in a subprocess): labels as
folder names in several spellings, matched and counted; labels that match nothing refused before any table is
written; every console script answering a mistake with one line and exit status 2."""

import importlib
import importlib.util
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, write_tiny_checkpoint
from PIL import Image

from explorer.diagnose.schema import load_table

FOLDERS = {  # folder name as a user's data has it -> the tiny model's class index (-1: not a class)
    "Black-capped_Chickadee": 0,  # English name, underscores
    "poecile_gambeli": 1,  # scientific name, lower case, underscores
    "00003_Animalia_Chordata_Aves_Passeriformes_Paridae_Parus_major": 2,  # iNat 2021 folder name
    "004.Burrowing_Owl": 3,  # CUB-style number
    "Horned_Puffin": -1,  # a real species the model has no class for
}


def _photos(root, folders, per_folder=3):
    rng = np.random.default_rng(0)
    for folder in folders:
        for i in range(per_folder):
            (root / folder).mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / folder / f"{i}.jpg")
    return root


def _evaluate(*args, cwd):
    return subprocess.run(["explorer-evaluate", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.slow
def test_class_folders_in_five_spellings_give_the_table_an_independent_count_gives(tmp_path):
    write_tiny_checkpoint(tmp_path / "ckpt")
    photos = _photos(tmp_path / "my photos", FOLDERS)
    out = tmp_path / "eval" / "tiny.parquet"
    run = _evaluate(
        "--model", "tiny", "--images", photos, "--out", out, "--checkpoint-dir", tmp_path / "ckpt", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "15 photos from my photos (class folders: the label is the folder's name)"
    assert lines[1] == (
        "15 photos, 5 labels: 1 by scientific name, 1 by iNat 2021 name, 2 by common name, 1 not in the model, "
        "0 unmatched"
    )
    assert lines[2:4] == [
        "1 species the model has no class for (kept, as out of vocabulary), 3 photos:",
        "  'Horned_Puffin' (3 photos): Horned Puffin = Fratercula corniculata",
    ]
    table = load_table(out)
    folders = [p.parent.name for p in map(Path, table["path"])]  # outside the data root: absolute paths
    by_folder = dict(zip(folders, table["true_class_index"]))
    assert by_folder == FOLDERS
    assert table.loc[table["true_class_index"] == -1, "true_name"].unique().tolist() == ["Fratercula corniculata"]

    # an independent count: the same weights through the Python API, one photo at a time
    from explorer.models.cards import load_model_card
    from explorer.models.classifier import load_classifier
    from explorer.settings import Settings

    classifier = load_classifier(load_model_card(tmp_path / "ckpt" / "tiny.json"), Settings(checkpoint_dir=tmp_path))
    right = 0
    for path, truth in zip(table["path"], table["true_class_index"]):
        image = Image.open(path).convert("RGB")
        predicted = int(classifier.predict_probs(classifier.preprocess(image)).argmax())
        right += int(truth >= 0 and predicted == truth)
    assert int(table["correct_1"].sum()) == right
    assert lines[-1] == (
        f"15 photos; 3 of species the model has no class for; 12 of species it knows: top-1 {right / 12:.1%}, "
        f"top-5 {table.loc[table['in_vocab'], 'correct_k'].mean():.1%}; "
        f"{int((table['label_issue_score'] >= 0.5).sum())} labels look wrong (label_issue_score >= 0.5; Diagnose "
        f"lists them) -> {out}"
    )


@pytest.mark.slow
def test_labels_that_match_nothing_are_refused_before_any_table_is_written(tmp_path):
    write_tiny_checkpoint(tmp_path / "ckpt")
    photos = _photos(tmp_path / "val", ["class_a", "class_b", "Parus_major"], per_folder=1)
    out = tmp_path / "tiny.parquet"
    run = _evaluate(
        "--model", "tiny", "--images", photos, "--out", out, "--checkpoint-dir", tmp_path / "ckpt", cwd=tmp_path
    )
    assert run.returncode == 2 and not out.exists()
    assert run.stdout.splitlines()[1] == "3 photos, 3 labels: 1 by scientific name, 2 unmatched"
    assert "Traceback" not in run.stderr  # above the answer: the log of the model's loading
    answer = run.stderr.splitlines()[-1]
    assert answer.startswith("explorer-evaluate: error: 2 of 3 labels match no class of the model")


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--model", "tiny", "--images", "no such folder", "--out", "t.parquet"],
            "no such folder: no such folder or file",
        ),
        (["--model", "nope", "--images", "val", "--out", "t.parquet"], "unknown model 'nope'; cards: ['tiny']"),
        (
            ["--model", "tiny", "--images", "val", "--name", "a", "--name", "b", "--out", "t.parquet"],
            "--name given 2 times for 1 --images; give one per --images",
        ),
        (
            ["--model", "tiny", "--images", "val", "--label-column", "species", "--out", "t.parquet"],
            "val is a folder: --path-column and --label-column are for a table",
        ),
    ],
)
def test_evaluate_answers_a_mistake_with_one_line(tmp_path, argv, message):
    write_tiny_checkpoint(tmp_path / "ckpt")
    _photos(tmp_path / "val", ["Parus_major"], per_folder=1)
    run = _evaluate(*argv, "--no-shipped", "--checkpoint-dir", tmp_path / "ckpt", cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr == f"explorer-evaluate: error: {message}\n"


def test_every_console_script_answers_mistakes_in_one_line():
    """Each entry point of [project.scripts] (and app.py) is wrapped by tools.cli.one_line_errors."""
    from explorer.tools.cli import one_line_errors

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    wrapped_code = one_line_errors(lambda argv=None: None).__code__
    for name, target in scripts.items():
        module, function = target.split(":")
        entry = getattr(importlib.import_module(module), function)
        assert entry.__code__ is wrapped_code and hasattr(entry, "__wrapped__"), name
    spec = importlib.util.spec_from_file_location("app", ROOT / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    assert app.main.__code__ is wrapped_code


def test_one_line_errors_keeps_other_exceptions_and_the_traceback_on_request(monkeypatch, capsys):
    from explorer.tools.cli import one_line_errors

    @one_line_errors
    def main(argv=None):
        raise ValueError("the folder\n  has no photos")

    with pytest.raises(SystemExit) as stopped:
        main([])
    assert stopped.value.code == 2
    assert capsys.readouterr().err == "explorer-test-evaluate-your-photos: error: the folder has no photos\n"
    monkeypatch.setenv("EXPLORER_TRACEBACK", "1")
    with pytest.raises(ValueError, match="the folder"):
        main([])

    @one_line_errors
    def buggy(argv=None):
        raise KeyError("a bug, not a mistake")

    with pytest.raises(KeyError):
        buggy([])


@pytest.mark.slow
def test_the_same_photos_in_two_layouts_compare_on_all_of_them(tmp_path):
    """Class folders, and the same files copied under other names and listed in a CSV with its own column names:
    two tables whose photo ids differ everywhere, compared on every photo through the files' contents."""
    import shutil

    import pandas as pd

    from explorer.diagnose.metrics import compare_models

    write_tiny_checkpoint(tmp_path / "ckpt")
    photos = _photos(tmp_path / "folders", FOLDERS)
    (tmp_path / "flat").mkdir()
    rows = []
    for i, path in enumerate(sorted(photos.rglob("*.jpg"))):
        shutil.copy(path, tmp_path / "flat" / f"img{i:03d}.jpg")
        rows.append({"file": f"flat/img{i:03d}.jpg", "species": path.parent.name})
    pd.DataFrame(rows).to_csv(tmp_path / "list.csv", index=False)
    common = ["--model", "tiny", "--checkpoint-dir", tmp_path / "ckpt"]
    first = _evaluate(*common, "--images", photos, "--out", "a.parquet", cwd=tmp_path)
    listed = ["--images", "list.csv", "--path-column", "file", "--label-column", "species"]
    second = _evaluate(*common, *listed, "--out", "b.parquet", cwd=tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert second.stdout.splitlines()[0] == "15 photos from list (table: paths in 'file', labels in 'species')"
    a, b = load_table(tmp_path / "a.parquet"), load_table(tmp_path / "b.parquet")
    assert not set(a["photo_id"]) & set(b["photo_id"])
    compared = compare_models(a, b, "family")
    assert (compared.matched_by, compared.compared, compared.not_shared, compared.out_of_vocabulary) == (
        "photo_hash",
        12,
        0,
        3,
    )
    assert (compared.fixed, compared.broke) == (0, 0)  # the same weights on the same photos


@pytest.mark.slow
@pytest.mark.shared_data
def test_your_model_gets_its_own_scope_rule_and_says_a_cat_is_not_a_bird(tmp_path):
    """explorer-scope for a card of the user's (beside the shipped ones), on their own bird photos in class folders
    (real CUB photos) and no shared photo sets (an empty --data-root): the rule is written beside their card, the
    app loads it, and their model answers "out of scope" for the Coral cat and not for a bird."""
    import shutil

    from conftest import CORAL, SHARED

    from explorer.identify.scope_check import rule_path
    from explorer.services.identification import IdentifyRequest, identify_photo
    from explorer.services.resources import load_resources
    from explorer.settings import parse_settings

    write_tiny_checkpoint(tmp_path / "ckpt")
    cub = SHARED / "data" / "cub100" / "images"
    # four species the tiny model has no class for, and a fifth folder the user labelled with one of its classes
    folders = {"Carolina_Wren": "Carolina_Wren", "Blue_Jay": "Blue_Jay", "Cedar_Waxwing": "Cedar_Waxwing"}
    folders |= {"Barn_Swallow": "Barn_Swallow", "Bohemian_Waxwing": "Parus_major"}
    for source, folder in folders.items():
        (tmp_path / "photos" / folder).mkdir(parents=True)
        for path in sorted((cub / source).glob("*.jpg"))[:12]:
            shutil.copy(path, tmp_path / "photos" / folder / path.name)
    (tmp_path / "empty").mkdir()
    command = ["explorer-scope", "--checkpoint-dir", "ckpt", "--only", "tiny", "--images", "photos"]
    done = subprocess.run([*command, "--data-root", "empty"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "60 photos from photos (class folders: the label is the folder's name)"
    assert lines[1] == "60 photos, 5 labels: 1 by scientific name, 4 not in the model, 0 unmatched"
    assert "  in scope: coral-samples 3, photos 60" in lines
    assert any(line.startswith("  out of scope: coral-samples 4, matplotlib ") for line in lines)
    assert rule_path(tmp_path / "ckpt", "tiny").is_file()

    settings = parse_settings(["--checkpoint-dir", str(tmp_path / "ckpt"), "--data-root", str(tmp_path / "empty")])
    resources = load_resources(settings)
    assert "tiny" in resources.scope_rules and "inat_bird" in resources.classifiers  # theirs beside the shipped
    cat = identify_photo(resources, IdentifyRequest(photo=str(CORAL / "cat.bmp"), model="tiny")).result
    assert cat.scope.in_scope is False and cat.rollup.rank is None
    assert "does not look like a bird" in cat.rollup.text
    bird = identify_photo(resources, IdentifyRequest(photo=str(CORAL / "bird.bmp"), model="tiny")).result
    assert bird.scope.in_scope is True


@pytest.mark.slow
def test_all_views_takes_a_card_and_photos_to_everything_the_app_shows(tmp_path):
    """One command: the scope rule beside the card (fitted on these photos and the installed packages' photos), the
    table with its scope columns and embeddings, and the representation report; the app then loads all of them."""
    import json

    from explorer.services.resources import load_resources
    from explorer.settings import parse_settings

    write_tiny_checkpoint(tmp_path / "ckpt")
    _photos(tmp_path / "photos", FOLDERS, per_folder=6)
    run = _evaluate(
        *("--model", "tiny", "--checkpoint-dir", "ckpt", "--images", "photos", "--out", "tables/tiny.parquet"),
        *("--all-views", "--data-root", "empty"),
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    from conftest import HAVE_CORAL

    in_scope = "  in scope: coral-samples 3, photos 30" if HAVE_CORAL else "  in scope: photos 30"
    assert in_scope in run.stdout.splitlines()
    assert run.stdout.splitlines()[-1] == "representation report -> tables/tiny.representation.json"
    table = load_table(tmp_path / "tables" / "tiny.parquet")
    assert {"scope_score", "in_scope", "novelty_score"} <= set(table.columns)
    if HAVE_CORAL:  # every photo measured, the organism located by the Coral ImageNet MobileNetV2
        assert table["subject_locator"].notna().sum() == 30 and table["kept_without_subject"].notna().sum() == 30
        assert set(table["subject_locator"].astype(str)) == {"coral_imagenet_mobilenet_v2"}
        # no share where the locator finds no bird (drawn photos) or the tiny model's map has no mass
        assert 0 < table["off_subject_share"].notna().sum() < 30
        measured = f" of {int(table['off_subject_share'].notna().sum())} measured answers rest on the surroundings ("
        assert any(measured in line for line in run.stdout.splitlines())  # the verdict, in the summary line
    else:
        assert any(line.startswith("no organism-or-surroundings columns: ") for line in run.stdout.splitlines())
    report = json.loads((tmp_path / "tables" / "tiny.representation.json").read_text())
    assert report["weights_sha256"] == table["weights_sha256"].iloc[0] and len(report["map"]["photo_id"]) == 30
    args = ["--checkpoint-dir", str(tmp_path / "ckpt"), "--eval-dir", str(tmp_path / "tables")]
    resources = load_resources(parse_settings([*args, "--data-root", str(tmp_path)]))  # the gate is a shipped model
    assert "tiny" in resources.scope_rules and "tiny" in resources.representations
    assert "tiny" in resources.photo_indexes  # similar photos from the table's embeddings


def test_evaluate_help_names_the_registered_architectures(capsys):
    from explorer.models.registry import list_models
    from explorer.tools.evaluate import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"A model card's architecture is one of: {', '.join(list_models())}" in text
