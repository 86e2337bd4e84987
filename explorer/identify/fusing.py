"""One organism in several photos (an observation): the photos' answers fused into one, and which photo carried
each fused suggestion.

The rule (``FUSION_RULE``) is chosen by what ``explorer-fusion`` measured on pseudo-observations built from each
shipped table's photos (docs/results/observations.md): the product of the photos' probabilities, renormalised (the
sum of their log-probabilities). A species must be plausible in every photo, and a photo that rules one out counts.
On three tables of four it was the most accurate rule (tied with the geometric mean, which ranks the same), on the
fourth one observation in 1,000 behind the mean; and on every table by far the best calibrated: the geometric mean,
the mean and the largest probability are all much less sure than they are right.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from explorer.identify.answer import (
    IdentifyJob,
    IdentifyResult,
    _checked_job,
    _predictions,
    _prior_summary,
    no_claim,
    rollup,
)
from explorer.models.classifier import Classifier

DISAGREE_RANK = 5  # a photo whose own answer ranks the fused top-1 below this disagrees (another organism?)
MAX_PHOTOS = 6  # photos of one observation (iNaturalist observations rarely have more; Pl@ntNet takes five)
FUSION_RULE = "product"
FUSION_RULES = {
    "product": "the sum of the photos' log-probabilities, renormalised (the product of their probabilities)",
    "geomean": "the mean of the photos' log-probabilities, renormalised (the geometric mean of their probabilities)",
    "mean": "the mean of the photos' probabilities",
    "max": "each species' largest probability over the photos, renormalised",
}


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-probabilities of (B, N) logits, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def fuse(log_probs: np.ndarray, rule: str = FUSION_RULE) -> np.ndarray:
    """(N,) probabilities of one organism from its photos' (B, N) log-probabilities, by ``rule``."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    if log_probs.ndim != 2 or len(log_probs) == 0:
        raise ValueError(f"fuse needs (photos, classes) log-probabilities, got shape {log_probs.shape}")
    if rule == "geomean":
        return np.exp(log_softmax(log_probs.mean(axis=0)))
    if rule == "product":
        return np.exp(log_softmax(log_probs.sum(axis=0)))
    if rule == "mean":
        return np.exp(log_probs).mean(axis=0)
    if rule == "max":
        best = np.exp(log_probs).max(axis=0)
        return best / best.sum()
    raise ValueError(f"unknown fusion rule {rule!r}; choose from {list(FUSION_RULES)}")


@dataclass(frozen=True)
class Contribution:
    """One photo's own say on one fused suggestion."""

    photo: int  # 0-based position in the observation
    probability: float  # the photo's own probability of the species (image alone)
    rank: int  # the species' rank in the photo's own answer (1 = its top suggestion)


@dataclass(frozen=True)
class FusedSuggestion:
    """A fused suggestion and each fused photo's part in it; ``carried_by``: the photo that gives it the largest
    probability of its own."""

    class_index: int
    contributions: tuple[Contribution, ...]
    carried_by: int


@dataclass(frozen=True)
class FusedAnswer:
    """The observation's answer: ``result`` as for one photo (suggestions, roll-up, prior), from the fused
    probabilities of the photos in ``fused`` (positions); ``suggestions`` say which photo carried each."""

    result: IdentifyResult
    fused: tuple[int, ...]
    suggestions: tuple[FusedSuggestion, ...]
    rule: str = FUSION_RULE
    disagreeing: tuple[int, ...] = ()  # fused photos that on their own rank the fused top-1 below DISAGREE_RANK


def fused_answer(
    classifier: Classifier, photos: list[IdentifyResult], job: IdentifyJob, fused: list[int], rule: str = FUSION_RULE
) -> FusedAnswer:
    """The answer of the photos at positions ``fused`` (those inside the model's scope; each result carries its
    logits) fused by ``rule``, then re-ranked by the job's place and prior once, as one photo is; the job's image
    is not read. No photo to fuse: an answer that names nothing."""
    if not fused:
        base = photos[0]
        text = "No photo of this observation is inside what the model knows, so nothing was fused."
        nothing = no_claim(base.rollup.probability, job.threshold, text)
        return FusedAnswer(replace(base, rollup=nothing, predictions=(), cams=base.cams[:0]), (), (), rule)
    log_probs = log_softmax(np.stack([photos[b].logits for b in fused]))  # (B, N)
    vision = fuse(log_probs, rule)
    select, scored = _checked_job(classifier, replace(job, cam_method=None))
    # the fused probabilities as logits (their logs): the job's softmax gives them back, then the prior re-ranks
    indices = select(_as_logits(vision))
    combined = scored["result"]
    result = IdentifyResult(
        model=classifier.name,
        predictions=tuple(_predictions(classifier, list(indices), combined)),
        rollup=rollup(classifier, combined.combined, job.threshold),
        cams=np.zeros((len(indices), 0, 0), np.float32),  # the maps are each photo's (the service makes them)
        cam_method=job.cam_method,
        notes=tuple(scored["notes"]),
        place=job.place,
        logits=scored["logits"],
        prior=_prior_summary(job.prior, scored["geo_used"], classifier),
    )
    own_rank = np.argsort(np.argsort(-log_probs, axis=1, kind="stable"), axis=1, kind="stable") + 1  # (B, N)
    suggestions = tuple(_suggestion(i, fused, log_probs, own_rank) for i in indices)
    top = indices[0] if indices else None
    disagreeing = () if top is None else tuple(b for row, b in enumerate(fused) if own_rank[row, top] > DISAGREE_RANK)
    return FusedAnswer(result, tuple(fused), suggestions, rule, disagreeing)


def _as_logits(probabilities: np.ndarray):
    import torch

    return torch.from_numpy(np.log(np.maximum(probabilities, 1e-300)))[None, :]


def _suggestion(index: int, fused: list[int], log_probs: np.ndarray, own_rank: np.ndarray) -> FusedSuggestion:
    own = np.exp(log_probs[:, index])
    contributions = tuple(
        Contribution(photo=b, probability=float(own[row]), rank=int(own_rank[row, index]))
        for row, b in enumerate(fused)
    )
    return FusedSuggestion(index, contributions, carried_by=fused[int(np.argmax(own))])
