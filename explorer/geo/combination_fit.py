"""How the image and the place are combined, fitted on one half of the placed photos and reported on the other.

A rule is the geo-prior's factor per species: max(presence, floor) raised to an exponent (the plain product is
exponent 1, floor 0.01), or a species list (presence at least a threshold: factor 1; below: the floor, as
BirdNET's location filter). The grid below is searched on the fitting half for the most net fixes (fixed minus
broke against the image alone); ties go to the gentlest rule (the smallest exponent, then the largest floor). When
no rule fixes more than it breaks on the fitting half, the fit is the image alone. The held-out half then says
what each rule does to photos it was not chosen on. An oracle bound beside it: among the image's top five, only
species recorded in the photo's 1° cell (every eBird record there is), re-ranked by the image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from explorer.geo.combine import GEO_FLOOR, combine_many

EXPONENTS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
FLOORS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
THRESHOLDS = (0.01, 0.03, 0.05, 0.1, 0.2, 0.3)
LIST_FLOORS = (0.01, 0.03, 0.1, 0.3, 0.5)
ORACLE_TOP = 5
VAGRANTS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)  # image probabilities tried for keeping an out-of-range species


@dataclass(frozen=True)
class Rule:
    """How one prior's presence scores weigh on the image's probabilities."""

    exponent: float = 1.0
    floor: float = GEO_FLOOR
    threshold: float | None = None  # a value: a species list at that presence
    vagrant: float | None = None  # a species the image gives at least this keeps the place's best factor

    @property
    def text(self) -> str:
        if self.threshold is not None:
            text = f"species list: presence ≥ {self.threshold:g} keeps the image's probability, below × {self.floor:g}"
        else:
            text = f"image × max(presence, {self.floor:g})^{self.exponent:g}"
        return text if self.vagrant is None else f"{text}; a species the image gives ≥ {self.vagrant:.0%} is kept"

    def as_json(self) -> dict:
        return {**asdict(self), "text": self.text}


def rules_grid() -> list[Rule]:
    """Every rule the fit tries: the weighted products, then the species lists."""
    products = [Rule(e, f) for e in EXPONENTS for f in FLOORS]
    return products + [Rule(1.0, f, t) for t in THRESHOLDS for f in LIST_FLOORS]


def top1(vision: np.ndarray, scores: np.ndarray, alignment: np.ndarray, known: np.ndarray, rule: Rule | None):
    """(n,) each photo's top class under ``rule`` (None: the image alone)."""
    if rule is None:
        return np.argmax(vision, axis=1)
    combined = combine_many(vision, scores, alignment, known, rule.floor, rule.threshold, rule.exponent, rule.vagrant)
    return np.argmax(combined, axis=1)


def outcome(predicted: np.ndarray, alone: np.ndarray, truth: np.ndarray) -> dict:
    """Top-1 right, and against the image alone: fixed (wrong -> right) and broke (right -> wrong)."""
    right, was = predicted == truth, alone == truth
    return {
        "photos": int(len(truth)),
        "correct": int(right.sum()),
        "top1": round(float(right.mean()), 4) if len(truth) else None,
        "fixed": int((right & ~was).sum()),
        "broke": int((~right & was).sum()),
    }


def _gentleness(rule: Rule) -> tuple:
    return (rule.threshold is not None, rule.exponent, -rule.floor, rule.threshold or 0.0)


def fit_rule(vision, scores, alignment, known, truth, rules: list[Rule] | None = None) -> tuple[Rule | None, dict]:
    """The rule with the most net fixes on these photos (ties: the gentlest), with its outcome; None (the image
    alone) when none fixes more than it breaks."""
    alone = np.argmax(vision, axis=1)
    best, best_net, best_outcome = None, 0, outcome(alone, alone, truth)
    for rule in sorted(rules or rules_grid(), key=_gentleness):
        found = outcome(top1(vision, scores, alignment, known, rule), alone, truth)
        net = found["fixed"] - found["broke"]
        if net > best_net:
            best, best_net, best_outcome = rule, net, found
    return best, best_outcome


def oracle_top1(vision: np.ndarray, recorded: list[set], class_taxa: np.ndarray, top: int = ORACLE_TOP) -> np.ndarray:
    """(n,) the image's best class among its top ``top`` whose taxon (``class_taxa``: the class's taxon id, -1
    none) was recorded in the photo's cell (``recorded``: a set of taxon ids per photo); the image's top-1 when
    none of them was."""
    order = np.argsort(-vision, axis=1, kind="stable")[:, :top]
    picks = order[:, 0].copy()
    for n, (candidates, seen) in enumerate(zip(order, recorded)):
        kept = [c for c in candidates if class_taxa[c] >= 0 and int(class_taxa[c]) in seen]
        if kept:
            picks[n] = kept[0]
    return picks


def cell_of(lat: np.ndarray, lon: np.ndarray, degrees: float = 1.0) -> np.ndarray:
    """(n, 2) integer cell of each place."""
    return np.stack([np.floor(np.asarray(lat) / degrees), np.floor(np.asarray(lon) / degrees)], axis=1).astype(int)


def vagrant_grid(vision, scores, alignment, known, truth, rule: Rule, fitting: np.ndarray) -> tuple[Rule, list]:
    """The fitted rule with the vagrant threshold that nets most on the fitting half (ties: the lowest, which
    shows the most out-of-range species; none when every threshold nets less than no exemption), and each
    threshold's held-out outcome, with ``hidden_without``: the held-out photos whose true species the image gave
    at least that much, right on the image alone, that the rule without the exemption took from the top."""
    from dataclasses import replace

    alone, held = np.argmax(vision, axis=1), ~fitting
    plain = top1(vision, scores, alignment, known, rule)
    base = outcome(plain[fitting], alone[fitting], truth[fitting])
    true_p = vision[np.arange(len(truth)), truth]
    nets, rows = {}, []
    for v in VAGRANTS:
        picks = top1(vision, scores, alignment, known, replace(rule, vagrant=v))
        fit = outcome(picks[fitting], alone[fitting], truth[fitting])
        nets[v] = fit["fixed"] - fit["broke"]
        hidden = int(((true_p >= v) & (plain != truth) & (alone == truth) & held).sum())
        rows.append({"vagrant": v, **outcome(picks[held], alone[held], truth[held]), "hidden_without": hidden})
    top = max(nets.values())
    if top < base["fixed"] - base["broke"]:
        return rule, rows
    return replace(rule, vagrant=min(v for v, net in nets.items() if net == top)), rows
