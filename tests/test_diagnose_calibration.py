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


def _full_softmax_table(n: int = 600, classes: int = 200, seed: int = 5) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A hand-built table of ``n`` photos over ``classes`` classes whose probability lies partly beyond the 20
    largest logits (a flat tail of 180 classes): the stored top logits and the exact columns, as
    build_eval_table stores them; with the full logits and the true classes to check against."""
    from explorer.diagnose.calibration import exact_calibration_columns

    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.0, (n, classes)).astype(np.float32)
    true = rng.integers(0, 5, n)  # the truth is among the first five classes ...
    logits[np.arange(n), true] += 3.5 * (rng.random(n) < 0.7)  # ... and usually stands out
    order = np.argsort(-logits, axis=1)
    rows = pd.DataFrame({"photo_id": [f"p{i}" for i in range(n)], "status": "ok", "in_vocab": True})
    for i, column in enumerate(LOGIT_COLUMNS):
        rows[column] = logits[np.arange(n), order[:, i]]
    rows["true_logit"] = logits[np.arange(n), true]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    rows["confidence"] = probs.max(1)
    rows["correct_1"] = order[:, 0] == true
    rows["calibration_half"] = np.arange(n) % 2 == 0
    exact = pd.DataFrame({k: v.astype(np.float32) for k, v in exact_calibration_columns(logits).items()})
    return pd.concat([rows, exact], axis=1), logits.astype(np.float64), true


def _full_nll(logits: np.ndarray, true: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    top = z.max(1)
    return float((top + np.log(np.exp(z - top[:, None]).sum(1)) - z[np.arange(len(z)), true]).mean())


def _ece(confidence: np.ndarray, correct: np.ndarray) -> float:
    index = np.minimum((confidence * 10).astype(int), 9)
    return sum(abs(confidence[index == b].sum() - correct[index == b].sum()) for b in range(10)) / len(confidence)


def test_temperature_over_all_logits_matches_a_full_softmax_fit():
    from explorer.diagnose.calibration import _golden_section

    table, logits, true = _full_softmax_table()
    half = table["calibration_half"].to_numpy()
    full_t = _golden_section(lambda log_t: _full_nll(logits[half], true[half], np.exp(log_t)), np.log(0.25), np.log(4))
    fit = fit_temperature(table)
    assert fit.exact and (fit.fit_photos, fit.held_out_photos) == (300, 300)
    assert fit.temperature == pytest.approx(full_t, abs=1e-3)  # the Hermite interpolation between grid points
    # both ECEs over the full softmax of the held-out half, at T = 1 and at the fitted T
    held, correct = logits[~half], table["correct_1"].to_numpy()[~half].astype(float)
    soft = lambda t: (lambda p: p.max(1) / p.sum(1))(np.exp(held / t - (held / t).max(1, keepdims=True)))  # noqa: E731
    assert fit.ece_before == pytest.approx(_ece(soft(1.0), correct), abs=1e-6)
    assert fit.ece_after == pytest.approx(_ece(soft(fit.temperature), correct), abs=1e-4)
    # a table from before (top 20 logits only): a different temperature, and it says so
    old = fit_temperature(table.drop(columns=[c for c in table.columns if c.startswith("top_nll") or "gap" in c]))
    assert not old.exact and abs(old.temperature - full_t) > 0.05


def test_calibration_text_says_when_the_table_is_from_before():
    from explorer.diagnose.calibration import TemperatureFit
    from explorer.diagnose.texts import OLD_TABLE_NOTE, calibration_markdown

    exact = calibration_markdown(TemperatureFit(0.78, 1847, 1808, 0.114, 0.031, exact=True))
    old = calibration_markdown(TemperatureFit(0.94, 1847, 1808, 0.041, 0.038, exact=False))
    assert "**T = 0.78**" in exact and OLD_TABLE_NOTE not in exact
    assert old.endswith(OLD_TABLE_NOTE)


@pytest.mark.parametrize(
    ("model", "temperature"),
    [("inat_bird", 0.779), ("inat_insect", 0.665), ("cub100_effnet_head", 0.797), ("cub100_effnet_taxsmooth", 0.402)],
)
def test_shipped_tables_fit_over_all_logits(model, temperature):
    """The shipped tables carry the exact columns; their temperatures are those a fit over all the logits gave
    (full-logit fits with tmp/full_logits from explorer.tools.calibration_columns: 0.7795, 0.6663, 0.7972, 0.4024)."""
    from conftest import ROOT

    from explorer.diagnose.schema import load_table

    fit = fit_temperature(load_table(ROOT / "assets" / "eval" / f"{model}.parquet"))
    assert fit.exact and fit.temperature == pytest.approx(temperature, abs=1e-3)


@pytest.mark.slow
@pytest.mark.shared_data
def test_shipped_insect_table_agrees_with_a_fit_on_recomputed_full_logits():
    """The model run again over the 145 Leeds photos (seconds): its full logits' best temperature within 0.02 of
    the one the table's columns give (the other tables take minutes each; the tool prints theirs)."""
    from conftest import ROOT

    from explorer.diagnose.calibration import _golden_section
    from explorer.diagnose.schema import load_table
    from explorer.settings import CORAL_DIR, DATA_DIR, Settings
    from explorer.tools.calibration_columns import full_logits

    table = load_table(ROOT / "assets" / "eval" / "inat_insect.parquet")
    settings = Settings(checkpoint_dir=ROOT / "checkpoints", model_dirs=(CORAL_DIR,), data_root=DATA_DIR)
    logits = full_logits(settings, table, "inat_insect").astype(np.float64)
    rows = (table["in_vocab"] & table["calibration_half"]).to_numpy()
    true = table["true_class_index"].to_numpy()[rows]
    full = _golden_section(lambda log_t: _full_nll(logits[rows], true, np.exp(log_t)), np.log(0.25), np.log(4))
    assert fit_temperature(table).temperature == pytest.approx(full, abs=0.02)


def test_the_table_stores_the_exact_columns_over_all_logits(hand_table):
    """Photo 0 of the hand table: logits 3 and four times -2, so at 1/T = beta, -log p(top-1) is
    log(1 + 4 e^(-5 beta)) and the top logit minus the mean logit is 5 * 4 e^(-5 beta) / (1 + 4 e^(-5 beta))."""
    from explorer.diagnose.schema import CALIBRATION_BETAS, TOP_GAP_COLUMNS, TOP_NLL_COLUMNS

    row = hand_table.iloc[0]
    for beta, nll, gap in zip(CALIBRATION_BETAS, TOP_NLL_COLUMNS, TOP_GAP_COLUMNS, strict=True):
        tail = 4 * np.exp(-5 * beta)
        assert row[nll] == pytest.approx(np.log1p(tail), rel=1e-6)
        assert row[gap] == pytest.approx(5 * tail / (1 + tail), rel=1e-6)
    assert CALIBRATION_BETAS[8] == 1.0 and np.exp(-row["top_nll_08"]) == pytest.approx(row["confidence"], rel=1e-6)


def test_the_extension_tool_adds_only_the_exact_columns():
    from explorer.diagnose.calibration import EXACT_COLUMNS
    from explorer.tools.calibration_columns import check_same_logits, extended

    logits = np.array([[3.0, 1.0, *[-1.0] * 20], [0.0] * 22], dtype=np.float32)  # 22 classes; photo 1 unreadable
    table = pd.DataFrame({"photo_id": ["a", "b"], "status": ["ok", "unreadable"], "true_logit": [3.0, np.nan]})
    for i, column in enumerate(LOGIT_COLUMNS):
        table[column] = np.sort(logits, axis=1)[:, ::-1][:, i]
    out = extended(table, logits)
    n = len(table.columns)
    assert list(out.columns[:n]) == list(table.columns) and sorted(out.columns[n:]) == sorted(EXACT_COLUMNS)
    pd.testing.assert_frame_equal(out[table.columns], table)
    # photo 0 at 1/T = 1: -log p(top-1) = log(1 + e^-2 + 20 e^-4); photo 1 unreadable: NaN
    assert out.loc[0, "top_nll_08"] == pytest.approx(np.log1p(np.exp(-2) + 20 * np.exp(-4)), rel=1e-6)
    assert out.loc[1, list(EXACT_COLUMNS)].isna().all()
    assert check_same_logits(table, logits, "m") == 0.0
    with pytest.raises(ValueError, match="recomputed logits differ from the table's by up to 0.5000"):
        check_same_logits(table, logits + np.float32(0.5), "m")
