"""Near-duplicate photos within and across photo sets: the same photo twice (re-encoded, resized, cropped), which
inflates a test set's accuracy, or leaks between sets.

Candidates come from the model's embedding: each photo and its nearest neighbour (the table's stored
``label_neighbours``) whose cosine is in the top 5 % (``CANDIDATE_QUANTILE``) of the table's nearest-neighbour
cosines (a floor relative to the table, since each model's cosines spread differently), and every pair with the same
bytes
(``photo_hash``). A candidate is a duplicate when its two photos match pixel for pixel up to a crop and a resize:
``MIN_INLIERS`` ORB keypoints agree on one similarity transform (OpenCV, RANSAC). Measured on the shipped tables,
the same photo gives 175–704 such keypoints and two photos of one species at most 10.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from explorer.diagnose.schema import PHOTO_HASH

CANDIDATE_QUANTILE = 0.95  # a photo's nearest cosine in the table's top 5 % makes it a candidate
MIN_INLIERS = 50  # ORB keypoints on one similarity transform: the same photo
MATCH_SIDE = 400  # px: the longer side each photo is shrunk to before matching
DUPLICATE_COLUMNS = ["photo_a", "photo_b", "source_a", "source_b", "label_a", "label_b", "cosine", "inliers", "how"]


def candidate_pairs(table: pd.DataFrame, quantile: float = CANDIDATE_QUANTILE) -> pd.DataFrame:
    """Unordered pairs (photo_a < photo_b) worth checking: the same bytes, or a nearest neighbour whose cosine is in
    the table's top ``1 - quantile``; with their cosine (NaN for same bytes found otherwise)."""
    ok = table[table["status"] == "ok"]
    pairs: dict[tuple[str, str], float] = {}
    if PHOTO_HASH in ok.columns:
        for _, group in ok.groupby(ok[PHOTO_HASH].astype(str), sort=True):
            ids = sorted(group["photo_id"].astype(str))
            for i, a in enumerate(ids):
                for b in ids[i + 1 :]:
                    pairs[(a, b)] = float("nan")
    if "label_neighbours" in ok.columns:
        first = ok["label_neighbour_sims"].map(lambda s: float(s[0]) if len(s) else np.nan).to_numpy(np.float64)
        if np.isfinite(first).any():
            floor = float(np.nanquantile(first, quantile))
            for photo, neighbours, cosine in zip(ok["photo_id"].astype(str), ok["label_neighbours"], first):
                if np.isfinite(cosine) and cosine >= floor and len(neighbours):
                    a, b = sorted((photo, str(neighbours[0])))
                    pairs[(a, b)] = cosine if np.isnan(pairs.get((a, b), np.nan)) else pairs[(a, b)]
    return pd.DataFrame([(a, b, c) for (a, b), c in sorted(pairs.items())], columns=["photo_a", "photo_b", "cosine"])


def matched_keypoints(first: np.ndarray, second: np.ndarray) -> int:
    """ORB keypoints of two grey images (uint8) that agree on one similarity transform (rotation, scale, shift;
    RANSAC, 4 px): hundreds for the same photo cropped or resized, a handful for two photos of one bird."""
    import cv2

    orb = cv2.ORB_create(1000)
    ka, da = orb.detectAndCompute(first, None)
    kb, db = orb.detectAndCompute(second, None)
    if da is None or db is None:
        return 0
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(da, db)
    if len(matches) < 8:
        return 0
    pa = np.float32([ka[m.queryIdx].pt for m in matches])
    pb = np.float32([kb[m.trainIdx].pt for m in matches])
    _, mask = cv2.estimateAffinePartial2D(pa, pb, method=cv2.RANSAC, ransacReprojThreshold=4.0)
    return int(mask.sum()) if mask is not None else 0


def grey(image) -> np.ndarray:
    """A PIL image as grey uint8, its longer side ``MATCH_SIDE``."""
    from PIL import Image

    image = image.convert("L")
    scale = MATCH_SIDE / max(image.size)
    return np.asarray(
        image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BOX)
    )


@dataclass(frozen=True)
class DuplicateEffect:
    photos: int  # readable photos of species the model knows
    duplicates: int  # of them, photos that repeat one listed before them (the second copy of each pair)
    accuracy: float  # top-1 over all of them
    accuracy_without: float  # top-1 with the repeats left out


def find_duplicates(table: pd.DataFrame, load, quantile: float = CANDIDATE_QUANTILE) -> pd.DataFrame:
    """The duplicate pairs of ``table`` (``DUPLICATE_COLUMNS``): ``load(photo_id)`` gives a photo's PIL image, or
    None when it cannot be read (the pair is then not checked)."""
    rows = table.set_index(table["photo_id"].astype(str))
    found = []
    hashes = rows[PHOTO_HASH].astype(str) if PHOTO_HASH in rows.columns else None
    for pair in candidate_pairs(table, quantile).itertuples():
        same_bytes = hashes is not None and hashes[pair.photo_a] == hashes[pair.photo_b]
        inliers = -1
        if not same_bytes:
            a, b = load(pair.photo_a), load(pair.photo_b)
            if a is None or b is None:
                continue
            inliers = matched_keypoints(grey(a), grey(b))
            if inliers < MIN_INLIERS:
                continue
        found.append(
            {
                "photo_a": pair.photo_a,
                "photo_b": pair.photo_b,
                "source_a": str(rows.at[pair.photo_a, "source"]),
                "source_b": str(rows.at[pair.photo_b, "source"]),
                "label_a": str(rows.at[pair.photo_a, "true_name"]),
                "label_b": str(rows.at[pair.photo_b, "true_name"]),
                "cosine": pair.cosine,
                "inliers": inliers,
                "how": "the same bytes" if same_bytes else "the same photo, cropped or resized",
            }
        )
    return pd.DataFrame(found, columns=DUPLICATE_COLUMNS)


def duplicate_effect(table: pd.DataFrame, duplicates: pd.DataFrame, source: str | None = None) -> DuplicateEffect:
    """Top-1 over the readable photos of known species (of ``source`` only, when given), and without the second
    photo of each duplicate pair (``photo_b``: one copy of each photo kept)."""
    known = table[(table["status"] == "ok") & table["in_vocab"].astype(bool)]
    if source is not None:
        known = known[known["source"].astype(str) == source]
    repeats = known["photo_id"].astype(str).isin(set(duplicates["photo_b"].astype(str)))
    kept = known[~repeats.to_numpy()]
    return DuplicateEffect(
        photos=len(known),
        duplicates=int(repeats.sum()),
        accuracy=float(known["correct_1"].mean()) if len(known) else float("nan"),
        accuracy_without=float(kept["correct_1"].mean()) if len(kept) else float("nan"),
    )
