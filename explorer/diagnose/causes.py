"""Why each error most likely happened: every test the table can answer, run per photo, a photo may have several.

Each ``Cause`` is a polars expression over the table's columns and says which test gave it; a cause whose columns
a table lacks (an older table, a table without places or a scope rule) is not tested, and the dashboard says so.
The errors are the readable photos whose image-alone top-1 is wrong, plus, under "the place broke it", the photos
whose image alone was right and whose answer with the place is wrong. An error no test explains is "no cause found":
the tests are evidence, not a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import polars as pl

from explorer.diagnose.frames import IN_VOCAB, OK, ROW, View, as_lazy, as_text, columns, rows_at, to_pandas

LABEL_THRESHOLD = 0.5  # label_issue_score at or above it: "the label is probably wrong"
PAIR_MIN = 3  # a (truth, prediction) pair with at least this many errors in view is a known confused pair
SURROUNDINGS_SHARE = 0.5  # more than this share of the answer's map outside the organism: it rests on the surroundings
FLAG_FDR = 0.05  # clades recognised by their surroundings are flagged at this false discovery rate
SURROUNDINGS_MARGIN = 0.05  # blurring the surroundings costs the answer this much more than blurring the organism
ANY = "(every error)"
NO_CAUSE = "no cause found"


@dataclass(frozen=True)
class Cause:
    key: str  # column suffix: cause_<key>
    label: str  # what the page shows
    test: str  # which test gave it, in words
    needs: tuple[str, ...]  # the columns the test reads
    expr: Callable[[], pl.Expr]  # True where the test gives this cause (over the errors)


def _open_set() -> pl.Expr:
    return ~IN_VOCAB


def _out_of_scope() -> pl.Expr:
    return ~pl.col("in_scope").fill_null(True)


def _label() -> pl.Expr:
    return (pl.col("label_issue_score") >= LABEL_THRESHOLD).fill_null(False)


def _lookalike() -> pl.Expr:
    same_genus = pl.col("divergence_rank").cast(pl.String) == "species"
    pair = pl.len().over(pl.col("true_name").cast(pl.String), pl.col("pred_name").cast(pl.String)) >= PAIR_MIN
    return (IN_VOCAB & ~pl.col("correct_1") & (same_genus | pair)).fill_null(False)


def _atypical() -> pl.Expr:
    return (IN_VOCAB & (pl.col("novelty_score") < pl.col("novelty_threshold"))).fill_null(False)


SURROUNDINGS_COLUMNS = ("off_subject_share", "kept_without_subject", "p_without_subject", "p_without_surroundings")


def rests_on_surroundings() -> pl.Expr:
    """Per photo: the answer rests on the surroundings (the columns of explorer.diagnose.surroundings): more than
    ``SURROUNDINGS_SHARE`` of its map lies outside the organism, or it stays the answer with the organism blurred
    away, or blurring the surroundings costs its probability more than blurring the organism, by over
    ``SURROUNDINGS_MARGIN`` (two probabilities near 0 say nothing). Null where not measured."""
    costs = pl.col("p_without_subject").fill_nan(None) - pl.col("p_without_surroundings").fill_nan(None)
    needs_more = costs > SURROUNDINGS_MARGIN
    outside = pl.col("off_subject_share").fill_nan(None) > SURROUNDINGS_SHARE
    return outside | pl.col("kept_without_subject") | needs_more


def _surroundings() -> pl.Expr:
    return (IN_VOCAB & ~pl.col("correct_1") & rests_on_surroundings()).fill_null(False)


def _place_broke() -> pl.Expr:
    return (pl.col("correct_1") & ~pl.col("geo_correct_1")).fill_null(False)


CAUSES: tuple[Cause, ...] = (
    Cause("open_set", "unknown species", "the model has no class for the true species", ("in_vocab",), _open_set),
    Cause(
        "out_of_scope",
        "out of scope",
        "the scope check's score is under the model's threshold",
        ("in_scope",),
        _out_of_scope,
    ),
    Cause(
        "label",
        "label probably wrong",
        f"label_issue_score >= {LABEL_THRESHOLD}: the model and the photo's nearest neighbours give the label less "
        "than half its usual support, over species, genus, family and order",
        ("label_issue_score",),
        _label,
    ),
    Cause(
        "lookalike",
        "lookalike",
        f"the prediction is in the truth's genus, or (truth, prediction) has >= {PAIR_MIN} errors in view",
        ("divergence_rank", "true_name", "pred_name"),
        _lookalike,
    ),
    Cause(
        "atypical",
        "atypical photo",
        "the model's largest logit is under its novelty threshold: the photo looks unlike the species it knows, "
        "though the truth is one of them",
        ("novelty_score", "novelty_threshold", "in_vocab"),
        _atypical,
    ),
    Cause(
        "surroundings",
        "rests on the surroundings",
        f"more than {SURROUNDINGS_SHARE:.0%} of the wrong answer's Grad-CAM lies outside the organism (located by an "
        "ImageNet model), or the answer stays with the organism blurred away, or blurring the surroundings costs it "
        f"over {SURROUNDINGS_MARGIN * 100:.0f} points more than blurring the organism",
        SURROUNDINGS_COLUMNS,
        _surroundings,
    ),
    Cause(
        "place",
        "the place broke it",
        "the image alone was right; with the place (geo-prior) the answer is wrong",
        ("geo_correct_1",),
        _place_broke,
    ),
)
BY_LABEL = {c.label: c for c in CAUSES}
CAUSE_CHOICES = (ANY, *(c.label for c in CAUSES), NO_CAUSE)


def tested(view: View) -> tuple[Cause, ...]:
    """The causes the view's columns can answer."""
    have = set(columns(view))
    return tuple(c for c in CAUSES if set(c.needs) <= have)


def untested(view: View) -> tuple[Cause, ...]:
    have = {c.key for c in tested(view)}
    return tuple(c for c in CAUSES if c.key not in have)


def _error_set(causes: tuple[Cause, ...]) -> pl.Expr:
    wrong = ~pl.col("correct_1").fill_null(False)
    if any(c.key == "place" for c in causes):
        wrong |= _place_broke()
    return OK & wrong


def with_causes(view: View, extra: tuple[str, ...] = (), texts: bool = True) -> pl.DataFrame:
    """The view's errors (see the module's note): ``ROW``, the ``extra`` columns, a boolean ``cause_<key>`` per
    tested cause, ``image_error`` (the image-alone top-1 is wrong), ``no_cause`` and, with ``texts``, ``causes``
    (their labels, "; "-joined, or "no cause found"). One query; no Python loop over the rows."""
    causes = tested(view)
    flags = {f"cause_{c.key}": c.expr() for c in causes}
    lazy = as_lazy(view).filter(_error_set(causes))
    lazy = lazy.with_columns(image_error=~pl.col("correct_1").fill_null(False), **flags)
    none = ~pl.any_horizontal(*map(pl.col, flags)) if flags else pl.lit(True)
    lazy = lazy.with_columns(no_cause=none)
    names = [ROW, *extra, "image_error", *flags, "no_cause"]
    if texts:
        lazy = lazy.with_columns(_cause_texts(causes))
        names.append("causes")
    return lazy.select(names).collect()


def _cause_texts(causes: tuple[Cause, ...]) -> pl.Expr:
    """Each error's causes, "; "-joined in CAUSES' order, or "no cause found"."""
    if not causes:
        return pl.lit(NO_CAUSE).alias("causes")
    parts = [pl.when(pl.col(f"cause_{c.key}")).then(pl.lit(c.label)) for c in causes]
    joined = pl.concat_list(parts).list.drop_nulls().list.join("; ")
    return pl.when(pl.col("no_cause")).then(pl.lit(NO_CAUSE)).otherwise(joined).alias("causes")


def cause_mask(frame: pl.DataFrame, cause: str) -> pl.Series:
    """Which of ``with_causes``'s rows the gallery shows for ``cause`` (a label of ``CAUSE_CHOICES``): every
    image-alone error, those with the cause, or those with none."""
    if cause in (None, "", ANY):
        return frame["image_error"]
    if cause == NO_CAUSE:
        return frame["no_cause"]
    if cause not in BY_LABEL:
        raise ValueError(f"cause must be one of {CAUSE_CHOICES}, got {cause!r}")
    column = f"cause_{BY_LABEL[cause].key}"
    return frame[column] if column in frame.columns else pl.Series([False] * len(frame))


ORDERS = ("most confident first", "label most doubtful first")


def caused_errors(
    view: View, cause: str = ANY, order: str = ORDERS[0], limit: int | None = 200, only: list[str] | None = None
) -> pd.DataFrame:
    """The errors with ``cause`` (``CAUSE_CHOICES``), ordered (``ORDERS``: top-1 confidence, or label_issue_score
    with unscored photos last; ties in table order), at most ``limit``, with ``ROW`` and their ``causes``;
    ``only``: just these columns."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    key = "confidence" if order == ORDERS[0] or "label_issue_score" not in columns(view) else "label_issue_score"
    found = with_causes(view, extra=tuple(dict.fromkeys(["confidence", key])), texts=False)
    found = found.filter(cause_mask(found, cause))
    found = found.sort([pl.col(key).fill_nan(None), pl.col(ROW)], descending=[True, False], nulls_last=True)
    if limit is not None:
        found = found.head(limit)
    found = found.with_columns(_cause_texts(tested(view)))  # the words for the rows shown only
    names = None if only is None else list(dict.fromkeys([*only, ROW]))
    rows = rows_at(view, np.sort(found[ROW].to_numpy()), names)
    rows = found.select(ROW, "causes").join(
        rows.drop("causes", strict=False), on=ROW, how="left", maintain_order="left"
    )
    out = to_pandas(rows, keep_row=True)
    return out[[*(only if only is not None else [c for c in out.columns if c not in ("causes", ROW)]), "causes", ROW]]


def causes_by_clade(view: View, rank: str, top: int = 15, found: pl.DataFrame | None = None) -> pd.DataFrame:
    """Per true clade at ``rank`` (the ``top`` with the most errors): the errors, and how many have each tested
    cause and none (a photo with two causes counts under both). ``found``: ``with_causes(view, (true_rank,))``
    when already computed."""
    causes = tested(view)
    found = with_causes(view, extra=(f"true_{rank}",), texts=False) if found is None else found
    clade = pl.col(f"true_{rank}")
    counts = found.group_by(clade).agg(
        pl.len().alias("errors"),
        *(pl.col(f"cause_{c.key}").sum().alias(c.label) for c in causes),
        pl.col("no_cause").sum().alias(NO_CAUSE),
    )
    counts = as_text(counts, f"true_{rank}").rename({f"true_{rank}": rank})
    counts = counts.sort(["errors", rank], descending=[True, False], nulls_last=True).head(top)
    return counts.to_pandas()


def cause_totals(view: View, found: pl.DataFrame | None = None) -> pd.DataFrame:
    """Every tested cause's count over the view's errors (and "no cause found"), with the test that gives it."""
    causes = tested(view)
    found = with_causes(view, texts=False) if found is None else found
    sums = found.select(*(pl.col(f"cause_{c.key}").sum() for c in causes), pl.col("no_cause").sum()).row(0)
    rows = [{"cause": c.label, "errors": int(n), "test": c.test} for c, n in zip(causes, sums)]
    return pd.DataFrame([*rows, {"cause": NO_CAUSE, "errors": int(sums[-1]), "test": "none of the above"}])


def surroundings_by_clade(
    view: View, rank: str = "species", min_photos: int = 5, top: int | None = None
) -> pd.DataFrame:
    """The clades most often recognised by their surroundings: per true clade at ``rank`` with at least
    ``min_photos`` measured photos of known species (the dashboard's default), how many there are (``photos``:
    measured ones, with an ``off_subject_share``), the share whose answer rests on the
    surroundings (``rests_on_surroundings``, right or wrong), the mean ``off_subject_share``, ``off_subject_auc``
    (the chance that one of its photos has more of its map outside the organism than a photo of another clade: 0.5
    is no different), ``q_value``, the top-1 accuracy, and ``flagged``: its maps lie outside the organism more than
    the other clades' do, by a one-sided Mann-Whitney test of its photos' shares against every other measured
    photo's, with the false discovery rate over the clades tested held at ``FLAG_FDR`` (Benjamini-Hochberg).
    Strongest evidence first (q-value, then AUC, then name); every clade tested, or the ``top`` first. Empty when the
    table has no such columns."""
    names = ["photos", "rests_on_surroundings", "mean_off_subject_share", "off_subject_auc", "q_value"]
    names += ["top1_accuracy", "flagged"]
    if not set(SURROUNDINGS_COLUMNS) <= set(columns(view)):
        return pd.DataFrame(columns=[rank, *names])
    clade, share = pl.col(f"true_{rank}"), pl.col("off_subject_share")
    measured = OK & IN_VOCAB & share.fill_nan(None).is_not_null()
    photos = as_lazy(view).filter(measured).with_columns(share_rank=share.rank("average")).collect()
    ties = photos.group_by("off_subject_share").len()["len"].cast(pl.Float64).to_numpy()
    rests = rests_on_surroundings().fill_null(False).cast(pl.Float64)
    counts = photos.group_by(clade).agg(
        pl.len().alias("photos"),
        rests.mean().alias("rests_on_surroundings"),
        share.mean().alias("mean_off_subject_share"),
        pl.col("share_rank").sum().alias("rank_sum"),
        pl.col("correct_1").cast(pl.Float64).mean().alias("top1_accuracy"),
    )
    counts = counts.filter(pl.col("photos") >= min_photos)
    auc, p = mann_whitney_greater(
        counts["rank_sum"].to_numpy(), counts["photos"].to_numpy(), len(photos), float((ties**3 - ties).sum())
    )
    q = benjamini_hochberg(p)
    counts = counts.with_columns(off_subject_auc=pl.Series(auc), q_value=pl.Series(q), flagged=pl.Series(q < FLAG_FDR))
    counts = as_text(counts, f"true_{rank}").rename({f"true_{rank}": rank}).select(rank, *names)
    order = ["q_value", "off_subject_auc", rank]
    counts = counts.sort(order, descending=[False, True, False], nulls_last=True)
    return (counts if top is None else counts.head(top)).to_pandas()


def mann_whitney_greater(rank_sum, n, total: int, tie_term: float) -> tuple[np.ndarray, np.ndarray]:
    """(AUC, one-sided p) per group: are a group's values larger than the other ``total - n`` values? From the
    group's sum of ranks among all ``total`` values (average ranks for ties; ``tie_term``: the sum of t^3 - t over
    the tied groups), the normal approximation with the tie and continuity corrections (scipy's
    ``mannwhitneyu(..., alternative="greater", method="asymptotic")``). A group holding every value: AUC and p NaN."""
    rank_sum, n = np.asarray(rank_sum, np.float64), np.asarray(n, np.float64)
    rest = total - n
    with np.errstate(divide="ignore", invalid="ignore"):
        u = rank_sum - n * (n + 1) / 2
        auc = u / (n * rest)
        spread = np.sqrt(n * rest / 12 * ((total + 1) - tie_term / max(total * (total - 1), 1)))
        z = (u - n * rest / 2 - 0.5) / spread
    p = np.array([0.5 * math.erfc(v / math.sqrt(2)) if np.isfinite(v) else np.nan for v in z])
    return auc, p


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg's adjusted p-values (q-values) of ``p``, in its order; NaN stays NaN and is not counted."""
    p = np.asarray(p, np.float64)
    q = np.full(len(p), np.nan)
    tested = np.flatnonzero(np.isfinite(p))
    if len(tested):
        order = tested[np.argsort(p[tested], kind="stable")]
        scaled = p[order] * len(tested) / np.arange(1, len(tested) + 1)
        q[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return q
