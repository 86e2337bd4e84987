"""Calibration: reliability bins, ECE and the fitted temperature."""

import numpy as np
import pandas as pd
import pytest

from explorer.diagnose.calibration import fit_temperature, reliability
from explorer.diagnose.schema import LOGIT_COLUMNS


def test_reliability_and_temperature(hand_table):
    bins, ece = reliability(hand_table)
    # 5 readable in-vocabulary photos (the oak is out of vocabulary). Logits 3 vs -2 on 5 classes give photos 0, 2,
    # 3 and 5 the top-1 probability e^5 / (e^5 + 4) (bin 0.9-1.0; only photo 0 right); photo 1 (logits 3, 2, -2...)
    # gets e^5 / (e^5 + e^4 + 3) (bin 0.7-0.8; wrong).
    high, low = np.exp(5) / (np.exp(5) + 4), np.exp(5) / (np.exp(5) + np.exp(4) + 3)
    assert bins["photos"].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 0, 4]
    assert bins.loc[9, "accuracy"] == 0.25 and bins.loc[7, "accuracy"] == 0.0
    assert ece == pytest.approx((4 * abs(high - 0.25) + abs(low - 0.0)) / 5, abs=1e-9)
    assert fit_temperature(hand_table).held_out_photos == 0  # too few photos: says so instead of fitting noise


def test_temperature_fixes_overconfidence():
    rng = np.random.default_rng(0)
    n = 400
    logits = rng.normal(0, 1, (n, 20)) * 6  # sharp logits: over-confident
    logits.sort(axis=1)
    logits = logits[:, ::-1]
    true_is_top = rng.random(n) < 0.6
    rows = pd.DataFrame(
        {
            "photo_id": [f"p{i}" for i in range(n)],
            "status": "ok",
            "in_vocab": True,
            "true_logit": np.where(true_is_top, logits[:, 0], logits[:, 1]),
            "correct_1": true_is_top,
            "calibration_half": np.arange(n) % 2 == 0,
        }
    )
    for i, column in enumerate(LOGIT_COLUMNS):
        rows[column] = logits[:, i]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    rows["confidence"] = (probs / probs.sum(1, keepdims=True))[:, 0]
    fit = fit_temperature(rows)
    assert fit.temperature > 1.5 and fit.ece_after < fit.ece_before
