"""How much several photos of one organism help, measured on pseudo-observations: an evaluation table's photos of
one species grouped by twos and threes (never a photo twice, nor in two groups), each group fused by every rule
of identify.fusing, against one photo alone. Written beside the table as NAME.fusion.json by
``explorer-fusion``; the results page reads it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.identify.fusing import FUSION_RULES, fuse

SUFFIX = ".fusion.json"
SEED = 0
BINS = 10  # the calibration error's bins
CERTAIN = 0.995  # an answer this sure reads as certain: how many are, and how many of those are right


def fusion_path(table_path: Path) -> Path:
    """``NAME.parquet`` -> ``NAME.fusion.json`` beside it."""
    table_path = Path(table_path)
    return table_path.with_name(table_path.stem + SUFFIX)


def group_sizes(n: int) -> list[int]:
    """n photos of a species as groups of three and two, using every photo when n >= 2: 4 -> 2 + 2, 5 -> 3 + 2,
    7 -> 3 + 2 + 2; one photo makes no group."""
    if n < 2:
        return []
    threes, rest = divmod(n, 3)
    if rest == 0:
        return [3] * threes
    if rest == 2:
        return [3] * threes + [2]
    return [3] * (threes - 1) + [2, 2]  # rest 1: one three becomes two twos


def pseudo_observations(species: list, photo_ids: list, seed: int = SEED) -> list[np.ndarray]:
    """Row positions of each pseudo-observation: per species (in name order), its photos in id order shuffled
    by one seeded generator, then cut by ``group_sizes``."""
    frame = pd.DataFrame({"species": list(map(str, species)), "id": list(map(str, photo_ids))})
    frame["row"] = np.arange(len(frame))
    rng = np.random.default_rng(seed)
    groups = []
    for _name, rows in frame.sort_values(["species", "id"], kind="stable").groupby("species", sort=True):
        order = rows["row"].to_numpy()[rng.permutation(len(rows))]
        start = 0
        for size in group_sizes(len(order)):
            groups.append(order[start : start + size])
            start += size
    return groups


def calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error: |accuracy - mean confidence| per equal-width bin, weighted by its share."""
    index = np.minimum((np.asarray(confidence) * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        chosen = index == b
        if chosen.any():
            total += chosen.mean() * abs(float(np.mean(correct[chosen])) - float(np.mean(confidence[chosen])))
    return total


def measure(log_probs: np.ndarray, truth: np.ndarray, groups: list[np.ndarray]) -> dict:
    """Top-1 accuracy and calibration error of each rule over ``groups`` (rows of (n, N) ``log_probs``; ``truth``:
    each row's class index), beside one photo alone: every photo of the groups counted on its own. Also by group
    size."""
    own_top = np.argmax(log_probs, axis=1)
    own_conf = np.exp(log_probs[np.arange(len(log_probs)), own_top])
    rows = np.concatenate(groups) if groups else np.zeros(0, int)
    result = {
        "observations": len(groups),
        "photos": int(len(rows)),
        "by_size": {str(k): sum(len(g) == k for g in groups) for k in (2, 3)},
        "one_photo": _scores(own_top[rows] == truth[rows], own_conf[rows]),
        "rules": {},
    }
    for rule in FUSION_RULES:
        fused = np.stack([fuse(log_probs[g], rule) for g in groups]) if groups else np.zeros((0, 1))
        top = np.argmax(fused, axis=1)
        correct = top == np.array([truth[g[0]] for g in groups], dtype=int)
        scores = _scores(correct, fused[np.arange(len(groups)), top])
        scores["by_size"] = {
            str(k): round(float(correct[[len(g) == k for g in groups]].mean()), 4)
            if result["by_size"][str(k)]
            else None
            for k in (2, 3)
        }
        result["rules"][rule] = scores
    return result


def _scores(correct: np.ndarray, confidence: np.ndarray) -> dict:
    correct = np.asarray(correct, dtype=bool)
    if not len(correct):
        return {"top1": None, "correct": 0, "ece": None, "mean_confidence": None, "certain": 0, "certain_right": 0}
    certain = np.asarray(confidence) >= CERTAIN
    return {
        "top1": round(float(correct.mean()), 4),
        "correct": int(correct.sum()),
        "ece": round(calibration_error(np.asarray(confidence), correct), 4),
        "mean_confidence": round(float(np.mean(confidence)), 4),
        "certain": int(certain.sum()),  # said ">= 99.5 %"
        "certain_right": int((certain & correct).sum()),  # ... and were right
    }


def save_fusion(report: dict, path: Path) -> Path:
    path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return path


def load_fusion(path: Path) -> dict | None:
    """The report beside a table, or None when there is none or it cannot be read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
