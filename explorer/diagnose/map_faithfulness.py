"""Can you trust each CAM method's maps for a model? Faithfulness measured on a sample of a table's photos
(explorer.cam.perturbation: pytorch-grad-cam's ROAD and ARCC, deletion and insertion), stored beside the table as
``NAME.faithfulness.json`` and shown per method on the Diagnose tab.

Each photo's map explains the model's own top-1 (what it answered). A map of random noise (seeded) is measured
the same way: a method is only worth its map where it beats noise. The sample: ``sample`` readable photos of
species the model knows, drawn with a fixed seed; the JSON names them.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from explorer.cam.gradcam import BATCHED_METHODS, scale_cams
from explorer.cam.perturbation import (
    BLUR_SIGMA,
    CURVE_STEPS,
    ROAD_PERCENTILES,
    arcc_scores,
    deletion_insertion,
    road_scores,
)
from explorer.models.classifier import Classifier
from explorer.photos.images import load_image
from explorer.photos.thumbnails import photo_path
from explorer.settings import Settings

SUFFIX = ".faithfulness.json"
RANDOM_MAP = "random map (baseline)"
MEASURES = ("road_morf", "road_lerf", "road_combined", "deletion", "insertion", "complexity", "coherency", "arcc")
BETTER = {
    "road_morf": "lower",
    "road_lerf": "higher",
    "road_combined": "higher",
    "deletion": "lower",
    "insertion": "higher",
    "complexity": "lower",
    "coherency": "higher",
    "arcc": "higher",
}
# what "beats the random map on" counts: not complexity, a map's sparseness, which says nothing of faithfulness alone
COUNTED = tuple(k for k in MEASURES if k != "complexity")
SAMPLE = 20
SEED = 0
# the inspector's caps on a labelled photo: 4 x the default upload's bytes, the default pixels
_DEFAULTS = Settings.__dataclass_fields__
MAX_PHOTO_BYTES = 4 * _DEFAULTS["max_upload_bytes"].default
MAX_PHOTO_PIXELS = _DEFAULTS["max_image_pixels"].default


def faithfulness_path(table_path: Path) -> Path:
    """``NAME.parquet`` -> ``NAME.faithfulness.json`` beside it."""
    table_path = Path(table_path)
    return table_path.with_name(table_path.stem + SUFFIX)


def sample_rows(table: pd.DataFrame, sample: int = SAMPLE, seed: int = SEED) -> pd.DataFrame:
    """``sample`` readable photos of species the model knows, drawn with ``seed``, in table order."""
    pool = table[(table["status"] == "ok") & table["in_vocab"].astype(bool)]
    picked = np.random.default_rng(seed).choice(len(pool), size=min(sample, len(pool)), replace=False)
    return pool.iloc[np.sort(picked)]


def photo_maps(classifier: Classifier, tensor: torch.Tensor, index: int, methods, rng) -> np.ndarray:
    """(methods + 1, S, S): each method's map of class ``index`` at the input's size, then a random map."""
    size = tuple(tensor.shape[-2:])
    maps = []
    for method in methods:
        _, _, cams = classifier.forward_with_cams(tensor, lambda _logits: [index], method=method)
        maps.append(scale_cams(torch.from_numpy(cams), size)[0])
    maps.append(rng.random(size).astype(np.float32))
    return np.stack(maps)


def _recompute(classifier: Classifier, index: int, methods, rng):
    """recompute(i, photo): map i's method again on another photo (the random map: another random map)."""

    def recompute(i: int, photo: torch.Tensor) -> np.ndarray:
        size = tuple(photo.shape[-2:])
        if i == len(methods):
            return rng.random(size).astype(np.float32)
        _, _, cams = classifier.forward_with_cams(photo, lambda _logits: [index], method=methods[i])
        return scale_cams(torch.from_numpy(cams), size)[0]

    return recompute


def measure_table(
    classifier: Classifier,
    table: pd.DataFrame,
    data_root: Path | None,
    sample: int = SAMPLE,
    seed: int = SEED,
    methods=BATCHED_METHODS,
    progress=None,
) -> dict:
    """Every measure of every method (and the random map) on a sample of ``table``'s photos, as the JSON stored
    beside the table. ``progress``: called with (done, total) after each photo."""
    start = time.perf_counter()
    rows = sample_rows(table, sample, seed)
    rng = np.random.default_rng(seed)
    names = [*methods, RANDOM_MAP]
    values: dict[str, dict[str, list[float]]] = {m: {k: [] for k in MEASURES} for m in names}
    used, skipped = [], []
    for done, row in enumerate(rows.itertuples(), start=1):
        path = photo_path(data_root, str(row.path))
        if path is None:
            skipped.append(str(row.photo_id))
            continue
        tensor = classifier.preprocess(load_image(path, MAX_PHOTO_BYTES, MAX_PHOTO_PIXELS).image)
        index = int(row.pred_class_index)
        maps = photo_maps(classifier, tensor, index, methods, rng)
        road = road_scores(classifier.module, tensor, maps, [index] * len(maps))
        arcc = arcc_scores(tensor, maps, _recompute(classifier, index, methods, rng), road.combined)
        for i, method in enumerate(names):
            deletion, insertion, _, _ = deletion_insertion(classifier.module, tensor, maps[i], index)
            scores = (road.morf[i], road.lerf[i], road.combined[i], deletion, insertion)
            scores += (arcc.complexity[i], arcc.coherency[i], arcc.arcc[i])
            for key, value in zip(MEASURES, scores):
                values[method][key].append(float(value))
        used.append(str(row.photo_id))
        if progress is not None:
            progress(done, len(rows))
    return {
        "model": classifier.name,
        "weights_sha256": classifier.weights_sha256,
        "photos": len(used),
        "photo_ids": used,
        "missing_photos": skipped,
        "seed": seed,
        "road_percentiles": list(ROAD_PERCENTILES),
        "curve_steps": CURVE_STEPS,
        "blur_sigma": BLUR_SIGMA,
        "explained": "the model's top-1",
        "methods": {m: {k: summarise(v) for k, v in values[m].items()} for m in names},
        "seconds": round(time.perf_counter() - start, 1),
    }


def summarise(values: list[float]) -> dict:
    """Mean and the half-width of its 95 % interval (normal approximation; NaN below 2 values)."""
    array = np.asarray(values, np.float64)
    if len(array) == 0:
        return {"mean": math.nan, "ci95": math.nan, "n": 0}
    half = 1.96 * array.std(ddof=1) / math.sqrt(len(array)) if len(array) > 1 else math.nan
    return {"mean": float(array.mean()), "ci95": float(half), "n": int(len(array))}


def save_faithfulness(report: dict, path: Path) -> Path:
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return path


def load_faithfulness(path: Path) -> dict | None:
    """The report beside a table, or None when there is none or it cannot be read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def faithfulness_frame(report: dict) -> pd.DataFrame:
    """One row per method (the random map last): each measure as 'mean ± ci95'-ready numbers, and whether the
    method beats the random map on that measure (its interval clear of the random map's mean)."""
    methods = report["methods"]
    noise = methods.get(RANDOM_MAP, {})
    rows = []
    for method, measures in methods.items():
        row = {"method": method, "photos": report["photos"]}
        present = [k for k in MEASURES if k in measures]  # a report from before ARCC lacks its three
        for key in present:
            mean, half = measures[key]["mean"], measures[key]["ci95"]
            row[key] = round(mean, 3)
            row[f"{key} ±"] = round(half, 3)
        if method != RANDOM_MAP and noise:
            counted = [k for k in present if k in COUNTED]
            row["beats the random map on"] = sum(_beats(measures[k], noise[k], BETTER[k]) for k in counted)
        rows.append(row)
    return pd.DataFrame(rows)


def _beats(measure: dict, noise: dict, better: str) -> bool:
    low, high = measure["mean"] - measure["ci95"], measure["mean"] + measure["ci95"]
    return high < noise["mean"] if better == "lower" else low > noise["mean"]
