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


def test_newtons_temperature_is_the_nll_minimum_the_golden_search_finds():
    from explorer.diagnose.calibration import CalibrationData, _golden_section, _newton_temperature, _tempered

    rng = np.random.default_rng(3)
    n = 2000
    logits = np.sort(rng.normal(0, 1, (n, 20)) * 4, axis=1)[:, ::-1].astype(np.float32)
    pick = rng.integers(0, 3, n)  # the truth is the top, second or third logit, or (1 in 10) none of the 20
    true = np.where(rng.random(n) < 0.1, logits[:, -1] - 1, logits[np.arange(n), pick]).astype(np.float32)
    data = CalibrationData(None, np.arange(n), true, logits[:, 0], pick == 0, np.ones(n, bool))
    data.__dict__["logits"] = logits  # the cached property, without a source frame to gather from
    nll = lambda t: -_tempered(data, t)[1].mean()  # noqa: E731
    newton = _newton_temperature(data)
    golden = _golden_section(lambda log_t: nll(float(np.exp(log_t))), np.log(0.25), np.log(4.0))
    assert newton == pytest.approx(golden, rel=2e-4)
    assert nll(newton) <= min(nll(newton * 1.001), nll(newton / 1.001))  # a minimum
    flat = CalibrationData(
        None, np.arange(3), np.zeros(3, np.float32), np.full(3, 0.05), np.ones(3, bool), np.ones(3, bool)
    )
    flat.__dict__["logits"] = np.zeros((3, 20), np.float32)
    assert _newton_temperature(flat) is None  # no curvature: fit_temperature falls back to the search
