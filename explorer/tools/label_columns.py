"""Add the label check's columns to evaluation tables in place, leaving every other column as it is.

    python -m explorer.tools.label_columns [--eval-dir assets/eval] [--only inat_bird]

``label_issue_score`` and its evidence (explorer.diagnose.label_issues) need only what a table already holds (its
top-k, the probability of the label, its lineages) and the embeddings beside it, so no model runs: a second or so
per table. A table without embeddings of its own uses those of the table named in ``EMBEDDINGS_OF`` (the same
backbone), or the model's witness alone. ``explorer-evaluate`` and ``explorer-shipped`` add the columns themselves.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from explorer.diagnose.label_issues import LABEL_ISSUE_COLUMNS, with_label_issues
from explorer.diagnose.schema import save_table
from explorer.represent.embeddings import EmbeddingStore, embeddings_path, load_embeddings
from explorer.settings import PROJECT_ROOT
from explorer.taxa.taxonomy import Taxonomy, load_taxonomy
from explorer.tools.cli import one_line_errors

# a table whose model shares another's backbone (and so its pre-logit features) reads that table's embeddings
EMBEDDINGS_OF = {"cub100_effnet_taxsmooth": "cub100_effnet_head"}


def table_embeddings(path: Path) -> EmbeddingStore | None:
    """The embeddings beside the table at ``path``, or those of the table ``EMBEDDINGS_OF`` names; None without."""
    own = embeddings_path(path)
    if own.is_file():
        return load_embeddings(own)
    other = EMBEDDINGS_OF.get(path.stem)
    borrowed = embeddings_path(path.with_name(f"{other}.parquet")) if other else None
    return load_embeddings(borrowed) if borrowed is not None and borrowed.is_file() else None


def table_taxonomy(table: pd.DataFrame) -> Taxonomy:
    """The taxonomy of every name in the table's top-k (the lineage of a class that is neither a truth nor a
    top-1)."""
    names = {str(n) for names in table["topk_name"] for n in names} | set(table["true_name"].astype(str))
    return load_taxonomy(sorted(names))


def relabelled(path: Path) -> tuple[pd.DataFrame, str]:
    """(the table at ``path`` with its label columns recomputed, what was done)."""
    table = pd.read_parquet(path)
    store = table_embeddings(path)
    if store is not None and not set(table["photo_id"].astype(str)) <= set(store.photo_ids.astype(str)):
        raise ValueError(f"{path.name}: its embeddings lack some of its photos; run explorer-evaluate again")
    out = with_label_issues(table, store, table_taxonomy(table))
    unchanged = [c for c in table.columns if c not in LABEL_ISSUE_COLUMNS]
    pd.testing.assert_frame_equal(out[unchanged], table[unchanged])
    witness = f"neighbours from {store.model}'s embeddings" if store is not None else "the model alone"
    return out, f"{path.name}: {int(out['label_issue_score'].notna().sum())} photos scored ({witness})"


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m explorer.tools.label_columns", description=__doc__.split("\n")[0])
    parser.add_argument("--eval-dir", type=Path, default=PROJECT_ROOT / "assets" / "eval", help="the tables' folder")
    parser.add_argument("--only", action="append", help="only this table (by name; repeatable)")
    args = parser.parse_args(argv)
    paths = sorted(args.eval_dir.glob("*.parquet"))
    if args.only:
        paths = [p for p in paths if p.stem in set(args.only)]
    if not paths:
        raise ValueError(f"no table to extend in {args.eval_dir}")
    for path in paths:
        start = time.perf_counter()
        table, said = relabelled(path)
        save_table(table, path)
        print(f"{said} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
