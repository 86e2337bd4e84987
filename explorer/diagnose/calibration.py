"""Calibration from the stored logits: a temperature fitted on one half of the photos, the reliability diagram
and the expected calibration error on the other half. Arrays, not DataFrame copies, so a million rows stay fast."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import polars as pl

from explorer.diagnose.frames import IN_VOCAB, OK, ROW, View, arrays, narrowed, rows_at
from explorer.diagnose.schema import LOGIT_COLUMNS


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

    @cached_property
    def logits(self) -> np.ndarray:
        """(n, 20) float32, largest first (gathered once per subset)."""
        frame = rows_at(self.source, self.rows, list(LOGIT_COLUMNS))
        return frame.to_numpy().astype(np.float32, copy=False).reshape(-1, len(LOGIT_COLUMNS))

    @classmethod
    def from_table(cls, table: View) -> CalibrationData:
        keep = OK & IN_VOCAB
        needs = [keep, *map(pl.col, (*LOGIT_COLUMNS, "true_logit", "confidence", "correct_1", "calibration_half"))]
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
        )


def _tempered(data: CalibrationData, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, true-class log-prob) at a temperature, over the stored top logits plus the true logit.

    The tail beyond the stored top-20 logits is left out; it holds little probability at T near 1."""
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


def fit_temperature(table: View | CalibrationData) -> TemperatureFit:
    """Temperature minimising NLL on the fitting half; ECE before/after on the other (held-out) half."""
    data = table if isinstance(table, CalibrationData) else CalibrationData.from_table(table)
    if len(data.correct) < 10:
        return TemperatureFit(1.0, len(data.correct), 0, float("nan"), float("nan"))
    fitting = data.subset(_even_rows(data.fitting, MAX_FIT_ROWS))  # NLL is an average: a subsample does
    temperature = _newton_temperature(fitting)
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
    )


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
    if temperature != 1.0:  # re-softmaxing every row is the costly part; binned means need far fewer
        data = _even_subsample(data, MAX_ECE_ROWS)
    confidence = data.confidence if temperature == 1.0 else _tempered(data, temperature)[0]
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
