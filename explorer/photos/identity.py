"""A photo's identity by content: the same file bytes are the same photo, whatever folder, manifest or name holds
them, so two evaluation tables of the same photos in different layouts can be compared photo by photo."""

from __future__ import annotations

import hashlib
from pathlib import Path

HASH_DIGITS = 24  # hex digits of SHA-256 kept (96 bits: no collision among billions of photos)
_CHUNK = 1 << 20


def content_hash(path: str | Path) -> str | None:
    """The first HASH_DIGITS hex digits of the SHA-256 of the file's bytes; None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()[:HASH_DIGITS]
