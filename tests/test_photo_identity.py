"""A photo's identity by content: the same bytes are the same photo in any folder, so tables made from the same
photos in different layouts compare on all of them; the shipped tables carry the hashes of their files."""

import hashlib

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, SHARED

from explorer.diagnose.schema import PHOTO_HASH, load_table
from explorer.photos.identity import content_hash
from explorer.tools.photo_hashes import main as photo_hashes
from explorer.tools.photo_hashes import with_photo_hashes


def test_the_same_bytes_are_the_same_photo_anywhere(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.jpg").write_bytes(b"same bytes")
    (tmp_path / "b" / "renamed.jpg").write_bytes(b"same bytes")
    (tmp_path / "b" / "y.jpg").write_bytes(b"other bytes")
    assert content_hash(tmp_path / "a" / "x.jpg") == hashlib.sha256(b"same bytes").hexdigest()[:24]
    assert content_hash(tmp_path / "a" / "x.jpg") == content_hash(tmp_path / "b" / "renamed.jpg")
    assert content_hash(tmp_path / "b" / "y.jpg") != content_hash(tmp_path / "a" / "x.jpg")
    assert content_hash(tmp_path / "gone.jpg") is None


def test_old_tables_get_the_column_and_nothing_else_changes(tmp_path):
    (tmp_path / "data" / "set").mkdir(parents=True)
    (tmp_path / "data" / "set" / "1.jpg").write_bytes(b"one")
    table = pd.DataFrame(
        {"photo_id": ["set:1.jpg", "set:2.jpg"], "path": ["set/1.jpg", "set/2.jpg"], "status": ["ok", "unreadable"]}
    )
    out = with_photo_hashes(table, tmp_path / "data")
    assert out.columns.tolist() == ["photo_id", PHOTO_HASH, "path", "status"]
    assert out[PHOTO_HASH].iloc[0] == hashlib.sha256(b"one").hexdigest()[:24] and pd.isna(out[PHOTO_HASH].iloc[1])
    table.loc[1, "status"] = "ok"  # a readable photo whose file is gone: the table is left as it was
    with pytest.raises(ValueError, match="1 readable photos of the table are not under"):
        with_photo_hashes(table, tmp_path / "data")
    with pytest.raises(SystemExit):
        photo_hashes(["--eval-dir", str(tmp_path / "none"), "--data-root", str(tmp_path / "data")])


@pytest.mark.shared_data
def test_the_shipped_tables_hash_their_files():
    rng = np.random.default_rng(0)
    for path in sorted((ROOT / "assets" / "eval").glob("*.parquet")):
        table = load_table(path)
        assert table[PHOTO_HASH].notna().all(), path.name
        for row in rng.choice(len(table), 10, replace=False):
            file = SHARED / "data" / str(table["path"].iloc[row])
            assert table[PHOTO_HASH].iloc[row] == hashlib.sha256(file.read_bytes()).hexdigest()[:24], path.name
