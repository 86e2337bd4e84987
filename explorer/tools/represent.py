"""Measure what each evaluation table's model has learned: its embeddings of the table's photos against the
taxonomy (AMI / NMI of Ward clusters after UMAP to 50-d, leave-one-out k-NN Recall@1/@5 per rank) and a 2-D
UMAP map of them, written to NAME.representation.json beside the table for the dashboard.

    explorer-represent [--eval-dir assets/eval] [--only inat_bird]

Needs the NAME.embeddings.npz that explorer-evaluate writes. Takes about two minutes per 4,000 photos here.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from explorer.diagnose.schema import load_table
from explorer.represent.embeddings import embeddings_path, load_embeddings
from explorer.represent.report import representation_report
from explorer.represent.taxonomy_fit import representation_path, write_representation
from explorer.settings import PROJECT_ROOT
from explorer.tools.cli import one_line_errors


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=PROJECT_ROOT / "assets" / "eval")
    parser.add_argument("--only", action="append", help="a table's name (file stem); repeat for several")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tables = sorted(p for p in args.eval_dir.glob("*.parquet") if not args.only or p.stem in args.only)
    if not tables:
        parser.error(f"no evaluation tables to measure in {args.eval_dir}")
    for path in tables:
        store_path = embeddings_path(path)
        if not store_path.is_file():
            print(f"{path.stem}: no {store_path.name}; run explorer-evaluate without --no-embeddings")
            continue
        report = representation_report(load_table(path), load_embeddings(store_path))
        out = write_representation(representation_path(path), report)
        print(f"{path.stem} -> {out}")
        for fit in report["ranks"]:
            print(
                f"  {fit['rank']:8s} {fit['photos']} photos, {fit['taxa']} taxa: AMI {fit['ami']:.3f} "
                f"NMI {fit['nmi']:.3f}  R@1 {fit['recall_1']:.3f} R@5 {fit['recall_5']:.3f} ({fit['queries']} queries)"
            )


if __name__ == "__main__":
    main()
