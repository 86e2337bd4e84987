"""Add the exact-calibration columns to shipped evaluation tables, leaving every other column as it is.

    python -m explorer.tools.calibration_columns [--data-root ../shared/data] [--only inat_bird] [--cache DIR]

The tables from before these columns kept only each photo's 20 largest logits, so a temperature fitted on them
ignored the probability beyond them (a median 7.5 % for the 965-class ``inat_bird``). This tool runs each
table's model once more over the same photos (the full logits), checks that they are the logits the table was
built from (same weights hash, same top logits), and appends ``top_nll_KK`` and ``top_gap_KK``
(explorer.diagnose.calibration.exact_calibration_columns) to the table. The other columns are left unchanged (checked
before writing). Cheaper than ``explorer-shipped`` (no geo-prior, scope gate, embeddings or representation).
``--cache`` (default tmp/full_logits, git-ignored) keeps the full logits (``MODEL.npz``) so a check can fit on
them again without another pass over the photos.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.diagnose.calibration import EXACT_COLUMNS, exact_calibration_columns
from explorer.diagnose.schema import LOGIT_COLUMNS, save_table
from explorer.models.batches import run_outputs
from explorer.models.classifier import Classifier
from explorer.services.resources import load_classifier_for
from explorer.settings import PROJECT_ROOT, Settings, add_model_arguments, settings_from_args
from explorer.tools.cli import one_line_errors

TABLES = ("inat_bird", "inat_insect", "cub100_effnet_head", "cub100_effnet_taxsmooth")


def _classifier(settings: Settings, table: pd.DataFrame, model: str) -> Classifier:
    classifier, _ = load_classifier_for(settings, model, table["true_name"].astype(str).unique().tolist())
    if classifier.weights_sha256 != str(table["weights_sha256"].iloc[0]):
        raise ValueError(f"{model}: the weights ({classifier.weights_sha256[:12]}) are not the table's")
    return classifier


def full_logits(settings: Settings, table: pd.DataFrame, model: str) -> np.ndarray:
    """(n, classes) logits of the table's model over the table's photos (its paths under the data root)."""
    classifier = _classifier(settings, table, model)
    paths = [str(Path(settings.data_root) / p) for p in table["path"].astype(str)]
    logits, statuses, _ = run_outputs(classifier, paths, batch_size=64)
    if statuses != table["status"].astype(str).tolist():
        raise ValueError(f"{model}: photos that read differently from when the table was built")
    return logits


def check_same_logits(table: pd.DataFrame, logits: np.ndarray, model: str) -> float:
    """The largest difference between the table's stored top logits and the recomputed ones (readable photos)."""
    ok = (table["status"] == "ok").to_numpy()
    stored = table[list(LOGIT_COLUMNS)].to_numpy(np.float64)[ok]
    top = -np.sort(-logits[ok], axis=1)[:, : stored.shape[1]]
    finite = np.isfinite(stored)
    worst = float(np.abs(stored[finite] - top[finite]).max()) if finite.any() else 0.0
    if worst > 1e-3:
        raise ValueError(f"{model}: recomputed logits differ from the table's by up to {worst:.4f}")
    return worst


def extended(table: pd.DataFrame, logits: np.ndarray) -> pd.DataFrame:
    """The table with the exact-calibration columns (NaN for unreadable photos) replacing any it had."""
    columns = exact_calibration_columns(logits)
    unreadable = (table["status"] != "ok").to_numpy()
    out = table.drop(columns=[c for c in EXACT_COLUMNS if c in table.columns])
    new = pd.DataFrame({c: np.where(unreadable, np.nan, v).astype(np.float32) for c, v in columns.items()})
    return pd.concat([out, new.set_index(out.index)], axis=1)


def _cached(cache: Path, model: str, table: pd.DataFrame) -> dict | None:
    path = cache / f"{model}.npz"
    if not path.is_file():
        return None
    stored = dict(np.load(path))
    return stored if stored["photo_id"].tolist() == table["photo_id"].astype(str).tolist() else None


def _logits(settings: Settings, table: pd.DataFrame, model: str, cache: Path) -> np.ndarray:
    """The full logits, from the cache when it holds them for these photos."""
    stored = _cached(cache, model, table)
    if stored is not None:
        return stored["logits"]
    logits = full_logits(settings, table, model)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(cache / f"{model}.npz", photo_id=table["photo_id"].to_numpy(str), logits=logits)
    return logits


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, default=PROJECT_ROOT / "assets" / "eval")
    parser.add_argument("--only", choices=TABLES, action="append")
    parser.add_argument("--cache", type=Path, default=PROJECT_ROOT / "tmp" / "full_logits", help="MODEL.npz kept here")
    args = add_model_arguments(parser).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = settings_from_args(args)
    for model in args.only or TABLES:
        started = time.perf_counter()
        path = args.eval_dir / f"{model}.parquet"
        table = pd.read_parquet(path)
        logits = _logits(settings, table, model, args.cache)
        worst = check_same_logits(table, logits, model)
        out = extended(table, logits)
        kept = out[list(table.columns.drop(EXACT_COLUMNS, errors="ignore"))]
        pd.testing.assert_frame_equal(kept, table[kept.columns])  # every other column exactly as it was
        save_table(out, path)
        print(f"{model}: {len(out)} rows, top logits within {worst:.1e}; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
