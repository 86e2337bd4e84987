"""Is this photo inside what the model knows? Two checks, both from numbers the forward passes already produce.

1. **Scope** ("is this a bird at all?"). A species model's softmax only shares probability among its own
   classes, so a butterfly shown to the bird model can still get "class Aves, 100 %". The scope score says
   how much the photo looks like the model's subject. Its kind is chosen per model by ``explorer-scope`` from
   measured candidates (see SCORES), and so is its threshold, on one half of the labelled photos; the rates
   reported are measured on the other half.
2. **Known species** ("a bird, but one of the 964 this model knows?"): the open-set score is the model's
   largest species logit (max-logit, Hendrycks et al. 2022), with its own threshold.

A rule is a small JSON file per model (``checkpoints/scope/<model>.json``) holding the score kinds, the
thresholds, the normalisation constants and the figures that justify them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

# ImageNet-1k classes (0-based, without a background line) that are birds and insects: the gate's groups.
IMAGENET_GROUPS = {
    "bird": [*range(7, 25), *range(80, 101), *range(127, 147)],
    "insect": [*range(300, 327)],
}
GATE_MODEL = "efficientnet_lite0_imagenet"
SCORES = ("max_logit", "gate", "gate+max_logit")
KEEP_IN_SCOPE = 0.97  # the threshold keeps this share of the model's own labelled photos


@dataclass(frozen=True)
class ScopeRule:
    """How one model decides scope and known species; ``figures`` says what the choice was measured on."""

    model: str
    subject: str
    score: str  # one of SCORES
    threshold: float
    novelty_threshold: float | None = None  # max-logit below this: probably a species the model does not know
    mean: tuple[float, float] = (0.0, 0.0)  # max-logit and log-gate centring for "gate+max_logit"
    scale: tuple[float, float] = (1.0, 1.0)
    figures: dict = field(default_factory=dict)

    @property
    def needs_gate(self) -> bool:
        return "gate" in self.score


@dataclass(frozen=True)
class ScopeCheck:
    """The answer for one photo."""

    in_scope: bool
    score: float
    threshold: float
    explanation: str
    known_species: bool | None = None  # None: not judged (out of scope, or no open-set threshold)
    novelty_score: float | None = None
    novelty_threshold: float | None = None

    def as_json(self) -> dict:
        return asdict(self)


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def max_logit(logits: np.ndarray, background: int | None = None) -> np.ndarray:
    """(n,) the largest logit over the species classes (the background class left out)."""
    logits = np.atleast_2d(np.asarray(logits, dtype=np.float64))
    if background is not None:
        logits = np.delete(logits, background, axis=1)
    return logits.max(axis=1)


def gate_probability(imagenet_logits: np.ndarray, subject: str) -> np.ndarray:
    """(n,) the ImageNet model's summed probability of the subject's classes (birds, insects)."""
    logits = np.atleast_2d(np.asarray(imagenet_logits, dtype=np.float64))
    if subject not in IMAGENET_GROUPS:
        raise ValueError(f"the ImageNet gate knows {sorted(IMAGENET_GROUPS)}, not {subject!r}")
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted[:, IMAGENET_GROUPS[subject]].sum(axis=1) / shifted.sum(axis=1)


def scope_scores(kind: str, own: np.ndarray, gate: np.ndarray | None, mean=(0.0, 0.0), scale=(1.0, 1.0)):
    """(n,) scope score of a kind from the model's max-logit (``own``) and the gate's subject probability."""
    if kind == "max_logit":
        return np.asarray(own, dtype=np.float64)
    if gate is None:
        raise ValueError(f"a {kind!r} scope score needs the ImageNet gate's logits")
    log_gate = np.log(np.clip(np.asarray(gate, dtype=np.float64), 1e-12, 1.0))
    if kind == "gate":
        return log_gate
    if kind == "gate+max_logit":  # both standardised on the in-scope photos, then summed
        return (np.asarray(own) - mean[0]) / scale[0] + (log_gate - mean[1]) / scale[1]
    raise ValueError(f"unknown scope score {kind!r}; choose from {SCORES}")


def check_scope(rule: ScopeRule, logits: np.ndarray, background: int | None, imagenet_logits=None) -> ScopeCheck:
    """Scope and known-species verdict for one photo from its logits (and the gate's, when the rule uses it)."""
    own = max_logit(logits, background)
    gate = gate_probability(imagenet_logits, rule.subject) if rule.needs_gate else None
    score = float(scope_scores(rule.score, own, gate, rule.mean, rule.scale)[0])
    subject, a = rule.subject, article(rule.subject)
    evidence = f" (ImageNet's {subject} probability {gate[0]:.0%})" if rule.score == "gate" else ""
    if score < rule.threshold:
        why = f"This does not look like {a} {subject}{evidence}: this {subject} model can only name {subject}s."
        return ScopeCheck(False, score, rule.threshold, why)
    if rule.novelty_threshold is None:
        return ScopeCheck(True, score, rule.threshold, f"Looks like {a} {subject}{evidence}.")
    novelty = float(own[0])
    known = novelty >= rule.novelty_threshold
    why = (
        f"Looks like {a} {subject}{evidence}, and like one of the species the model knows."
        if known
        else f"Looks like {a} {subject}{evidence}, but probably not one of the species this model knows."
    )
    return ScopeCheck(True, score, rule.threshold, why, known, novelty, rule.novelty_threshold)


# Optional evaluation-table columns, present when the model had a scope rule at evaluation time.
SCOPE_SCHEMA: dict[str, str] = {
    "scope_kind": "the rule's scope score kind (max_logit, gate, gate+max_logit)",
    "scope_score": "the photo's scope score (NaN for an unreadable photo)",
    "scope_threshold": "the rule's threshold: a score below it is out of scope",
    "in_scope": "scope_score >= scope_threshold",
    "novelty_score": "the largest species logit (the open-set score)",
    "novelty_threshold": "below it: probably a species the model does not know (NaN: no open-set threshold)",
}


def scope_columns(rule: ScopeRule, logits: np.ndarray, background: int | None, imagenet_logits=None) -> dict:
    """SCOPE_SCHEMA columns for a batch of photos from their logits (and the gate's, when the rule uses it)."""
    own = max_logit(logits, background)
    if rule.needs_gate and imagenet_logits is None:
        raise ValueError(f"the scope rule of {rule.model} ({rule.score}) needs the ImageNet gate's logits")
    gate = gate_probability(imagenet_logits, rule.subject) if rule.needs_gate else None
    score = scope_scores(rule.score, own, gate, rule.mean, rule.scale)
    novelty = np.nan if rule.novelty_threshold is None else float(rule.novelty_threshold)
    return {
        "scope_kind": [rule.score] * len(own),
        "scope_score": score,
        "scope_threshold": np.full(len(own), float(rule.threshold)),
        "in_scope": score >= rule.threshold,
        "novelty_score": own,
        "novelty_threshold": np.full(len(own), novelty),
    }


def rule_path(checkpoint_dir: Path, model: str) -> Path:
    return Path(checkpoint_dir) / "scope" / f"{model}.json"


def save_rule(rule: ScopeRule, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(rule), indent=2) + "\n", encoding="utf-8")
    return path


def load_rule(path: Path) -> ScopeRule:
    """A rule file; ValueError naming what is wrong with it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        rule = ScopeRule(**{**data, "mean": tuple(data.get("mean", (0, 0))), "scale": tuple(data.get("scale", (1, 1)))})
    except (OSError, json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"{path}: not a scope rule ({err})") from err
    if rule.score not in SCORES:
        raise ValueError(f"{path}: unknown scope score {rule.score!r}; choose from {SCORES}")
    return rule


def auroc(positive: np.ndarray, negative: np.ndarray, presorted: bool = False) -> float:
    """Area under the ROC curve: the chance that a positive scores above a negative (ties count half).
    ``presorted``: both are sorted ascending already (no sort is done)."""
    positive, negative = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if not len(positive) or not len(negative):
        return float("nan")
    # Sort the larger side once and search the smaller one in it: per pair, 1 when the positive is above, 1/2 tied
    if len(negative) <= len(positive):
        ordered = positive if presorted else np.sort(positive)
        left, right = np.searchsorted(ordered, negative, "left"), np.searchsorted(ordered, negative, "right")
        wins = (len(ordered) - right).sum() + (right - left).sum() / 2
    else:
        ordered = negative if presorted else np.sort(negative)
        left, right = np.searchsorted(ordered, positive, "left"), np.searchsorted(ordered, positive, "right")
        wins = left.sum() + (right - left).sum() / 2
    return float(wins / (len(positive) * len(negative)))


def held_out_half(photo_ids) -> np.ndarray:
    """(n,) True for the photos that report figures, False for those that choose thresholds (a stable hash)."""
    import hashlib

    return np.array([hashlib.sha256(str(p).encode()).digest()[0] % 2 == 1 for p in photo_ids], dtype=bool)


@dataclass(frozen=True)
class Evidence:
    """Per-photo numbers for one model: its max-logit, the gate's subject probability (or None) and the ids."""

    own: np.ndarray
    gate: np.ndarray | None
    ids: list[str]
    sets: dict[str, int]  # photo set -> count, for the record

    def half(self, report: bool) -> Evidence:
        keep = held_out_half(self.ids) == report
        gate = None if self.gate is None else self.gate[keep]
        return Evidence(self.own[keep], gate, [i for i, k in zip(self.ids, keep) if k], self.sets)


def _rates(kind, inside: Evidence, outside: Evidence, threshold, mean, scale) -> dict:
    s_in = scope_scores(kind, inside.own, inside.gate, mean, scale)
    s_out = scope_scores(kind, outside.own, outside.gate, mean, scale)
    return {
        "auroc": round(auroc(s_in, s_out), 4),
        "in_scope_kept": round(float((s_in >= threshold).mean()), 4),
        "out_of_scope_accepted": round(float((s_out >= threshold).mean()), 4),
        "in_scope_photos": len(s_in),
        "out_of_scope_photos": len(s_out),
    }


def fit_rule(model: str, subject: str, inside: Evidence, outside: Evidence, known=None, unknown=None) -> ScopeRule:
    """Choose the scope score and threshold on the choosing half; report every candidate on the held-out half.

    The threshold keeps KEEP_IN_SCOPE of the choosing half's in-scope photos; the kind chosen is the one that
    accepts the fewest out-of-scope photos of the choosing half. ``known``/``unknown``: max-logits of in-scope
    photos whose species the model has / has not a class for, for the open-set threshold (keeps 95 % of known).
    """
    choose_in, choose_out = inside.half(False), outside.half(False)
    report_in, report_out = inside.half(True), outside.half(True)
    log_gate = None if inside.gate is None else np.log(np.clip(choose_in.gate, 1e-12, 1))
    mean = (float(choose_in.own.mean()), float(log_gate.mean()) if log_gate is not None else 0.0)
    gate_scale = (float(log_gate.std()) or 1.0) if log_gate is not None else 1.0
    scale = (float(choose_in.own.std()) or 1.0, gate_scale)
    candidates = {}
    for kind in SCORES if inside.gate is not None else ("max_logit",):
        threshold = float(
            np.quantile(scope_scores(kind, choose_in.own, choose_in.gate, mean, scale), 1 - KEEP_IN_SCOPE)
        )
        chosen_on = _rates(kind, choose_in, choose_out, threshold, mean, scale)
        candidates[kind] = {
            "threshold": threshold,
            "choosing_half": chosen_on,
            "held_out_half": _rates(kind, report_in, report_out, threshold, mean, scale),
        }
    best = min(
        candidates,
        key=lambda k: (
            candidates[k]["choosing_half"]["out_of_scope_accepted"],
            -candidates[k]["choosing_half"]["auroc"],
        ),
    )
    figures = {
        "chosen": best,
        "candidates": candidates,
        "in_scope_sets": inside.sets,
        "out_of_scope_sets": outside.sets,
        # the held-out out-of-scope photos' scores: the dashboard draws the trade-off from them
        "held_out_out_of_scope_scores": [
            round(float(v), 4) for v in np.sort(scope_scores(best, report_out.own, report_out.gate, mean, scale))
        ],
    }
    novelty = None
    if known is not None and unknown is not None and len(unknown.own) and _both_halves(known):
        novelty, figures["open_set"] = _fit_novelty(known, unknown)
    return ScopeRule(model, subject, best, candidates[best]["threshold"], novelty, mean, scale, figures)


def _both_halves(evidence: Evidence) -> bool:
    """Photos in the choosing half and in the held-out half (an open-set threshold needs both)."""
    return bool(len(evidence.half(False).own) and len(evidence.half(True).own))


def _fit_novelty(known: Evidence, unknown: Evidence, keep: float = 0.95) -> tuple[float, dict]:
    threshold = float(np.quantile(known.half(False).own, 1 - keep))
    k, u = known.half(True).own, unknown.half(True).own
    return threshold, {
        "auroc": round(auroc(k, u), 4),
        "known_kept": round(float((k >= threshold).mean()), 4),
        "unknown_flagged": round(float((u < threshold).mean()), 4),
        "known_photos": len(k),
        "unknown_photos": len(u),
        "sets": {**known.sets, **{f"unknown: {s}": n for s, n in unknown.sets.items()}},
    }
