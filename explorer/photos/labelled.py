"""Labelled photos in the layouts people have, read into one frame: one row per photo with its file and its label
exactly as written (``label``), the photo set's name (``source``) and, where the layout gives them, a place and date.

Layouts (``read_labelled`` tells them apart by what the path is):

- a **folder of class folders** (torchvision's ImageFolder): the class is the name of the folder right under the
  root, exactly as written (``Rufous_Hummingbird``, ``001.Black_footed_Albatross``,
  ``00000_Animalia_Chordata_Aves_..._Calypte_anna``); photos may sit deeper inside it;
- a **table** (``.csv``, ``.tsv``, ``.parquet``): a path column and a label column, named by ``path_column`` and
  ``label_column`` or found among the usual names (``path``/``file_name``/...; ``scientific_name``/``label``/...);
  the manifest of ``explorer-manifest`` is such a table;
- a **COCO or iNat 2021 JSON** (``images``, ``annotations``, ``categories``): the label is the category's ``name``;
  an image's ``latitude``, ``longitude`` and ``date`` (iNat 2021) become the photo's place and date.

Labels are not interpreted here: ``models.label_matching`` matches them to a model's classes (or refuses them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from explorer.photos.images import IMAGE_SUFFIXES
from explorer.photos.manifests import resolve_path

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")
PATH_COLUMNS = ("path", "file_name", "filename", "file", "filepath", "image_path", "image", "img")
LABEL_COLUMNS = ("scientific_name", "label", "species", "class", "class_name", "taxon", "category", "name")
PLACE_COLUMNS = {"lat": ("lat", "latitude"), "lon": ("lon", "lng", "longitude"), "date": ("date", "observed_on")}
KEPT_COLUMNS = ("common_name", "note", "split")  # carried over from a table when present


@dataclass(frozen=True)
class LabelledPhotos:
    """Photos with their labels as written (``frame``: path, abs_path, label, source, note, common_name, and
    lat, lon, date where given), how they were read, and what was left out and why."""

    frame: pd.DataFrame
    layout: str  # "class folders", "table (label column 'species')", "COCO JSON", ...
    left_out: tuple[str, ...] = ()  # what was left out or is missing, e.g. "12 images without an annotation"

    def describe(self) -> str:
        sets = ", ".join(sorted(self.frame["source"].unique()))
        out = f"{len(self.frame)} photos from {sets} ({self.layout})"
        return out + ("; " + "; ".join(self.left_out) if self.left_out else "")


def read_labelled(
    source: str | Path,
    name: str | None = None,
    path_column: str | None = None,
    label_column: str | None = None,
    data_root: Path | None = None,
) -> LabelledPhotos:
    """The labelled photos at ``source`` (a folder of class folders, a table or a COCO / iNat 2021 JSON), their set
    named ``name`` (default: the folder's or file's name; ``manifest.csv`` and ``annotations.json`` take their
    folder's). ValueError or FileNotFoundError with a message for the user."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such folder or file")
    if source.is_dir():
        if path_column or label_column:
            raise ValueError(f"{source} is a folder: --path-column and --label-column are for a table")
        photos = _class_folders(source)
    elif source.suffix.lower() == ".json":
        photos = _coco_json(source, data_root)
    elif source.suffix.lower() in TABLE_SUFFIXES:
        photos = _table(source, path_column, label_column, data_root)
    else:
        raise ValueError(
            f"{source}: not a folder of class folders, a table ({', '.join(TABLE_SUFFIXES)}) or a COCO / iNat JSON"
        )
    frame = photos.frame
    frame["source"] = name or _set_name(source)
    missing = [p for p, a in zip(frame["path"], frame["abs_path"]) if not Path(a).is_file()]
    beside = _photo_folder_beside(source, frame) if source.is_file() and len(missing) == len(frame) else None
    if beside is not None:  # a table beside the folder of its photos: "labels.csv" and "pics/IMG_1.jpg"
        frame["abs_path"] = [str((beside / p).resolve()) for p in frame["path"]]
        photos = replace(photos, layout=f"{photos.layout}; photo files found in {beside.name}/ beside it")
        missing = [p for p, a in zip(frame["path"], frame["abs_path"]) if not Path(a).is_file()]
    where = f"{source.parent if source.is_file() else source}" + (f" or {data_root}" if data_root else "")
    if len(missing) == len(frame):
        raise FileNotFoundError(
            f"{source}: none of its {len(frame)} photo files was found, e.g. {missing[0]!r} "
            f"(paths are read relative to {where})"
        )
    if missing:  # kept: the table says which photos could not be read
        photos = replace(
            photos, left_out=(*photos.left_out, f"{len(missing)} photo files not found (kept, unreadable)")
        )
    return photos


def _photo_folder_beside(source: Path, frame: pd.DataFrame) -> Path | None:
    """The one folder beside a table (or JSON) that holds most of its photos when they are named relative to
    it, not to the table's own folder; None when no folder, or more than one, does."""
    folders = sorted(p for p in source.parent.iterdir() if p.is_dir() and not p.name.startswith("."))
    paths = frame["path"].astype(str).tolist()
    holding = [f for f in folders if (f / paths[0]).is_file()]
    if len(holding) != 1:
        return None
    found = sum((holding[0] / p).is_file() for p in paths)
    return holding[0] if 2 * found >= len(paths) else None


def _set_name(source: Path) -> str:
    if source.is_file() and source.stem in ("manifest", "annotations", "labels"):
        return source.parent.name
    return source.stem if source.is_file() else source.name


def _class_folders(root: Path) -> LabelledPhotos:
    rows = []
    loose = 0
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        relative = path.relative_to(root)
        if len(relative.parts) < 2:
            loose += 1
            continue
        rows.append({"path": str(relative), "abs_path": str(path.resolve()), "label": relative.parts[0]})
    if not rows:
        raise ValueError(
            f"{root}: no photos in class folders (a folder per class, its photos inside"
            + (f"; {loose} photos lie loose in the folder itself" if loose else "")
            + "); for a table or a COCO JSON give its file"
        )
    left_out = (f"{loose} photos outside any class folder",) if loose else ()
    return LabelledPhotos(_with_defaults(pd.DataFrame(rows)), "class folders: the label is the folder's name", left_out)


def _pick(columns, asked: str | None, candidates: tuple[str, ...], what: str, source: Path, flag: str) -> str:
    if asked is not None:
        if asked not in columns:
            raise ValueError(f"{source}: no column {asked!r} ({flag}); its columns are {list(columns)}")
        return asked
    lowered = {str(c).lower(): c for c in columns}
    for candidate in candidates:
        if candidate in lowered:
            return lowered[candidate]
    raise ValueError(
        f"{source}: no {what} column (looked for {', '.join(candidates)}); name it with {flag}. "
        f"Its columns are {list(columns)}"
    )


def _table(source: Path, path_column: str | None, label_column: str | None, data_root: Path | None) -> LabelledPhotos:
    suffix = source.suffix.lower()
    try:
        if suffix == ".parquet":
            table = pd.read_parquet(source)
        else:
            table = pd.read_csv(source, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
    except Exception as err:  # noqa: BLE001 - any reader failure is the file's problem, said in one line
        raise ValueError(f"{source}: cannot be read as a {suffix[1:]} table ({err})") from None
    path_col = _pick(table.columns, path_column, PATH_COLUMNS, "path", source, "--path-column")
    label_col = _pick(table.columns, label_column, LABEL_COLUMNS, "label", source, "--label-column")
    labels = table[label_col]
    empty = labels.isna() | (labels.astype(str).str.strip() == "")
    frame = pd.DataFrame(
        {
            "path": table[path_col].astype(str),
            "label": labels.astype(str).str.strip(),
            **{c: table[c] for c in KEPT_COLUMNS if c in table.columns and c not in (path_col, label_col)},
        }
    )
    if "source" in table.columns:
        frame["provenance"] = table["source"]
    for column, names in PLACE_COLUMNS.items():
        found = next((c for c in table.columns if str(c).lower() in names), None)
        if found is not None:
            frame[column] = table[found]
    frame = frame[~empty.to_numpy()].reset_index(drop=True)
    frame["abs_path"] = [resolve_path(source.parent, data_root, p) for p in frame["path"]]
    left_out = (f"{int(empty.sum())} rows with an empty label",) if empty.any() else ()
    return LabelledPhotos(_with_defaults(frame), f"table: paths in {path_col!r}, labels in {label_col!r}", left_out)


def _coco_json(source: Path, data_root: Path | None) -> LabelledPhotos:
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{source}: not a JSON file we can read ({err})") from None
    lacking = [k for k in ("images", "annotations", "categories") if not isinstance(data, dict) or k not in data]
    if lacking:
        needs = "'images', 'annotations' and 'categories'"
        raise ValueError(f"{source}: a COCO / iNat 2021 JSON needs {needs}; it lacks {lacking}")
    categories = {c["id"]: str(c["name"]) for c in data["categories"]}
    labels: dict = {}
    for annotation in data["annotations"]:
        labels.setdefault(annotation["image_id"], set()).add(categories.get(annotation["category_id"], ""))
    rows, unlabelled, several = [], 0, 0
    for image in data["images"]:
        found = labels.get(image["id"], set()) - {""}
        if not found:
            unlabelled += 1
            continue
        if len(found) > 1:
            several += 1
            continue
        row = {"path": str(image["file_name"]), "label": found.pop()}
        for column, names in PLACE_COLUMNS.items():
            value = next((image[n] for n in names if image.get(n) not in (None, "")), None)
            if value is not None:
                row[column] = str(value)[:10] if column == "date" else value
        rows.append(row)
    if not rows:
        raise ValueError(f"{source}: no image has a category in 'annotations' ({len(data['images'])} images)")
    frame = pd.DataFrame(rows)
    frame["abs_path"] = [resolve_path(source.parent, data_root, p) for p in frame["path"]]
    counts = ((unlabelled, "images without an annotation"), (several, "images of several categories"))
    left_out = tuple(f"{count} {what}" for count, what in counts if count)
    return LabelledPhotos(_with_defaults(frame), "COCO / iNat 2021 JSON: the label is the category's name", left_out)


def _with_defaults(frame: pd.DataFrame) -> pd.DataFrame:
    for column in ("common_name", "note"):
        frame[column] = frame[column].fillna("").astype(str) if column in frame else ""
    return frame
