"""Calibration from the stored logits: a temperature fitted on one half of the photos, the reliability diagram
and the expected calibration error on the other half. Arrays, not DataFrame copies, so a million rows stay fast.

Exact over all the logits when the table has the ``top_nll_KK`` / ``top_gap_KK`` columns (each photo's top-1
negative log-probability over ALL logits, and its derivative, at 17 inverse temperatures 1/T = 2^(k/4), k = -8..8;
``exact_calibration_columns``): between grid points a cubic Hermite interpolation (value and slope at both ends),
so the NLL, its minimum and each photo's tempered confidence come from the full softmax. Why this and not the full
logits: 34 float32 per photo (the shipped 4,109-photo ``inat_bird`` table grew from 1.5 to 2.3 MB) where its 965
logits would be 15 MB, and the fit reads means over photos, so it costs no more than before. Tables from before hold
only the 20 largest logits: the fit then uses a softmax over those (plus the true logit), which leaves out the
tail (a median 7.5 % of the probability on ``inat_bird``'s in-vocabulary photos: T 0.93 there against 0.78 over
all logits), and says so (``TemperatureFit.exact``). Either way the ECE before and after come from the same softmax."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import polars as pl

from explorer.diagnose.frames import IN_VOCAB, OK, ROW, View, arrays, columns, narrowed, rows_at
from explorer.diagnose.schema import CALIBRATION_BETAS, LOGIT_COLUMNS, TOP_GAP_COLUMNS, TOP_NLL_COLUMNS

EXACT_COLUMNS = (*TOP_NLL_COLUMNS, *TOP_GAP_COLUMNS)
BETAS = np.array(CALIBRATION_BETAS)


def exact_calibration_columns(logits: np.ndarray) -> dict[str, np.ndarray]:
    """Per photo, at each inverse temperature beta of the grid: -log p(top-1) = log sum_i exp(beta (z_i - z_top))
    over ALL the logits, and z_top - E_p[z], minus its derivative in beta (float64; the table stores float32).

    Args:
        logits: (n, classes) the model's logits.

    Returns:
        {column name: (n,) array} for ``EXACT_COLUMNS``.
    """
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)  # (n, C), every value <= 0: exp never overflows
    out = {}
    for beta, nll, gap in zip(CALIBRATION_BETAS, TOP_NLL_COLUMNS, TOP_GAP_COLUMNS, strict=True):
        p = np.exp(beta * z)  # (n, C) unnormalised, the top one 1
        total = p.sum(axis=1)
        out[nll] = np.log(total)
        out[gap] = -(p * z).sum(axis=1) / total
    return out


@dataclass(frozen=True)
class ExactArrays:
    """The exact-calibration columns of some photos: (n,) top logit, (n, K) -log p(top-1) and its minus-slope."""

    top_logit: np.ndarray
    top_nll: np.ndarray
    top_gap: np.ndarray


def _hermite(values: np.ndarray, slopes: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Cubic Hermite interpolation at ``beta`` of (n, K) values with their (n, K) slopes on the grid BETAS: the
    (n,) value and slope there (clamped to the grid's ends)."""
    beta = min(max(beta, BETAS[0]), BETAS[-1])
    j = int(np.clip(np.searchsorted(BETAS, beta, side="right"), 1, len(BETAS) - 1))
    a, width = BETAS[j - 1], BETAS[j] - BETAS[j - 1]
    t = (beta - a) / width
    y0, y1, m0, m1 = values[:, j - 1], values[:, j], slopes[:, j - 1] * width, slopes[:, j] * width
    value = (
        (2 * t**3 - 3 * t**2 + 1) * y0 + (t**3 - 2 * t**2 + t) * m0 + (3 * t**2 - 2 * t**3) * y1 + (t**3 - t**2) * m1
    )
    slope = (6 * t**2 - 6 * t) * (y0 - y1) + (3 * t**2 - 4 * t + 1) * m0 + (3 * t**2 - 2 * t) * m1
    return value, slope / width


@dataclass(frozen=True)
class CalibrationData:
    """The columns calibration needs, as arrays, for readable photos of known species.

    The (n, 20) logits are gathered only when asked for, and only for the rows kept: a temperature is fitted on
    at most 10 k rows and its ECE taken on at most 50 k, so a million-row view never copies 20 full columns."""

    source: View  # the view these photos come from, with their stored top logits
    rows: np.ndarray  # (n,) these photos' positions in the whole table (frames.ROW), ascending
    true_logit: np.ndarray  # (n,)
    confidence: np.ndarray  # (n,) top-1 probability as stored
    correct: np.ndarray  # (n,) bool
    fitting: np.ndarray  # (n,) bool: the half used to fit a temperature
    exact: bool = False  # the source has the exact-calibration columns (over all logits)

    @cached_property
    def exact_arrays(self) -> ExactArrays:
        """The exact-calibration columns of these rows (gathered once per subset)."""
        frame = rows_at(self.source, self.rows, ["top_logit_00", *EXACT_COLUMNS])
        values = frame.to_numpy().astype(np.float64)
        k = len(BETAS)
        return ExactArrays(values[:, 0], values[:, 1 : 1 + k], values[:, 1 + k :])

    @cached_property
    def logits(self) -> np.ndarray:
        """(n, 20) float32, largest first (gathered once per subset)."""
        frame = rows_at(self.source, self.rows, list(LOGIT_COLUMNS))
        return frame.to_numpy().astype(np.float32, copy=False).reshape(-1, len(LOGIT_COLUMNS))

    @classmethod
    def from_table(cls, table: View) -> CalibrationData:
        keep = OK & IN_VOCAB
        exact = set(EXACT_COLUMNS) <= set(columns(table))
        stored = (*LOGIT_COLUMNS, *(EXACT_COLUMNS if exact else ()))
        needs = [keep, *map(pl.col, (*stored, "true_logit", "confidence", "correct_1", "calibration_half"))]
        source = narrowed(table, keep, needs)
        values = arrays(
            source,
            rows=pl.col(ROW),
            true_logit=pl.col("true_logit").cast(pl.Float32),
            confidence=pl.col("confidence").cast(pl.Float64),
            correct=pl.col("correct_1"),
            fitting=pl.col("calibration_half"),
        )
        return cls(
            source,
            values["rows"],
            values["true_logit"],
            values["confidence"],
            values["correct"].astype(bool),
            values["fitting"].astype(bool),
            exact,
        )

    def subset(self, mask: np.ndarray | slice) -> CalibrationData:
        """The rows at ``mask`` (a boolean mask, indices, or a slice)."""
        return CalibrationData(
            self.source,
            self.rows[mask],
            self.true_logit[mask],
            self.confidence[mask],
            self.correct[mask],
            self.fitting[mask],
            self.exact,
        )


def _tempered(data: CalibrationData, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, true-class log-prob) at a temperature: over all logits when the table has the exact columns,
    else over the stored top logits plus the true logit (the tail beyond them left out)."""
    if data.exact:
        exact, beta = data.exact_arrays, 1.0 / temperature
        top_nll = _hermite(exact.top_nll, -exact.top_gap, beta)[0]  # (n,)
        return np.exp(-top_nll), -(top_nll + beta * (exact.top_logit - data.true_logit))
    logits = data.logits / np.float32(temperature)  # (n, 20)
    true = data.true_logit / np.float32(temperature)
    in_top = (np.abs(logits - true[:, None]) <= 1e-6 * np.maximum(1.0, np.abs(true[:, None]))).any(axis=1)
    extra = np.where(in_top, -np.inf, true).astype(np.float32)
    top = logits[:, 0]
    total = np.exp(logits - top[:, None]).sum(axis=1) + np.exp(extra - top)
    log_norm = top + np.log(total)
    return np.exp(logits[:, 0] - log_norm).astype(np.float64), (true - log_norm).astype(np.float64)


@dataclass(frozen=True)
class TemperatureFit:
    """A temperature fitted on one half of the photos, and the ECE before/after on the other (held-out) half."""

    temperature: float
    fit_photos: int
    held_out_photos: int
    ece_before: float
    ece_after: float
    exact: bool = True  # over all logits; False: over the 20 stored top logits (a table from before)


def fit_temperature(table: View | CalibrationData) -> TemperatureFit:
    """Temperature minimising NLL on the fitting half; ECE before/after on the other (held-out) half."""
    data = table if isinstance(table, CalibrationData) else CalibrationData.from_table(table)
    if len(data.correct) < 10:
        return TemperatureFit(1.0, len(data.correct), 0, float("nan"), float("nan"), data.exact)
    fitting = data.subset(_even_rows(data.fitting, MAX_FIT_ROWS))  # NLL is an average: a subsample does
    temperature = _exact_temperature(fitting) if data.exact else _newton_temperature(fitting)
    if temperature is None:  # no finite curvature (e.g. every row's logits equal): the plain search
        temperature = _golden_section(
            lambda log_t: -_tempered(fitting, float(np.exp(log_t)))[1].mean(), np.log(LOW_T), np.log(HIGH_T)
        )
    sample = data.subset(_even_rows(~data.fitting, MAX_ECE_ROWS))  # ECE is binned means: 50 k pin it to ~0.005
    return TemperatureFit(
        temperature,
        int(data.fitting.sum()),
        int((~data.fitting).sum()),
        reliability(sample, 1.0)[1],
        reliability(sample, temperature)[1],
        data.exact,
    )


def _exact_temperature(data: CalibrationData) -> float:
    """The temperature minimising the mean NLL over all logits. The NLL is convex in beta = 1/T and a sum over
    photos, so its grid values and slopes are means of the columns; between the two grid points where the slope
    changes sign, the root of the Hermite cubic's slope by bisection. At a grid end when the minimum lies beyond."""
    exact = data.exact_arrays
    offset = float((exact.top_logit - data.true_logit).mean())  # NLL = -log p(top) + beta (z_top - z_true)
    values = (exact.top_nll.mean(axis=0) + BETAS * offset)[None, :]  # (1, K)
    slopes = (offset - exact.top_gap.mean(axis=0))[None, :]
    rising = np.flatnonzero(slopes[0] >= 0)
    if len(rising) == 0 or rising[0] == 0:
        return float(1 / BETAS[-1] if len(rising) == 0 else 1 / BETAS[0])
    low, high = BETAS[rising[0] - 1], BETAS[rising[0]]
    for _ in range(50):  # the interval shrinks to ~1e-16 of the grid step
        middle = (low + high) / 2
        low, high = (middle, high) if _hermite(values, slopes, middle)[1][0] < 0 else (low, middle)
    return float(2 / (low + high))


def _even_rows(mask: np.ndarray, limit: int) -> np.ndarray:
    """Indices of every k-th True row of ``mask`` so that at most ``limit`` remain (same rows as
    _even_subsample of the masked data)."""
    rows = np.flatnonzero(mask)
    return rows if len(rows) <= limit else rows[:: -(-len(rows) // limit)]


def _even_slice(n: int, limit: int) -> slice:
    """Every k-th of n rows so that at most ``limit`` remain."""
    return slice(None, None, max(1, -(-n // limit)))


def _even_subsample(data: CalibrationData, limit: int) -> CalibrationData:
    """Every k-th row so that at most ``limit`` remain (deterministic; the data has no order to bias it)."""
    n = len(data.correct)
    return data if n <= limit else data.subset(_even_slice(n, limit))


MAX_FIT_ROWS = 10_000
MAX_ECE_ROWS = 50_000


LOW_T, HIGH_T = 0.25, 4.0  # the temperatures searched


def _newton_temperature(data: CalibrationData, steps: int = 30) -> float | None:
    """The temperature minimising the mean NLL, by Newton's method on beta = 1/T, in which the NLL is convex:
    NLL' = mean(E_p[z] - z_true) and NLL'' = mean(Var_p[z]), over each row's stored top logits plus its true
    logit (when not among them). A handful of steps where the golden-section search took 27 evaluations. None
    when the curvature is not positive and finite."""
    logits = data.logits
    true = data.true_logit
    in_top = (np.abs(logits - true[:, None]) <= 1e-6 * np.maximum(1.0, np.abs(true[:, None]))).any(axis=1)
    # shifted by each row's top logit (changes neither its probabilities nor E_p[z] - z_true): every value <= 0,
    # so exp never overflows; the true logit is one extra column, weighted 0 when it is among the top ones already
    z = np.concatenate([logits, true[:, None]], axis=1, dtype=np.float32) - logits[:, :1]
    extra = (~in_top).astype(np.float32)
    true = (true - logits[:, 0]).astype(np.float64)
    beta = 1.0
    for _ in range(steps):
        p = np.exp(np.float32(beta) * z)
        p[:, -1] *= extra
        total = p.sum(axis=1, dtype=np.float64)
        pz = p * z
        mean = pz.sum(axis=1, dtype=np.float64) / total
        gradient = float((mean - true).mean())
        curvature = float(((pz * z).sum(axis=1, dtype=np.float64) / total - mean * mean).mean())
        if not (np.isfinite(curvature) and curvature > 0 and np.isfinite(gradient)):
            return None
        step = gradient / curvature
        beta = min(max(beta - step, 1 / HIGH_T), 1 / LOW_T)
        if abs(step) < 1e-7:  # float32 logits: nothing finer is meaningful
            break
    return float(1 / beta)


def _golden_section(loss, low: float, high: float, steps: int = 25) -> float:
    """exp of the argmin of a unimodal loss on [low, high] (the NLL is convex in 1/T)."""
    ratio = (np.sqrt(5) - 1) / 2
    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = loss(c), loss(d)
    for _ in range(steps):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = loss(d)
    return float(np.exp((a + b) / 2))


def reliability(table: View | CalibrationData, temperature: float = 1.0, bins: int = 10) -> tuple[pd.DataFrame, float]:
    """Reliability diagram bins (mean confidence, accuracy, photos) and the expected calibration error."""
    data = table if isinstance(table, CalibrationData) else CalibrationData.from_table(table)
    # the stored confidence is the full softmax's: used as it is only when a tempered one is over all logits too,
    # so that before and after come from the same softmax (a table from before: both over its top logits)
    stored = temperature == 1.0 and data.exact
    if not stored:  # re-softmaxing every row is the costly part; binned means need far fewer
        data = _even_subsample(data, MAX_ECE_ROWS)
    confidence = data.confidence if stored else _tempered(data, temperature)[0]
    correct = data.correct.astype(float)
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    count = np.bincount(index, minlength=bins)
    conf_sum = np.bincount(index, weights=confidence, minlength=bins)
    acc_sum = np.bincount(index, weights=correct, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        frame = pd.DataFrame(
            {
                "bin_low": np.arange(bins) / bins,
                "bin_high": np.arange(1, bins + 1) / bins,
                "confidence": conf_sum / count,
                "accuracy": acc_sum / count,
                "photos": count,
            }
        )
    ece = float(np.nansum(np.abs(frame["confidence"] - frame["accuracy"]) * count) / max(count.sum(), 1))
    return frame, ece
