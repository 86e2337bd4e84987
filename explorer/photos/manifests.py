"""Labelled photo sets as manifests: one row per photo with ``path`` and ``scientific_name``.

A manifest is a CSV (``path`` relative to the CSV's folder or to the data root, ``scientific_name``, and
optionally ``common_name``, ``note``, ``split``, ``source``) or a folder with one sub-folder per species
(folder name = scientific name, underscores allowed).

A CUB-100 split as a manifest CSV: ``explorer-manifest cub100 --root ../shared/data/cub100 --split test --out m.csv``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from explorer.photos.images import IMAGE_SUFFIXES

MANIFEST_COLUMNS = ("path", "scientific_name")


def read_manifest(source: Path, data_root: Path | None = None, keep_notes: bool = True) -> pd.DataFrame:
    """Manifest rows with an absolute ``abs_path`` column; a folder is read as folder-per-species.

    ``source`` (which photo set) is the manifest's folder name (or the CSV's name when it is not
    ``manifest.csv``); a ``source`` column in the CSV (per-photo provenance) is kept as ``provenance``.
    ``note`` marks a photo as doubtful; ``keep_notes=False`` drops a note column that is only informational.
    """
    source = Path(source)
    if source.is_dir():
        frame = _folder_manifest(source)
        base = source
    elif source.is_file():
        frame = pd.read_csv(source)
        base = source.parent
    else:
        raise FileNotFoundError(f"no manifest or folder at {source}")
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{source}: manifest lacks column(s) {missing}; needs {list(MANIFEST_COLUMNS)}")
    frame = frame.rename(columns={"source": "provenance"}).copy()
    if not keep_notes:
        frame = frame.drop(columns=["note"], errors="ignore")
    for column in ("common_name", "note"):
        frame[column] = frame[column].fillna("") if column in frame else ""
    frame["source"] = source.parent.name if source.name == "manifest.csv" else source.stem
    frame["abs_path"] = [resolve_path(base, data_root, p) for p in frame["path"]]
    return frame.reset_index(drop=True)


def relative_path(path: str | Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when it lies inside it (so tables and checkpoints travel), else as given."""
    if root is not None:
        try:
            return str(Path(path).resolve().relative_to(Path(root).resolve()))
        except ValueError:
            pass
    return str(path)


def resolve_path(base: Path, data_root: Path | None, path: str) -> str:
    """A listed photo's absolute path: relative to the list's folder, else to the data root when it is there."""
    candidate = Path(base) / path
    if not candidate.exists() and data_root is not None and (Path(data_root) / path).exists():
        candidate = Path(data_root) / path
    return str(candidate.resolve())


def _folder_manifest(folder: Path) -> pd.DataFrame:
    rows = [
        {"path": str(p.relative_to(folder)), "scientific_name": p.parent.name.replace("_", " ")}
        for p in sorted(folder.rglob("*"))
        if p.suffix.lower() in IMAGE_SUFFIXES and p.parent != folder
    ]
    if not rows:
        raise ValueError(f"{folder}: no images in species sub-folders")
    return pd.DataFrame(rows)


def cub100_manifest(root: Path, split: str) -> pd.DataFrame:
    """CUB-100 photos of one split. Follows the flags in train_test_split.txt (1 = train, CUB's convention:
    2,903 train and 2,999 test photos), not the subset's README, which states the reverse counts."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root)
    read = {"sep": r",\s*", "engine": "python", "header": None}
    images = pd.read_csv(root / "images.txt", names=["image_id", "file"], **read)
    labels = pd.read_csv(root / "image_class_labels.txt", names=["image_id", "class_id"], **read)
    flags = pd.read_csv(root / "train_test_split.txt", names=["image_id", "is_train"], **read)
    taxa = pd.read_csv(root / "classes_taxonomy.csv")[["class_id", "cub_name", "scientificName"]]
    frame = images.merge(labels, on="image_id").merge(flags, on="image_id").merge(taxa, on="class_id")
    frame = frame[frame["is_train"] == (1 if split == "train" else 0)]
    return pd.DataFrame(
        {
            "path": "images/" + frame["file"],
            "scientific_name": frame["scientificName"],
            "common_name": frame["cub_name"].str.replace("_", " "),
            "split": split,
            "source": f"cub100-{split}",
            "note": "",
            "class_id": frame["class_id"],
        }
    ).reset_index(drop=True)
