"""The console scripts, run as a user runs them."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, SHARED

from explorer.diagnose.schema import load_table


def test_taxa_from_a_card_or_a_label_file(tmp_path):
    from conftest import ROOT

    from explorer.settings import Settings
    from explorer.tools.train_geo import taxa_from_card

    labels = tmp_path / "labels.txt"
    labels.write_text("Poecile atricapillus (Black-capped Chickadee)\nbackground\nParus major\n")
    assert taxa_from_card(labels, None) == ["Poecile atricapillus", "Parus major"]
    settings = Settings(checkpoint_dir=ROOT / "checkpoints")
    card_taxa = taxa_from_card(ROOT / "checkpoints" / "cub100_effnet_head.json", settings)
    assert len(card_taxa) == 100 and "Passerina cyanea" in card_taxa


@pytest.mark.shared_data
@pytest.mark.slow
def test_cli_builds_table_from_real_photos(tmp_path):
    from explorer.tools.evaluate import main

    manifest = pd.read_csv(SHARED / "data" / "birds525-valid" / "manifest.csv").head(12)
    manifest["path"] = [str(SHARED / "data" / "birds525-valid" / p) for p in manifest["path"]]
    manifest.loc[len(manifest)] = {**manifest.iloc[0].to_dict(), "path": str(tmp_path / "missing.jpg")}
    (tmp_path / "m.csv").write_text(manifest.to_csv(index=False))
    out = tmp_path / "eval.parquet"
    main(
        [
            "--model",
            "inat_bird",
            "--images",
            str(tmp_path / "m.csv"),
            "--out",
            str(out),
            "--workers",
            "0",
            "--batch-size",
            "8",
        ]
    )
    table = load_table(out)
    assert len(table) == 13 and table["model"].eq("inat_bird").all()
    assert table["status"].iloc[-1].startswith("unreadable") and not table["correct_1"].iloc[-1]
    assert table["path"].iloc[0].startswith("birds525-valid/")  # relative to the data root
    assert table["correct_1"].iloc[:12].mean() > 0.5  # the real model on real photos
    from explorer.represent.taxonomy_fit import load_representation
    from explorer.tools.represent import main as represent

    represent(["--eval-dir", str(tmp_path)])  # beside the table: its embeddings -> its representation report
    report = load_representation(tmp_path / "eval.representation.json")
    assert report["model"] == "inat_bird" and report["sources"] == {"m": 12}  # the manifest names the set
    assert [f.rank for f in report["ranks"]] == ["order", "family", "genus", "species"]
    assert all(f.photos == 12 for f in report["ranks"]) and len(report["map"]["photo_id"]) == 12


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]))
def test_every_console_script_is_installed_and_runs_from_any_folder(script, tmp_path):
    """The install puts each tool on the path, and each also runs as python -m from outside the checkout."""
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"][script]
    module = target.split(":")[0]
    installed = shutil.which(script) or str(Path(sys.executable).parent / script)
    for command in ([installed, "--help"], [sys.executable, "-m", module, "--help"]):
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.startswith("usage:")
        if script not in (
            "explorer-manifest",
            "explorer-synonyms",
            "explorer-represent",  # reads stored embeddings, loads no model
            "explorer-results",  # reads the shipped tables and reports, loads no model
        ):  # every tool that loads models takes the model flags
            assert "--checkpoint-dir" in done.stdout and "--data-root" in done.stdout


@pytest.mark.shared_data
def test_scope_photo_sets_say_what_each_photo_shows():
    from explorer.settings import parse_settings
    from explorer.tools.scope import photo_sets

    photos = photo_sets(parse_settings([]))
    counts = photos.groupby("set")["group"].agg(lambda g: sorted(set(g))).to_dict()
    assert counts["birds525-valid"] == ["bird"] and counts["cub100-test"] == ["bird"]
    assert counts["leeds-butterflies"] == ["insect"] and counts["skimage"] == ["other"]
    assert counts["coral-samples"] == ["bird", "insect", "other"]
    assert (photos["group"] == "bird").sum() == 1110 + 2999 + 3 and (photos["group"] == "insect").sum() == 147
    assert photos["photo_id"].is_unique
