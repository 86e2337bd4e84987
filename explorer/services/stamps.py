"""What says a model's or a table's files changed since they were loaded: each file's path, modification time and
size, so a reload reads again only what changed."""

from __future__ import annotations

from pathlib import Path

from explorer.models.cards import ModelCard, find_file
from explorer.settings import Settings


def model_key(name: str) -> str:
    return f"model:{name}"


def table_key(name: str) -> str:
    return f"table:{name}"


def file_stamp(path: Path) -> tuple:
    """What says a file changed: its path, modification time and size (() when it is not there)."""
    try:
        stat = Path(path).stat()
    except OSError:
        return ()
    return (str(path), stat.st_mtime_ns, stat.st_size)


def card_stamp(card: ModelCard, settings: Settings) -> tuple:
    """The stamps of a card's file and the files it names (weights, labels, head) that can be found."""
    files = [card.card_path] if card.card_path else []
    for name in (card.weights.file, card.labels_file, card.head_weights):
        try:
            files.append(find_file(name, settings, card) if name else None)
        except FileNotFoundError:
            files.append(None)
    return tuple(file_stamp(f) if f is not None else () for f in files)


def unchanged(previous, stamps: dict, kind: str) -> dict:
    """The models (``kind`` "classifiers") or tables (``kind`` "tables") of ``previous`` whose stamps are unchanged."""
    if previous is None:
        return {}
    key = model_key if kind == "classifiers" else table_key
    return {
        name: value
        for name, value in getattr(previous, kind).items()
        if stamps.get(key(name)) is not None and previous.stamps.get(key(name)) == stamps[key(name)]
    }
