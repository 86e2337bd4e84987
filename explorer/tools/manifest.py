"""Write a manifest CSV for a known photo set.

explorer-manifest cub100 --root ../shared/data/cub100 --split test --out manifest.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

from explorer.photos.manifests import cub100_manifest
from explorer.tools.cli import one_line_errors


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=["cub100"])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    frame = cub100_manifest(args.root, args.split)
    frame["path"] = [str((args.root / p).resolve()) for p in frame["path"]]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(f"{len(frame)} photos -> {args.out}")


if __name__ == "__main__":
    main()
