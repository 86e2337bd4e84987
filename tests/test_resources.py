"""Start-up: every usable card loaded once; a missing file makes a model unavailable, with the reason."""

import pytest
from conftest import write_tiny_checkpoint

from explorer.services.resources import load_resources
from explorer.settings import Settings


def test_resources_skip_unavailable_models(tmp_path):
    write_tiny_checkpoint(tmp_path, name="present")
    gone = write_tiny_checkpoint(tmp_path, name="absent")
    (tmp_path / "absent.safetensors").unlink()
    resources = load_resources(Settings(checkpoint_dir=tmp_path))
    assert list(resources.classifiers) == ["present"] and list(resources.unavailable) == ["absent"]
    assert "absent.safetensors not found" in resources.unavailable["absent"]
    with pytest.raises(ValueError, match=r"unavailable model 'absent' \(absent.safetensors not found"):
        resources.get("absent")
    assert resources.default_model == "present" and resources.get(None).name == "present"
    assert gone.is_file()  # the card itself is still there: the model is unavailable, not forgotten


def test_a_card_that_does_not_fit_makes_only_that_model_unavailable(tmp_path):
    """A label file one line short of the outputs, and a card that is not valid JSON: each model is unavailable
    with its reason, and the app serves the one that fits."""
    write_tiny_checkpoint(tmp_path, name="fits")
    write_tiny_checkpoint(tmp_path, name="short")
    labels = tmp_path / "short_labels.txt"
    labels.write_text("\n".join(labels.read_text().splitlines()[:-1]) + "\n")
    (tmp_path / "broken.json").write_text('{"name": "broken", ')
    resources = load_resources(Settings(checkpoint_dir=tmp_path))
    assert list(resources.classifiers) == ["fits"]
    assert sorted(resources.unavailable) == ["broken", "short"]
    assert resources.unavailable["short"] == (
        "model card 'short': the label file short_labels.txt has 4 classes but the weights' classifier.weight has 5 "
        "outputs"
    )
    assert "broken.json" in resources.unavailable["broken"]
    for name in ("fits", "short"):
        (tmp_path / f"{name}.json").unlink()
    with pytest.raises(ValueError, match=r"no usable model in .*: broken: .*broken.json"):
        load_resources(Settings(checkpoint_dir=tmp_path))


def test_the_folders_given_add_to_the_shipped_ones():
    from pathlib import Path

    from explorer.settings import SHIPPED_CHECKPOINTS, SHIPPED_TABLES, parse_settings

    plain = parse_settings([])
    assert (plain.card_dirs, plain.eval_dirs) == ((SHIPPED_CHECKPOINTS,), (SHIPPED_TABLES,))
    mine = parse_settings(["--checkpoint-dir", "a", "--checkpoint-dir", "b", "--eval-dir", "e"])
    assert mine.card_dirs == (SHIPPED_CHECKPOINTS, Path("a"), Path("b")) and mine.checkpoint_dir == Path("b")
    assert mine.eval_dirs == (SHIPPED_TABLES, Path("e"))
    alone = parse_settings(["--no-shipped", "--checkpoint-dir", "a"])
    assert (alone.card_dirs, alone.eval_dirs) == ((Path("a"),), ())
    assert alone.resolved_cache_dir == Path("a") / ".cache"
    assert mine.resolved_cache_dir == SHIPPED_CHECKPOINTS / ".cache"  # converted weights are not made twice
    with pytest.raises(ValueError, match="--no-shipped leaves no --checkpoint-dir: give at least one"):
        parse_settings(["--no-shipped"])


def test_a_later_folder_wins_a_name_clash_and_the_models_tab_says_so(tmp_path):
    from explorer.identify.scope_check import rule_path
    from explorer.services.overview import models_markdown

    first, second = tmp_path / "first", tmp_path / "second"
    write_tiny_checkpoint(first, name="tiny", seed=0)
    write_tiny_checkpoint(first, name="only_first", seed=2)
    write_tiny_checkpoint(second, name="tiny", seed=1)
    rule_path(second, "tiny").parent.mkdir(parents=True)
    rule_path(second, "tiny").write_text("not a rule")  # read from the card's own folder, and refused alone
    resources = load_resources(Settings(checkpoint_dir=second, base_checkpoint_dirs=(first,)))
    assert sorted(resources.classifiers) == ["only_first", "tiny"]
    assert resources.classifiers["tiny"].card.card_path == second / "tiny.json"
    assert list(resources.unavailable) == [f"tiny ({first})", "tiny: scope rule"]
    assert resources.unavailable[f"tiny ({first})"] == f"replaced by the card of the same name in {second}"
    assert resources.unavailable["tiny: scope rule"].startswith(f"{second / 'scope' / 'tiny.json'}: not a scope rule")
    assert resources.scope_rules == {}
    assert f"`tiny ({first})`: replaced by the card of the same name in {second}" in models_markdown(resources)
    with pytest.raises(FileNotFoundError, match="no such folder of model cards"):
        load_resources(Settings(checkpoint_dir=tmp_path / "missing", base_checkpoint_dirs=(first,)))


def test_tables_of_several_folders_a_later_one_winning(tmp_path, hand_table):
    from explorer.diagnose.schema import save_table
    from explorer.services.resources import load_eval_tables_from

    save_table(hand_table, tmp_path / "a" / "t.parquet")
    save_table(hand_table.head(2), tmp_path / "b" / "t.parquet")
    save_table(hand_table.head(3), tmp_path / "b" / "u.parquet")
    tables, where = load_eval_tables_from([tmp_path / "a", tmp_path / "b", tmp_path / "gone"])
    assert {n: len(t) for n, t in tables.items()} == {"t": 2, "u": 3}
    assert where == {"t": tmp_path / "b", "u": tmp_path / "b"}
