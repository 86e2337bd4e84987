"""Near-duplicates: candidates from the embedding's nearest neighbours and the same bytes, confirmed by keypoints
that agree on one crop-and-resize; the top-1 with and without the repeats."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from explorer.diagnose.duplicates import (
    DUPLICATE_COLUMNS,
    candidate_pairs,
    duplicate_effect,
    find_duplicates,
    grey,
    matched_keypoints,
)


def textured(seed: int, size=(320, 240)) -> Image.Image:
    """A photo-like image: smooth blobs and edges (keypoints to find), different for each seed."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize(size, Image.BICUBIC)
    noise = rng.integers(0, 60, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(np.clip(np.asarray(image, np.int16) + noise, 0, 255).astype(np.uint8))


def table(rows) -> pd.DataFrame:
    """rows: (photo_id, source, label, hash, nearest neighbour, its cosine, correct)."""
    return pd.DataFrame(
        {
            "photo_id": [r[0] for r in rows],
            "source": [r[1] for r in rows],
            "true_name": [r[2] for r in rows],
            "photo_hash": [r[3] for r in rows],
            "label_neighbours": [[r[4]] for r in rows],
            "label_neighbour_sims": [[r[5]] for r in rows],
            "correct_1": [r[6] for r in rows],
            "status": "ok",
            "in_vocab": True,
        }
    )


ROWS = [
    ("a", "s1", "X", "h1", "b", 0.99, True),  # a and b: the nearest pair, in the top 5 %
    ("b", "s2", "X", "h2", "a", 0.99, True),
    ("c", "s1", "Y", "h3", "d", 0.50, False),
    ("d", "s1", "Y", "h3", "c", 0.50, True),  # c and d: the same bytes
    *((f"e{i}", "s1", "Z", f"z{i}", "a", 0.10 + 0.01 * i, i % 2 == 0) for i in range(16)),
]


def test_candidates_are_near_neighbours_and_the_same_bytes():
    pairs = candidate_pairs(table(ROWS))
    assert pairs[["photo_a", "photo_b"]].values.tolist() == [["a", "b"], ["c", "d"]]
    assert pairs["cosine"].iloc[0] == pytest.approx(0.99) and np.isnan(pairs["cosine"].iloc[1])


def test_a_crop_and_resize_of_a_photo_matches_and_another_photo_does_not():
    photo = textured(1)
    crop = photo.crop((20, 15, 300, 225)).resize((200, 150), Image.BILINEAR)
    assert matched_keypoints(grey(photo), grey(crop)) >= 50  # MIN_INLIERS
    assert matched_keypoints(grey(photo), grey(textured(2))) < 20


def test_duplicates_are_confirmed_and_counted_out_of_the_top1():
    photos = {"a": textured(1), "b": textured(1).crop((10, 10, 310, 230)), "c": None, "d": None}
    found = find_duplicates(table(ROWS), photos.get)
    assert list(found.columns) == DUPLICATE_COLUMNS
    assert found[["photo_a", "photo_b", "how"]].values.tolist() == [
        ["a", "b", "the same photo, cropped or resized"],
        ["c", "d", "the same bytes"],  # not even loaded
    ]
    assert found["inliers"].iloc[0] >= 50 and found["inliers"].iloc[1] == -1
    effect = duplicate_effect(table(ROWS), found)
    # 20 photos, 11 right; without b (right) and d (right): 9 of 18
    assert (effect.photos, effect.duplicates, effect.accuracy, effect.accuracy_without) == (20, 2, 11 / 20, 9 / 18)
    assert duplicate_effect(table(ROWS), found, "s2").duplicates == 1
    different = {"a": textured(1), "b": textured(5)}
    assert find_duplicates(table(ROWS[:2]), different.get).empty  # neighbours, but not the same photo
