"""List the near-duplicate photos of evaluation tables (explorer.diagnose.duplicates), beside each table.

    python -m explorer.tools.duplicate_photos [--eval-dir assets/eval] [--only inat_bird] [--data-root ../shared/data]

Writes NAME.duplicates.csv (one row per pair of photos that are the same photo: the same bytes, or matched
keypoints after a crop or a resize) and prints, per table and photo set, the top-1 with and without the repeats.
The photos must be on this machine (--data-root). A few seconds per table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from explorer.diagnose.duplicates import duplicate_effect, find_duplicates
from explorer.photos.images import ImageInputError, load_image
from explorer.photos.thumbnails import photo_path
from explorer.settings import DATA_DIR, PROJECT_ROOT
from explorer.tools.cli import one_line_errors

SUFFIX = ".duplicates.csv"
MAX_BYTES, MAX_PIXELS = 100_000_000, 100_000_000


def duplicates_path(table_path: Path) -> Path:
    return Path(table_path).with_name(Path(table_path).stem + SUFFIX)


def photo_loader(table: pd.DataFrame, data_root: Path | None):
    """``load(photo_id)``: the photo's PIL image, or None when it is not on this machine or cannot be read."""
    paths = dict(zip(table["photo_id"].astype(str), table["path"].astype(str)))

    def load(photo_id: str):
        path = photo_path(data_root, paths[photo_id])
        if path is None:
            return None
        try:
            return load_image(path, MAX_BYTES, MAX_PIXELS).image
        except ImageInputError:
            return None

    return load


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m explorer.tools.duplicate_photos", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--eval-dir", type=Path, default=PROJECT_ROOT / "assets" / "eval", help="the tables' folder")
    parser.add_argument("--only", action="append", help="only this table (by name; repeatable)")
    parser.add_argument("--data-root", type=Path, default=DATA_DIR, help="where the tables' photos are")
    args = parser.parse_args(argv)
    paths = sorted(args.eval_dir.glob("*.parquet"))
    paths = [p for p in paths if not args.only or p.stem in set(args.only)]
    if not paths:
        raise ValueError(f"no table in {args.eval_dir}")
    for path in paths:
        table = pd.read_parquet(path)
        found = find_duplicates(table, photo_loader(table, args.data_root))
        found.to_csv(duplicates_path(path), index=False)
        print(f"{path.stem}: {len(found)} duplicate pairs -> {duplicates_path(path).name}")
        for source in sorted(table["source"].astype(str).unique()):
            effect = duplicate_effect(table, found, source)
            print(
                f"  {source}: {effect.duplicates} of {effect.photos} photos repeat another; top-1 "
                f"{effect.accuracy:.1%} with them, {effect.accuracy_without:.1%} without"
            )


if __name__ == "__main__":
    main()
