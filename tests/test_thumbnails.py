"""Gallery thumbnails: small JPEG files written once per photo, grey tiles keeping positions for missing photos."""

from types import SimpleNamespace

import pandas as pd
from PIL import Image

from explorer.photos.thumbnails import THUMB_SIDE, thumbnails


def resources_at(root):
    return SimpleNamespace(
        settings=SimpleNamespace(data_root=root, max_upload_bytes=10_000_000, max_image_pixels=10**8)
    )


def test_thumbnails_are_files_written_once_and_missing_photos_keep_their_place(tmp_path):
    Image.new("RGB", (640, 320), (10, 200, 30)).save(tmp_path / "bird.png")
    rows = pd.DataFrame({"path": ["bird.png", "gone.png"], "true_name": ["A a", "B b"], "pred_name": ["C c", "D d"]})
    shown = thumbnails(resources_at(tmp_path), rows)
    assert [caption for _, caption in shown] == ["A a → C c", "(photo missing) B b → D d"]
    with Image.open(shown[0][0]) as thumb:
        assert thumb.format == "JPEG" and thumb.size == (THUMB_SIDE, THUMB_SIDE // 2)
        assert abs(thumb.getpixel((5, 5))[1] - 200) < 8  # the photo's green, shrunk
    with Image.open(shown[1][0]) as tile:
        assert tile.getpixel((0, 0)) == (200, 200, 200)
    written = [(path, (tmp_path / path).stat().st_mtime_ns) for path, _ in shown]
    again = thumbnails(resources_at(tmp_path), rows)
    assert [(path, (tmp_path / path).stat().st_mtime_ns) for path, _ in again] == written  # not written again


def test_no_photo_on_this_machine_gives_an_empty_gallery(tmp_path):
    rows = pd.DataFrame({"path": ["gone.png"], "true_name": ["A a"], "pred_name": ["C c"]})
    assert thumbnails(resources_at(tmp_path), rows) == []
