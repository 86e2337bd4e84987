"""Add the ``photo_hash`` column (the photo by its file's content) to evaluation tables made before it, leaving
every other column as it is.

    python -m explorer.tools.photo_hashes [--eval-dir assets/eval] [--data-root ../shared/data]

Each row's file is found as the table names it (its ``path``, relative to the data root, or absolute) and hashed
(explorer.photos.identity.content_hash). A readable photo whose file is gone stops the tool: a table is migrated
whole or not at all. Tables that already have the column are left alone.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from explorer.diagnose.schema import PHOTO_HASH, save_table
from explorer.photos.identity import content_hash
from explorer.settings import DATA_DIR, PROJECT_ROOT
from explorer.tools.cli import one_line_errors


def with_photo_hashes(table: pd.DataFrame, data_root: Path) -> pd.DataFrame:
    """The table with ``photo_hash`` right after ``photo_id``; ValueError when a readable photo's file is gone."""
    paths = [Path(p) if Path(p).is_absolute() else Path(data_root) / p for p in table["path"].astype(str)]
    hashes = [content_hash(p) for p in paths]
    gone = [str(p) for p, h, s in zip(paths, hashes, table["status"].astype(str)) if h is None and s == "ok"]
    if gone:
        raise ValueError(f"{len(gone)} readable photos of the table are not under {data_root}, e.g. {gone[0]}")
    out = table.copy()
    out.insert(out.columns.get_loc("photo_id") + 1, PHOTO_HASH, hashes)
    return out


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=PROJECT_ROOT / "assets" / "eval")
    parser.add_argument("--data-root", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    tables = sorted(args.eval_dir.glob("*.parquet"))
    if not tables:
        raise ValueError(f"no evaluation tables in {args.eval_dir}")
    for path in tables:
        table = pd.read_parquet(path)
        if PHOTO_HASH in table.columns:
            print(f"{path.name}: has {PHOTO_HASH} already")
            continue
        out = with_photo_hashes(table, args.data_root)
        pd.testing.assert_frame_equal(out.drop(columns=PHOTO_HASH), table)  # every other column exactly as it was
        save_table(out, path)
        unique = out[PHOTO_HASH].nunique()
        print(f"{path.name}: {len(out)} rows, {unique} distinct photo contents")


if __name__ == "__main__":
    main()
