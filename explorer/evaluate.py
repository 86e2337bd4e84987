"""The evaluation table: one row per labelled photo with truth, top-k, lineages, where the prediction leaves
the truth, roll-up statistics and logits for calibration. Stored as parquet; the dashboard reads only this.

    python -m explorer.evaluate --model inat_bird --images MANIFEST_OR_FOLDER [--images ...] \\
        --out assets/eval/inat_bird.parquet [--engine local|ray] [--batch-size 64] [--workers N]
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from explorer.datasets import read_manifest
from explorer.images import load_image
from explorer.model import Classifier, normalise, resize_rgb
from explorer.taxonomy import RANKS, Lineage, Taxonomy, divergence_rank, lowest_common_ancestor

log = logging.getLogger(__name__)

TOP_K = 5
STORED_LOGITS = 20  # top logits kept per photo for temperature fitting
LOGIT_COLUMNS = tuple(f"top_logit_{i:02d}" for i in range(STORED_LOGITS))
ROLLUP_RANKS = tuple(reversed(RANKS[:-1]))  # genus, family, ..., kingdom
MAX_BYTES, MAX_PIXELS = 50 * 2**20, 100_000_000

SCHEMA: dict[str, str] = {
    "photo_id": "stable id: source + path",
    "path": "photo path relative to the data root (or absolute when outside it)",
    "source": "which photo set",
    "note": "caveat from the manifest (e.g. a doubtful label)",
    "status": "'ok' or why the photo could not be read",
    "model": "model card name",
    "weights_sha256": "hash of the weights file",
    "true_name": "true scientific name",
    "true_common_name": "true common name",
    "true_class_index": "model output index of the truth, -1 when out of vocabulary",
    "in_vocab": "the model has a class for the truth",
    "true_resolved_rank": "deepest rank at which the truth's lineage is known",
    **{f"true_{r}": f"truth's {r}" for r in RANKS},
    "pred_class_index": "top-1 output index",
    "pred_name": "top-1 scientific name",
    "pred_common_name": "top-1 common name",
    "pred_is_background": "top-1 is the model's 'nothing here' class",
    **{f"pred_{r}": f"top-1's {r}" for r in RANKS},
    "confidence": "top-1 probability",
    "true_prob": "probability of the true class (NaN when out of vocabulary)",
    "topk_class_index": f"top-{TOP_K} output indices",
    "topk_name": f"top-{TOP_K} scientific names",
    "topk_prob": f"top-{TOP_K} probabilities",
    "correct_1": "top-1 is the true species",
    "correct_k": f"the true species is in the top-{TOP_K}",
    "divergence_rank": "first rank where top-1 leaves the truth ('correct', 'species', 'genus', ..., 'unknown')",
    "lca_rank": "rank of the lowest common ancestor of truth and top-1",
    "lca_name": "its name",
    **{f"rollup_prob_{r}": f"largest summed probability of any {r}" for r in ROLLUP_RANKS},
    **{f"rollup_correct_{r}": f"that {r} contains the truth" for r in ROLLUP_RANKS},
    **{c: "the i-th largest logit (for temperature fitting)" for c in LOGIT_COLUMNS},
    "true_logit": "logit of the true class (NaN when out of vocabulary)",
    "calibration_half": "True for the half used to fit a temperature (stable hash of photo_id)",
}
# Optional: present when the photos have a place (manifest columns lat, lon and optionally date) and the model
# has a geo-prior. The dashboard's "what the prior fixed and broke" reads these.
GEO_SCHEMA: dict[str, str] = {
    "lat": "latitude of the photo (NaN: no place)",
    "lon": "longitude of the photo",
    "obs_date": "date of the photo, YYYY-MM-DD ('' for none)",
    "location_source": "where the place came from (e.g. a held-out record of the true species)",
    "geo_pred_class_index": "top-1 output index after the geo-prior (= pred_class_index without a place)",
    "geo_pred_name": "its scientific name",
    "geo_confidence": "its combined probability",
    "geo_true_prob": "combined probability of the true class (NaN when out of vocabulary)",
    "geo_correct_1": "top-1 after the geo-prior is the true species",
}
CATEGORICAL = (
    "source",
    "note",
    "status",
    "model",
    "weights_sha256",
    "true_name",
    "true_common_name",
    "true_resolved_rank",
    *(f"true_{r}" for r in RANKS),
    "pred_name",
    "pred_common_name",
    *(f"pred_{r}" for r in RANKS),
    "divergence_rank",
    "lca_rank",
    "lca_name",
    "location_source",
    "geo_pred_name",
)


def validate_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Raise ValueError naming every missing column; returns the frame unchanged."""
    missing = [c for c in SCHEMA if c not in frame.columns]
    if missing:
        raise ValueError(f"evaluation table lacks column(s) {missing}; see README 'Evaluation table schema'")
    return frame


@dataclass(frozen=True)
class Transform:
    """What a DataLoader worker needs to turn a path into the model's input (picklable, no model)."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, path: str) -> tuple[torch.Tensor, str]:
        try:
            image = load_image(path, MAX_BYTES, MAX_PIXELS).image
        except (ValueError, OSError) as err:
            return torch.zeros(3, self.size, self.size), f"unreadable: {err}"
        return normalise(resize_rgb(image, self.size), self.mean, self.std), "ok"


class PhotoDataset(Dataset):
    def __init__(self, paths: list[str], transform: Transform):
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        tensor, status = self.transform(self.paths[index])
        return tensor, status


def transform_for(classifier: Classifier) -> Transform:
    card = classifier.card
    return Transform(card.input_size, card.mean, card.std)


def default_workers() -> int:
    """DataLoader workers: none on a 2-core machine (measured: decoding in the main process keeps up and
    worker processes only compete with the model for the cores), else half the cores, at most 8."""
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(8, cores // 2)


def _single_threaded(_worker_id: int) -> None:
    """Decoding workers use one thread each, leaving the cores to the model's forward pass."""
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def run_logits(
    classifier: Classifier, paths: list[str], batch_size: int = 64, workers: int | None = None, progress: bool = True
) -> tuple[np.ndarray, list[str]]:
    """(n, N) float32 logits and a status per photo, batched through a DataLoader (GPU + autocast if present)."""
    from tqdm.auto import tqdm

    loader = DataLoader(
        PhotoDataset(paths, transform_for(classifier)),
        batch_size=batch_size,
        num_workers=default_workers() if workers is None else workers,
        pin_memory=classifier.device.type == "cuda",
        worker_init_fn=_single_threaded,
    )
    logits, statuses = [], []
    with torch.no_grad():
        for batch, status in tqdm(loader, desc=f"evaluate {classifier.name}", disable=not progress, unit="batch"):
            with classifier.autocast():
                out = classifier.module(batch.to(classifier.device, non_blocking=True))
            logits.append(out.float().cpu().numpy())
            statuses.extend(status)
    return (np.concatenate(logits) if logits else np.zeros((0, len(classifier.labels)), np.float32)), statuses


def truth_lineages(names: list[str], taxonomy: Taxonomy | None, scope: dict | None) -> list[Lineage]:
    """Lineage per true name (cached per distinct name)."""
    from explorer.taxonomy import split_binomial

    cache: dict[str, Lineage] = {}
    for name in set(names):
        if taxonomy is not None:  # the model's scope first; a truth outside it (a plant, say) still resolves
            lineage = taxonomy.lineage_for(name, scope)
            cache[name] = lineage if lineage.resolved_rank or not scope else taxonomy.lineage_for(name, None)
        else:
            genus, binomial = split_binomial(name)
            cache[name] = Lineage(ranks={"genus": genus, "species": binomial})
    return [cache[n] for n in names]


def match_truth(classifier: Classifier, names: list[str], lineages: list[Lineage]) -> np.ndarray:
    """Output index of each true name: exact scientific name, else the same iNat taxon id; -1 if none."""
    by_name = {lab.scientific_name: lab.class_index for lab in classifier.labels if not lab.is_background}
    by_id = {lab.lineage.taxon_id: lab.class_index for lab in classifier.labels if lab.lineage.taxon_id}
    return np.array(
        [by_name.get(n, by_id.get(lin.taxon_id, -1) if lin.taxon_id else -1) for n, lin in zip(names, lineages)],
        dtype=np.int64,
    )


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _rollup_columns(classifier: Classifier, probs: np.ndarray, truth: list[Lineage]) -> dict[str, np.ndarray]:
    """For each rank: the largest clade's summed probability and whether that clade holds the truth."""
    out = {}
    for rank in ROLLUP_RANKS:
        ids, names = classifier.tree.group_ids[rank], classifier.tree.group_names[rank]
        membership = np.zeros((len(ids), max(len(names), 1)), dtype=np.float32)  # (N, G) one-hot
        known = ids >= 0
        membership[np.flatnonzero(known), ids[known]] = 1.0
        sums = probs @ membership  # (n, G)
        best = sums.argmax(axis=1)
        out[f"rollup_prob_{rank}"] = sums[np.arange(len(best)), best].astype(np.float64)
        best_names = [names[b] if names else None for b in best]
        out[f"rollup_correct_{rank}"] = np.array(
            [t.at(rank) is not None and t.at(rank) == b for t, b in zip(truth, best_names)]
        )
    return out


def build_eval_table(
    classifier: Classifier,
    manifest: pd.DataFrame,
    logits: np.ndarray,
    statuses: list[str],
    taxonomy: Taxonomy | None = None,
    data_root: Path | None = None,
    prior=None,
) -> pd.DataFrame:
    """The evaluation table from a manifest and the model's logits (pure: no model call). With a geo-prior
    (a BoundPrior for this classifier) and lat/lon columns in the manifest, the GEO_SCHEMA columns too."""
    if len(manifest) != len(logits):
        raise ValueError(f"{len(manifest)} manifest rows but {len(logits)} logit rows")
    names = manifest["scientific_name"].astype(str).tolist()
    truth = truth_lineages(names, taxonomy, classifier.card.taxon_scope or None)
    true_index = match_truth(classifier, names, truth)
    probs = _softmax(logits.astype(np.float64))
    order = np.argsort(-probs, axis=1, kind="stable")
    top = order[:, :TOP_K]
    pred = order[:, 0]
    labels = classifier.labels
    pred_lineages = [labels[i].lineage for i in pred]
    rows = np.arange(len(names))
    frame = pd.DataFrame(
        {
            "photo_id": (manifest["source"].astype(str) + ":" + manifest["path"].astype(str)).tolist(),
            "path": [_relative(p, data_root) for p in manifest["abs_path"]],
            "source": manifest["source"].astype(str).tolist(),
            "note": manifest["note"].fillna("").astype(str).tolist(),
            "status": statuses,
            "model": classifier.name,
            "weights_sha256": classifier.weights_sha256,
            "true_name": names,
            "true_common_name": manifest["common_name"].fillna("").astype(str).tolist(),
            "true_class_index": true_index,
            "in_vocab": true_index >= 0,
            "true_resolved_rank": [t.resolved_rank for t in truth],
            **{f"true_{r}": [t.at(r) for t in truth] for r in RANKS},
            "pred_class_index": pred,
            "pred_name": [labels[i].scientific_name for i in pred],
            "pred_common_name": [labels[i].common_name for i in pred],
            "pred_is_background": [labels[i].is_background for i in pred],
            **{f"pred_{r}": [lin.at(r) for lin in pred_lineages] for r in RANKS},
            "confidence": probs[rows, pred],
            "true_prob": np.where(true_index >= 0, probs[rows, np.maximum(true_index, 0)], np.nan),
            "topk_class_index": [list(map(int, t)) for t in top],
            "topk_name": [[labels[i].scientific_name for i in t] for t in top],
            "topk_prob": [list(map(float, probs[r, t])) for r, t in enumerate(top)],
            "correct_1": pred == true_index,
            "correct_k": (top == true_index[:, None]).any(axis=1) & (true_index >= 0),
        }
    )
    frame["divergence_rank"] = [
        _divergence(t, p, bg) for t, p, bg in zip(truth, pred_lineages, frame["pred_is_background"])
    ]
    lcas = [lowest_common_ancestor(t, p) for t, p in zip(truth, pred_lineages)]
    frame["lca_rank"] = [lca[0] if lca else None for lca in lcas]
    frame["lca_name"] = [lca[1] if lca else None for lca in lcas]
    for column, values in _rollup_columns(classifier, probs, truth).items():
        frame[column] = values
    top_logits = np.take_along_axis(logits, order[:, :STORED_LOGITS], axis=1)  # (n, <=20), largest first
    for i, column in enumerate(LOGIT_COLUMNS):
        frame[column] = top_logits[:, i] if i < top_logits.shape[1] else -np.inf
    frame["true_logit"] = np.where(true_index >= 0, logits[rows, np.maximum(true_index, 0)], np.nan)
    frame["calibration_half"] = calibration_half(frame["photo_id"])
    if prior is not None and {"lat", "lon"} <= set(manifest.columns):
        _add_geo_columns(frame, manifest, probs, true_index, prior, labels)
    bad = frame["status"] != "ok"
    frame.loc[bad, ["correct_1", "correct_k"] + (["geo_correct_1"] if "geo_correct_1" in frame else [])] = False
    return validate_table(frame)


def _add_geo_columns(frame, manifest, probs, true_index, prior, labels) -> None:
    """Re-rank every photo that has a place with the geo-prior (same combination as the app)."""
    from explorer.geo import check_date, combine_many

    lat = pd.to_numeric(manifest["lat"], errors="coerce").to_numpy(dtype=float)
    lon = pd.to_numeric(manifest["lon"], errors="coerce").to_numpy(dtype=float)
    dates = manifest["date"].fillna("").astype(str) if "date" in manifest else pd.Series([""] * len(frame))
    day = np.array([check_date(d).timetuple().tm_yday if d else np.nan for d in dates], dtype=float)
    combined = combine_many(probs, prior.scores_many(lat, lon, day), prior.alignment, prior.known)
    geo_pred = combined.argmax(axis=1)
    rows = np.arange(len(frame))
    frame["lat"], frame["lon"], frame["obs_date"] = lat, lon, dates.tolist()
    frame["location_source"] = (
        manifest["location_source"].fillna("").astype(str).tolist() if "location_source" in manifest else "manifest"
    )
    frame["geo_pred_class_index"] = geo_pred
    frame["geo_pred_name"] = [labels[i].scientific_name for i in geo_pred]
    frame["geo_confidence"] = combined[rows, geo_pred]
    frame["geo_true_prob"] = np.where(true_index >= 0, combined[rows, np.maximum(true_index, 0)], np.nan)
    frame["geo_correct_1"] = geo_pred == true_index


def calibration_half(photo_ids) -> np.ndarray:
    """A stable half of the photos (hash of the id, not row order) for fitting a temperature."""
    import hashlib

    return np.array([hashlib.blake2b(str(p).encode(), digest_size=1).digest()[0] % 2 == 0 for p in photo_ids])


def optimise_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Names and ranks as categories: the dashboard regroups a million rows in a fraction of a second."""
    return frame.astype({c: "category" for c in CATEGORICAL if c in frame.columns})


def _divergence(truth: Lineage, predicted: Lineage, background: bool) -> str:
    if background:
        return "no prediction"  # the model said "nothing here"
    rank = divergence_rank(truth, predicted)
    if rank == "correct" and truth.at("species") != predicted.at("species"):
        return "unknown"
    return rank


def _relative(path: str, data_root: Path | None) -> str:
    if data_root is not None:
        try:
            return str(Path(path).resolve().relative_to(Path(data_root).resolve()))
        except ValueError:
            pass
    return str(path)


def evaluate(
    classifier: Classifier,
    manifest: pd.DataFrame,
    taxonomy: Taxonomy | None = None,
    data_root: Path | None = None,
    engine: str = "local",
    batch_size: int = 64,
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    prior=None,
) -> pd.DataFrame:
    """Run the model over a manifest and build the table, locally or on Ray Data."""
    paths = manifest["abs_path"].tolist()
    if engine == "local":
        logits, statuses = run_logits(classifier, paths, batch_size, workers, progress)
    elif engine == "ray":
        from explorer.evaluate_ray import run_logits_ray

        logits, statuses = run_logits_ray(classifier, paths, batch_size, address)
    else:
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    return build_eval_table(classifier, manifest, logits, statuses, taxonomy, data_root, prior)


def save_table(frame: pd.DataFrame, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def load_table(path: Path) -> pd.DataFrame:
    """Read and validate an evaluation table (names and ranks as categories)."""
    return optimise_dtypes(validate_table(pd.read_parquet(path)))


def model_prior(classifier: Classifier, settings):
    """The classifier's geo-prior (BoundPrior) when its checkpoint exists, else None."""
    from explorer.geo import bind_prior
    from explorer.resources import prior_path

    path = prior_path(settings.checkpoint_dir, classifier.card)
    return bind_prior(path, [lab.scientific_name for lab in classifier.labels]) if path.is_file() else None


def main(argv: list[str] | None = None) -> None:
    import app
    from explorer.resources import load_resources_for

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model card name")
    parser.add_argument("--images", type=Path, action="append", required=True, help="manifest CSV or folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-root", type=Path, default=app.SHARED / "data", help="paths are stored relative to it")
    parser.add_argument("--engine", choices=["local", "ray"], default="local")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: 0 on <= 2 cores)")
    parser.add_argument("--exclude-noted", action="store_true", help="drop photos whose manifest note flags them")
    parser.add_argument(
        "--no-geo",
        action="store_true",
        help="do not re-rank with the model's geo-prior (by default photos with lat/lon in the manifest are)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    manifest = pd.concat([read_manifest(p, args.data_root) for p in args.images], ignore_index=True)
    if args.exclude_noted:
        manifest = manifest[manifest["note"].fillna("") == ""].reset_index(drop=True)
    classifier, taxonomy = load_resources_for(app.parse_settings([]), args.model, manifest["scientific_name"])
    prior = None if args.no_geo else model_prior(classifier, app.parse_settings([]))
    table = evaluate(
        classifier,
        manifest,
        taxonomy,
        args.data_root,
        args.engine,
        args.batch_size,
        args.workers,
        args.address,
        prior=prior,
    )
    save_table(table, args.out)
    print(
        f"{len(table)} photos, top-1 {table['correct_1'].mean():.3f}, in vocabulary {table['in_vocab'].mean():.3f}"
        f" -> {args.out}"
    )


if __name__ == "__main__":
    main()
