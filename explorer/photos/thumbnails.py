"""The galleries' thumbnails: each labelled photo shrunk once and written once as a small JPEG, so a gallery sends
files as they are (PIL images would be encoded again on every filter change)."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from PIL import Image

from explorer.photos.images import load_image

THUMB_SIDE = 160
THUMBNAILS_KEPT = 256  # about 20 MB of 160-px thumbnails in memory; the files stay on disk
GALLERY_SIZE = 24
FOLDER = Path(tempfile.gettempdir()) / f"explorer-thumbnails-{os.getpid()}"


def photo_path(root: Path | None, path: str) -> Path | None:
    """A table's photo path (relative to the data root, or absolute) when the photo is on this machine."""
    candidate = Path(path) if Path(path).is_absolute() or root is None else Path(root) / path
    return candidate if candidate.is_file() else None


def thumbnails(resources, rows: pd.DataFrame, caption: Callable | None = None) -> list[tuple[str, str]]:
    """(thumbnail file, caption) for the first rows; an unreadable or missing photo gets a grey tile so that
    gallery positions stay the rows' positions (the inspector relies on them). No photo on this machine: []."""
    settings = resources.settings
    root = settings.data_root if settings else None
    shown, found = [], False
    for row in rows.head(GALLERY_SIZE).itertuples():
        path = photo_path(root, row.path)
        text = caption(row) if caption else f"{row.true_name} → {row.pred_name}"
        file = None
        if path is not None:
            try:
                file = thumbnail_file(str(path), settings.max_upload_bytes * 4, settings.max_image_pixels)
                found = True
            except ValueError:
                file = None
        if file is None:
            file, text = (
                _written("missing", lambda: Image.new("RGB", (THUMB_SIDE, THUMB_SIDE), (200, 200, 200))),
                (f"(photo missing) {text}"),
            )
        shown.append((file, text))
    return shown if found else []


def thumbnail_file(path: str, max_bytes: int, max_pixels: int) -> str:
    """The photo's thumbnail as a JPEG file (written on first use; ValueError for an unreadable photo)."""
    return _written(hashlib.sha1(path.encode()).hexdigest(), lambda: _thumbnail(path, max_bytes, max_pixels))


def _written(stem: str, image: Callable[[], Image.Image]) -> str:
    out = FOLDER / f"{stem}-{THUMB_SIDE}.jpg"
    if not out.is_file():  # written whole under another name, then renamed: a reader never sees half a file
        FOLDER.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(f".{os.getpid()}-{id(out)}.part")
        image().convert("RGB").save(partial, "JPEG", quality=85)
        os.replace(partial, out)
    return str(out)


@functools.lru_cache(maxsize=THUMBNAILS_KEPT)
def _thumbnail(path: str, max_bytes: int, max_pixels: int) -> Image.Image:
    """A labelled photo's thumbnail, kept: galleries show the same few thousand photos again and again."""
    image = load_image(path, max_bytes, max_pixels).image
    image.thumbnail((THUMB_SIDE, THUMB_SIDE))
    return image
