"""Where the model goes wrong, from the evaluation table alone: DataFrame in, DataFrame or plotly figure out.

Every function takes the (filtered) table and never re-runs a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from explorer.evaluate import LOGIT_COLUMNS, ROLLUP_RANKS
from explorer.taxonomy import RANKS

DIVERGENCE_ORDER = [
    "correct",
    "species",
    "genus",
    "family",
    "order",
    "class",
    "phylum",
    "kingdom",
    "no prediction",
    "unknown",
]
UNKNOWN = "(unknown)"
OUTCOMES = ("all", "correct", "incorrect")


@dataclass(frozen=True)
class Filters:
    """What every chart obeys."""

    clade_rank: str | None = None
    clade_name: str | None = None
    min_confidence: float = 0.0
    max_confidence: float = 1.0
    outcome: str = "all"
    exclude_noted: bool = False
    in_vocab_only: bool = False


UNUSED_COLUMNS = ("topk_class_index", "topk_name", "topk_prob")  # per-photo lists: slow to copy, never shown


def for_dashboard(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the dashboard keeps it in memory: without the per-photo top-k lists, which every filter
    would otherwise copy (a third of a second at a million rows) and no chart reads."""
    return table.drop(columns=[c for c in UNUSED_COLUMNS if c in table.columns])


def filter_table(table: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    """Rows that pass the filters (readable photos only); the input is not modified."""
    if filters.outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {filters.outcome!r}")
    if filters.clade_rank is not None and filters.clade_rank not in RANKS:
        raise ValueError(f"clade rank must be one of {RANKS}, got {filters.clade_rank!r}")
    if filters.min_confidence > filters.max_confidence:
        raise ValueError(f"confidence range is empty: {filters.min_confidence} > {filters.max_confidence}")
    keep = (table["status"] == "ok") & table["confidence"].between(filters.min_confidence, filters.max_confidence)
    if filters.clade_rank and filters.clade_name:
        keep &= table[f"true_{filters.clade_rank}"] == filters.clade_name
    if filters.outcome != "all":
        keep &= table["correct_1"] == (filters.outcome == "correct")
    if filters.exclude_noted:
        keep &= table["note"].isna() | (table["note"] == "")
    if filters.in_vocab_only:
        keep &= table["in_vocab"]
    return table[keep]


def summary(table: pd.DataFrame) -> dict:
    """Counts and headline accuracies of a table."""
    ok = (table["status"] == "ok").to_numpy()
    in_vocab = ok & table["in_vocab"].to_numpy(dtype=bool)
    noted = table["note"].notna().to_numpy() & (table["note"] != "").to_numpy()
    correct_1, correct_k = table["correct_1"].to_numpy(dtype=bool), table["correct_k"].to_numpy(dtype=bool)
    return {
        "photos": len(table),
        "readable": int(ok.sum()),
        "unreadable": int((~ok).sum()),
        "out_of_vocabulary": int((ok & ~in_vocab).sum()),
        "species": int(table["true_name"][ok].nunique()),
        "noted": int((ok & noted).sum()),
        "top1": float(correct_1[in_vocab].mean()) if in_vocab.any() else float("nan"),
        "topk": float(correct_k[in_vocab].mean()) if in_vocab.any() else float("nan"),
    }


def errors_by_rank(table: pd.DataFrame) -> pd.DataFrame:
    """Photos per rank of divergence (the blog's histogram), as a share of all photos and of errors."""
    counts = table["divergence_rank"].value_counts().reindex(DIVERGENCE_ORDER, fill_value=0)
    errors = counts.drop("correct").sum()
    return pd.DataFrame(
        {
            "rank": counts.index,
            "photos": counts.to_numpy(),
            "share_of_photos": counts.to_numpy() / max(len(table), 1),
            "share_of_errors": np.where(counts.index == "correct", np.nan, counts.to_numpy() / max(errors, 1)),
        }
    ).reset_index(drop=True)


def wilson_interval(correct: np.ndarray, total: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """95 % Wilson score interval for k successes in n trials (sane for small n, unlike k/n ± ...)."""
    k, n = np.asarray(correct, float), np.asarray(total, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def accuracy_by_clade(table: pd.DataFrame, rank: str, min_photos: int = 1) -> pd.DataFrame:
    """Top-1 accuracy per clade at ``rank`` with a Wilson interval, best first by the interval's lower bound
    (so a clade with 3 lucky photos does not top the list)."""
    grouped = table.groupby(f"true_{rank}", observed=True, dropna=False)["correct_1"].agg(["sum", "count"])
    grouped = grouped[grouped["count"] >= max(min_photos, 1)]
    grouped.index = [UNKNOWN if pd.isna(v) else str(v) for v in grouped.index]
    low, high = wilson_interval(grouped["sum"].to_numpy(), grouped["count"].to_numpy())
    out = pd.DataFrame(
        {
            "clade": grouped.index,
            "photos": grouped["count"].to_numpy(),
            "correct": grouped["sum"].astype(int).to_numpy(),
            "accuracy": (grouped["sum"] / grouped["count"]).to_numpy(),
            "ci_low": low,
            "ci_high": high,
        }
    )
    return out.sort_values(["ci_low", "photos"], ascending=[False, False]).reset_index(drop=True)


def worst_clades(table: pd.DataFrame, rank: str, min_photos: int = 5, n: int = 3) -> pd.DataFrame:
    """The n clades whose accuracy interval's upper bound is lowest (surely bad, not just unlucky)."""
    ranked = accuracy_by_clade(table, rank, min_photos)
    return ranked.sort_values(["ci_high", "photos"], ascending=[True, False]).head(n).reset_index(drop=True)


def confused_pairs(table: pd.DataFrame, top: int = 15) -> pd.DataFrame:
    """The most frequent (truth, top-1) pairs among errors, with the rank at which they diverge."""
    errors = table[~table["correct_1"] & table["in_vocab"]]
    if errors.empty:
        return pd.DataFrame(columns=["true_name", "pred_name", "photos", "divergence_rank", "share_of_errors"])
    pairs = errors.groupby(["true_name", "pred_name", "divergence_rank"], observed=True).size()
    pairs = pairs[pairs > 0].nlargest(top, keep="first").rename("photos").reset_index()
    pairs = pairs.astype({"true_name": str, "pred_name": str, "divergence_rank": str})
    pairs = pairs.sort_values(["photos", "true_name", "pred_name"], ascending=[False, True, True])
    pairs["share_of_errors"] = pairs["photos"] / len(errors)
    return pairs.reset_index(drop=True)


@dataclass(frozen=True)
class CalibrationData:
    """The columns calibration needs, as arrays, for readable photos of known species (no DataFrame copies).

    The (n, 20) logits are gathered only when asked for, and only for the rows kept: a temperature is fitted on
    at most 10 k rows and its ECE taken on at most 50 k, so a million-row view never copies 20 full columns."""

    logit_columns: tuple[np.ndarray, ...]  # the stored top logits, full-length arrays of the source
    rows: np.ndarray  # (n,) indices of these photos in those arrays
    true_logit: np.ndarray  # (n,)
    confidence: np.ndarray  # (n,) top-1 probability as stored
    correct: np.ndarray  # (n,) bool
    fitting: np.ndarray  # (n,) bool: the half used to fit a temperature

    @cached_property
    def logits(self) -> np.ndarray:
        """(n, 20) float32, largest first (gathered once per subset)."""
        return np.column_stack([c[self.rows] for c in self.logit_columns]).reshape(-1, len(self.logit_columns))

    @classmethod
    def from_table(cls, table: pd.DataFrame) -> CalibrationData:
        keep = ((table["status"] == "ok") & table["in_vocab"]).to_numpy(dtype=bool)
        column = lambda name, dtype: table[name].to_numpy(dtype=dtype)[keep]  # noqa: E731
        return cls(
            tuple(table[c].to_numpy(dtype=np.float32) for c in LOGIT_COLUMNS),
            np.flatnonzero(keep),
            column("true_logit", np.float32),
            column("confidence", np.float64),
            column("correct_1", bool),
            column("calibration_half", bool),
        )

    def subset(self, mask: np.ndarray) -> CalibrationData:
        return CalibrationData(
            self.logit_columns,
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


def fit_temperature(table: pd.DataFrame | CalibrationData) -> dict:
    """Temperature minimising NLL on the fitting half; ECE before/after on the other (held-out) half."""
    data = table if isinstance(table, CalibrationData) else CalibrationData.from_table(table)
    if len(data.correct) < 10:
        return {
            "temperature": 1.0,
            "fit_photos": len(data.correct),
            "held_out_photos": 0,
            "ece_before": float("nan"),
            "ece_after": float("nan"),
        }
    fitting = data.subset(_even_rows(data.fitting, MAX_FIT_ROWS))  # NLL is an average: a subsample does
    temperature = _golden_section(
        lambda log_t: -_tempered(fitting, float(np.exp(log_t)))[1].mean(), np.log(0.25), np.log(4.0)
    )
    sample = data.subset(_even_rows(~data.fitting, MAX_ECE_ROWS))  # ECE is binned means: 50 k pin it to ~0.005
    return {
        "temperature": temperature,
        "fit_photos": int(data.fitting.sum()),
        "held_out_photos": int((~data.fitting).sum()),
        "ece_before": reliability(sample, 1.0)[1],
        "ece_after": reliability(sample, temperature)[1],
    }


def _even_rows(mask: np.ndarray, limit: int) -> np.ndarray:
    """Indices of every k-th True row of ``mask`` so that at most ``limit`` remain (same rows as
    _even_subsample of the masked data)."""
    rows = np.flatnonzero(mask)
    return rows if len(rows) <= limit else rows[:: -(-len(rows) // limit)]


def _even_subsample(data: CalibrationData, limit: int) -> CalibrationData:
    """Every k-th row so that at most ``limit`` remain (deterministic; the data has no order to bias it)."""
    n = len(data.correct)
    return data if n <= limit else data.subset(np.arange(n) % -(-n // limit) == 0)


MAX_FIT_ROWS = 10_000
MAX_ECE_ROWS = 50_000


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


def reliability(
    table: pd.DataFrame | CalibrationData, temperature: float = 1.0, bins: int = 10
) -> tuple[pd.DataFrame, float]:
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


def rollup_tradeoff(table: pd.DataFrame, thresholds=None) -> pd.DataFrame:
    """As the roll-up threshold moves: how often an answer is given at each rank, how often it is right,
    and how often the model abstains (no clade reaches the threshold)."""
    thresholds = np.round(np.arange(0.5, 1.0, 0.05), 2) if thresholds is None else np.asarray(thresholds, float)
    ok = (table["status"] == "ok").to_numpy()
    ranks = ["species", *ROLLUP_RANKS]
    species = np.where(table["pred_is_background"].to_numpy(dtype=bool), 0.0, table["confidence"].to_numpy(float))
    probs = [species] + [table[f"rollup_prob_{r}"].to_numpy(float) for r in ROLLUP_RANKS]
    right = [table["correct_1"].to_numpy(bool)] + [table[f"rollup_correct_{r}"].to_numpy(bool) for r in ROLLUP_RANKS]
    if not ok.all():
        probs, right = [p[ok] for p in probs], [r[ok] for r in right]
    order = np.argsort(thresholds)
    sorted_t = thresholds[order]
    n = int(ok.sum())
    # The answer is the first rank whose probability reaches t. With a running maximum over the ranks that is
    # "every lower rank < t <= this rank", so each count below is a count of values at or above t.
    shares, correct = {}, np.zeros(len(sorted_t))
    reach_before = np.full(n, -np.inf)
    answered_before = np.zeros(len(sorted_t))
    slots_before = np.zeros(n, dtype=np.int64)  # thresholds reached by the lower ranks (none yet)
    for rank, prob, good in zip(ranks, probs, right):
        reach = np.maximum(reach_before, prob)
        slots = np.searchsorted(sorted_t, reach, side="right")  # how many thresholds the reach passes
        answered = _count_slots(slots, len(sorted_t))  # answered at this rank or a lower one
        shares[f"at_{rank}"] = (answered - answered_before) / max(n, 1)
        # right at this rank: the truth is in this rank's clade, for thresholds passed here and not below
        correct += _count_slots(slots, len(sorted_t), good) - _count_slots(slots_before, len(sorted_t), good)
        reach_before, answered_before, slots_before = reach, answered, slots
    out = pd.DataFrame(
        {
            "threshold": sorted_t,
            "answered": answered_before / max(n, 1),
            "abstained": 1 - answered_before / max(n, 1),
            "right_when_answered": correct / np.maximum(answered_before, 1),
            **shares,
        }
    )
    if n == 0:
        out.loc[:, out.columns != "threshold"] = np.nan
    return out.iloc[np.argsort(order)].reset_index(drop=True)


def _count_slots(slots: np.ndarray, thresholds: int, weights: np.ndarray | None = None) -> np.ndarray:
    """For each sorted threshold j, how many values reach it (slot > j), optionally counting only ``weights``."""
    counts = np.bincount(slots, weights=weights, minlength=thresholds + 1)
    return counts[::-1].cumsum()[::-1][1:]


def compare_models(a: pd.DataFrame, b: pd.DataFrame, rank: str = "family") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-clade accuracy of two models on the photos both saw, and the photos where their top-1 differ."""
    keys = ["photo_id", "true_name", f"true_{rank}", "correct_1", "pred_name", "confidence", "path"]
    a, b = (t[keys].astype({"true_name": str, f"true_{rank}": object, "pred_name": str}) for t in (a, b))
    both = a.merge(b, on=["photo_id", "true_name", f"true_{rank}", "path"], suffixes=("_a", "_b"))
    clades = both[f"true_{rank}"].fillna(UNKNOWN)
    per = both.groupby(clades)[["correct_1_a", "correct_1_b"]].agg(["mean", "count"])
    per = pd.DataFrame(
        {
            "clade": per.index,
            "photos": per[("correct_1_a", "count")].to_numpy(),
            "accuracy_a": per[("correct_1_a", "mean")].to_numpy(),
            "accuracy_b": per[("correct_1_b", "mean")].to_numpy(),
        }
    )
    per["difference"] = per["accuracy_b"] - per["accuracy_a"]
    disagree = both[both["pred_name_a"] != both["pred_name_b"]]
    return per.sort_values("difference").reset_index(drop=True), disagree.reset_index(drop=True)


# ---- figures: DataFrames in, plotly figures out ---------------------------------------------------------------


def plot_errors_by_rank(counts: pd.DataFrame):
    import plotly.graph_objects as go

    errors = counts[counts["rank"] != "correct"]
    fig = go.Figure(
        go.Bar(
            x=errors["rank"],
            y=errors["share_of_photos"],
            customdata=errors[["photos", "share_of_errors"]],
            hovertemplate="%{x}: %{customdata[0]} photos<br>%{y:.1%} of photos, "
            "%{customdata[1]:.1%} of errors<extra></extra>",
        )
    )
    fig.update_layout(
        title="Where the top-1 prediction leaves the truth",
        yaxis_tickformat=".0%",
        xaxis_title="first rank that differs",
        yaxis_title="share of photos",
        height=360,
        margin={"t": 50, "b": 40, "l": 50, "r": 10},
    )
    return fig


def clade_tree(table: pd.DataFrame, ranks=("class", "order", "family", "genus")) -> pd.DataFrame:
    """Nested clades (ids 'Aves/Passeriformes/...') with photo counts and top-1 accuracy, for the sunburst.

    One groupby at the deepest rank; the coarser rings are sums of that small result."""
    keys = [f"true_{r}" for r in ranks]
    leaves = table.groupby(keys, observed=True, dropna=False)["correct_1"].agg(["sum", "count"]).reset_index()
    leaves = leaves[leaves["count"] > 0]
    names = leaves[keys].astype(object).where(leaves[keys].notna(), UNKNOWN).astype(str)
    names[["sum", "count"]] = leaves[["sum", "count"]].to_numpy()
    parts = []
    for depth in range(len(keys)):
        level = names.groupby(keys[: depth + 1], sort=True)[["sum", "count"]].sum().reset_index()
        ids = level[keys[: depth + 1]].agg("/".join, axis=1) if len(level) else pd.Series([], dtype=str)
        parents = level[keys[:depth]].agg("/".join, axis=1) if depth and len(level) else ""
        parts.append(
            pd.DataFrame(
                {
                    "id": ids,
                    "label": level[keys[depth]],
                    "parent": parents,
                    "photos": level["count"],
                    "accuracy": level["sum"] / level["count"],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def plot_clade_sunburst(table: pd.DataFrame, ranks=("class", "order", "family", "genus")):
    """Drill-down: sized by photos, coloured by top-1 accuracy (click a wedge to zoom in)."""
    import plotly.graph_objects as go

    tree = clade_tree(table, ranks)
    if tree.empty:
        tree = pd.DataFrame({"id": [], "label": [], "parent": [], "photos": [], "accuracy": []})
    fig = go.Figure(
        go.Sunburst(
            ids=tree["id"],
            labels=tree["label"],
            parents=tree["parent"],
            values=tree["photos"],
            branchvalues="total",
            marker={
                "colors": tree["accuracy"],
                "colorscale": "RdYlGn",
                "cmin": 0,
                "cmax": 1,
                "colorbar": {"title": "top-1"},
            },
            hovertemplate="%{label}: %{value} photos, top-1 %{color:.0%}<extra></extra>",
        )
    )
    fig.update_layout(
        title="Accuracy per clade (class → order → family → genus)",
        height=520,
        margin={"t": 50, "b": 10, "l": 10, "r": 10},
    )
    return fig


def plot_reliability(bins: pd.DataFrame, ece: float, calibrated: pd.DataFrame | None = None, temperature: float = 1.0):
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"}, name="perfect"))
    fig.add_trace(
        go.Scatter(
            x=bins["confidence"],
            y=bins["accuracy"],
            mode="lines+markers",
            name=f"as trained (ECE {ece:.3f})",
            customdata=bins["photos"],
            hovertemplate="confidence %{x:.2f}: accuracy %{y:.2f} (%{customdata} photos)",
        )
    )
    if calibrated is not None:
        fig.add_trace(
            go.Scatter(
                x=calibrated[0]["confidence"],
                y=calibrated[0]["accuracy"],
                mode="lines+markers",
                name=f"temperature {temperature:.2f} (ECE {calibrated[1]:.3f})",
            )
        )
    fig.update_layout(
        title="Calibration: reliability diagram",
        xaxis_title="top-1 confidence",
        yaxis_title="top-1 accuracy",
        height=380,
        xaxis_range=[0, 1],
        yaxis_range=[0, 1],
        margin={"t": 50, "b": 40, "l": 50, "r": 10},
        legend={"x": 0.02, "y": 0.98},
    )
    return fig


def plot_rollup_tradeoff(tradeoff: pd.DataFrame):
    import plotly.graph_objects as go

    fig = go.Figure()
    for rank in ["species", *ROLLUP_RANKS]:
        fig.add_trace(go.Bar(x=tradeoff["threshold"], y=tradeoff[f"at_{rank}"], name=f"answered at {rank}"))
    fig.add_trace(go.Bar(x=tradeoff["threshold"], y=tradeoff["abstained"], name="abstained", marker_color="lightgrey"))
    fig.add_trace(
        go.Scatter(
            x=tradeoff["threshold"],
            y=tradeoff["right_when_answered"],
            name="right when answered",
            mode="lines+markers",
            line={"color": "black"},
        )
    )
    fig.update_layout(
        barmode="stack",
        title="'Not sure' roll-up: threshold vs rank of the answer and accuracy",
        xaxis_title="threshold (summed probability)",
        yaxis_tickformat=".0%",
        height=400,
        margin={"t": 50, "b": 40, "l": 50, "r": 10},
    )
    return fig


def plot_model_comparison(per_clade: pd.DataFrame, name_a: str, name_b: str, top: int = 25):
    import plotly.graph_objects as go

    shown = pd.concat([per_clade.head(top // 2), per_clade.tail(top - top // 2)]).drop_duplicates("clade")
    fig = go.Figure(
        go.Bar(
            x=shown["difference"],
            y=shown["clade"],
            orientation="h",
            customdata=shown["photos"],
            hovertemplate="%{y}: %{x:+.1%} (%{customdata} photos)<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Top-1 accuracy per clade: {name_b} minus {name_a} (shared photos)",
        xaxis_tickformat="+.0%",
        height=max(300, 18 * len(shown) + 80),
        margin={"t": 50, "b": 40, "l": 160, "r": 10},
    )
    return fig


def error_rows(table: pd.DataFrame, limit: int | None = 200) -> pd.DataFrame:
    """Errors (readable photos, wrong top-1), the most confident first: the ones worth a look."""
    errors = table[(table["status"] == "ok") & ~table["correct_1"]]
    if limit is not None:
        errors = errors.nlargest(limit, "confidence", keep="first")
    return errors.sort_values("confidence", ascending=False, kind="stable").reset_index(drop=True)


# ---- the geo-prior: what a place changed --------------------------------------------------------------------

GEO_KINDS = ("fixed", "broke", "changed")


def has_geo(table: pd.DataFrame) -> bool:
    """The table was built with places and a geo-prior (evaluate.GEO_SCHEMA columns)."""
    return {"lat", "geo_correct_1", "geo_pred_class_index"} <= set(table.columns)


def _placed(table: pd.DataFrame) -> np.ndarray:
    """Mask of readable, in-vocabulary photos that had a place: the only ones the prior could act on."""
    return (
        (table["status"] == "ok").to_numpy(bool)
        & table["in_vocab"].to_numpy(bool)
        & ~np.isnan(table["lat"].to_numpy(float))
    )


def _geo_outcomes(table: pd.DataFrame, placed: np.ndarray) -> dict[str, np.ndarray]:
    before, after = table["correct_1"].to_numpy(bool), table["geo_correct_1"].to_numpy(bool)
    changed = table["geo_pred_class_index"].to_numpy() != table["pred_class_index"].to_numpy()
    return {
        "fixed": placed & ~before & after,
        "broke": placed & before & ~after,
        "changed": placed & changed,
        "before": placed & before,
        "after": placed & after,
    }


def geo_effect(table: pd.DataFrame) -> dict:
    """Top-1 with and without the prior on photos with a place, and how often it fixed / broke / changed it."""
    placed = _placed(table)
    outcome = _geo_outcomes(table, placed)
    n = int(placed.sum())
    readable = int(((table["status"] == "ok").to_numpy(bool) & table["in_vocab"].to_numpy(bool)).sum())
    sources = table["location_source"][placed].value_counts() if n else pd.Series(dtype=int)
    return {
        "photos_with_place": n,
        "photos_without_place": readable - n,
        "top1_vision": float(outcome["before"].sum() / n) if n else float("nan"),
        "top1_geo": float(outcome["after"].sum() / n) if n else float("nan"),
        "changed": int(outcome["changed"].sum()),
        "fixed": int(outcome["fixed"].sum()),
        "broke": int(outcome["broke"].sum()),
        "wrong_to_other_wrong": int((outcome["changed"] & ~outcome["before"] & ~outcome["after"]).sum()),
        "location_sources": {str(k): int(v) for k, v in sources.items() if v},
    }


def geo_effect_by_clade(table: pd.DataFrame, rank: str, min_photos: int = 1) -> pd.DataFrame:
    """Per true clade at ``rank``: photos with a place, how many the prior fixed and broke (not only the net),
    and top-1 without and with it; the clades where it did most first."""
    placed = _placed(table)
    columns = ["clade", "photos", "fixed", "broke", "net", "top1_vision", "top1_geo"]
    if not placed.any():
        return pd.DataFrame(columns=columns)
    outcome = _geo_outcomes(table, placed)
    clade = table[f"true_{rank}"]
    if not isinstance(clade.dtype, pd.CategoricalDtype):
        clade = clade.astype("category")
    codes = clade.cat.codes.to_numpy() + 1  # 0: unknown clade
    names = np.array([UNKNOWN, *map(str, clade.cat.categories)], dtype=object)
    count = lambda mask: np.bincount(codes[mask], minlength=len(names))  # noqa: E731
    photos = count(placed)
    keep = photos >= max(min_photos, 1)
    fixed, broke = count(outcome["fixed"])[keep], count(outcome["broke"])[keep]
    out = pd.DataFrame(
        {
            "clade": names[keep],
            "photos": photos[keep],
            "fixed": fixed,
            "broke": broke,
            "net": fixed - broke,
            "top1_vision": count(outcome["before"])[keep] / photos[keep],
            "top1_geo": count(outcome["after"])[keep] / photos[keep],
        }
    )
    activity = out["fixed"] + out["broke"]
    return (
        out.assign(_a=activity).sort_values(["_a", "photos"], ascending=False).drop(columns="_a").reset_index(drop=True)
    )


def geo_rows(
    table: pd.DataFrame, kind: str, rank: str | None = None, clade: str | None = None, limit: int = 200
) -> pd.DataFrame:
    """The photos behind a count: those the prior fixed, broke, or changed (optionally in one true clade)."""
    if kind not in GEO_KINDS:
        raise ValueError(f"kind must be one of {GEO_KINDS}, got {kind!r}")
    keep = _geo_outcomes(table, _placed(table))[kind]
    if rank and clade is not None:
        column = table[f"true_{rank}"]
        keep &= column.isna().to_numpy() if clade == UNKNOWN else (column == clade).to_numpy(bool)
    return table.iloc[np.flatnonzero(keep)[:limit]].reset_index(drop=True)
