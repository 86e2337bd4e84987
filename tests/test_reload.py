"""Models and tables found again without a restart: what is new or changed is loaded, what is gone dropped, and
what did not change is kept as it was loaded (the same object, not read again)."""

import os

import pytest
from conftest import write_tiny_checkpoint

from explorer.diagnose.schema import save_table
from explorer.services.reloading import reload_resources
from explorer.services.resources import load_resources
from explorer.settings import Settings


def _touch_later(path):
    """Give a rewritten file a later modification time than the one loaded (same-second writes)."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


def test_a_reload_adds_changes_and_drops_only_what_changed(tmp_path, hand_table):
    cards, tables = tmp_path / "cards", tmp_path / "tables"
    write_tiny_checkpoint(cards, name="tiny")
    tables.mkdir()
    resources = load_resources(Settings(checkpoint_dir=cards, eval_dir=tables))
    tiny = resources.classifiers["tiny"]
    assert resources.tables == {}

    save_table(hand_table, tables / "mine.parquet")
    write_tiny_checkpoint(cards, name="second", seed=3)
    found = reload_resources(resources)
    assert (found.added, found.changed, found.removed) == (("model second", "table mine"), (), ())
    assert resources.classifiers["tiny"] is tiny  # unchanged: not read again
    assert len(resources.tables["mine"]) == 6 and resources.frame("mine").height == 6
    assert found.markdown().startswith("Looked again in ") and "added `model second`, `table mine`." in found.markdown()

    save_table(hand_table.head(2), tables / "mine.parquet")
    _touch_later(tables / "mine.parquet")
    (cards / "second.json").unlink()
    found = reload_resources(resources)
    assert (found.added, found.changed, found.removed) == ((), ("table mine",), ("model second",))
    assert len(resources.tables["mine"]) == 2 and resources.frame("mine").height == 2
    assert sorted(resources.classifiers) == ["tiny"] and resources.classifiers["tiny"] is tiny

    assert reload_resources(resources).markdown().startswith("Nothing new or changed in the card and table folders")

    (tables / "broken.parquet").write_text("not a table")
    (cards / "tiny.json").unlink()
    with pytest.raises(ValueError, match="no usable model in"):
        reload_resources(resources)
    assert list(resources.classifiers) == ["tiny"] and "broken" not in resources.tables  # left as it was


def test_a_table_that_cannot_be_read_is_noted_and_the_others_load(tmp_path, hand_table):
    write_tiny_checkpoint(tmp_path / "cards", name="tiny")
    save_table(hand_table, tmp_path / "tables" / "good.parquet")
    (tmp_path / "tables" / "bad.parquet").write_text("not a table")
    resources = load_resources(Settings(checkpoint_dir=tmp_path / "cards", eval_dir=tmp_path / "tables"))
    assert list(resources.tables) == ["good"]
    assert resources.unavailable["table bad"].startswith(f"{tmp_path / 'tables' / 'bad.parquet'}: ")
