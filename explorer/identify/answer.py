"""Identify: top-k species with lineage, a "not sure" roll-up to the lowest confident clade, and a CAM
for every suggestion, all from one forward pass."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from explorer.cam.gradcam import (
    BATCHED_METHODS,
    FAST_METHOD,
    METHODS,
    REFERENCE_METHODS,
    cams_from_capture,
    reference_cams,
)
from explorer.geo.combine import BoundPrior, Combined, combine
from explorer.identify.provenance import headline_provenance, suggestion_provenance
from explorer.identify.scope_check import ScopeCheck, article
from explorer.models.classifier import Classifier
from explorer.photos.places import Place
from explorer.taxa.taxonomy import RANKS

DEFAULT_THRESHOLD = 0.78  # iNaturalist's production roll-up threshold (a summed score)
MAX_TOP_K = 20
NO_INFORMATION = 0.25  # below this best presence score, the prior knows nothing about the place
STRONG_VISION = 0.3  # a suggestion this likely on the image alone, but out of range, is flagged


@dataclass(frozen=True)
class Prediction:
    class_index: int
    scientific_name: str
    common_name: str
    lineage: dict[str, str | None]
    resolved_rank: str | None
    taxon_id: int | None
    probability: float
    is_background: bool = False
    note: str = ""
    vision_probability: float | None = None  # the classifier alone (probability is vision x geo when a place is given)
    geo_score: float | None = None  # the prior's presence score at the place (None: no place, or taxon unknown)
    vision_rank: int | None = None  # rank by the classifier alone, to show what the place changed
    out_of_range: bool = False  # the image says yes, the prior says this taxon is not known there
    kept_unusual: bool = False  # out of range, but the image is sure enough that the place did not demote it


@dataclass(frozen=True)
class Rollup:
    """The answer at the rank the evidence supports: a species, a clade, nothing found, or no decision."""

    rank: str | None  # "species", "genus", ... ; None when nothing passes the threshold
    name: str | None
    probability: float
    threshold: float
    confident_species: bool
    text: str


@dataclass(frozen=True)
class RankAnswer:
    """One rank's own head (on the embedding) beside the species head at that rank, image alone."""

    rank: str
    head_name: str  # what the rank's own head says
    head_probability: float
    rollup_name: str | None  # the species head's clade with the largest summed probability at this rank
    rollup_probability: float
    top1_name: str | None  # the clade of the species head's top-1 species (None: top-1 is "nothing found")
    consistent: bool  # the rank head agrees with the top-1 species' clade


@dataclass(frozen=True)
class PriorSummary:
    """The geo-prior an identification offered, as the API's JSON reports it."""

    name: str
    label: str
    credit: str
    used: bool  # the place re-ranked the suggestions with it (False: no place, or no information there)
    covers: str  # how many of the model's species it knows, e.g. "884 of 964 classes"
    rule: str = ""  # how it weighs on the image (fitted by explorer-fit-prior, or the plain rule)

    def as_json(self) -> dict:
        """The API's ``prior`` object: name, label, credit, used, covers, rule."""
        return asdict(self)


@dataclass(frozen=True)
class IdentifyResult:
    """One identification, built once: a later step (the scope check, the router's note, the service's notes)
    makes a new one with ``dataclasses.replace``."""

    model: str
    predictions: tuple[Prediction, ...]
    rollup: Rollup
    cams: np.ndarray  # (k, h, w) in [0, 1]; explorer.cam.gradcam.scale_cams upsamples like pytorch-grad-cam
    cam_method: str | None
    notes: tuple[str, ...] = ()
    place: Place | None = None
    logits: np.ndarray | None = None  # (N,) the model's raw outputs, for the scope check
    scope: ScopeCheck | None = None  # is the photo inside what the model knows (None: the model has no rule)
    routed_from: str | None = None  # "auto" when the model was chosen for this photo
    routing: str = ""  # which model was chosen and why
    embedding: np.ndarray | None = None  # (D,) the pooled pre-logit features, from the same forward pass
    rank_answers: tuple[RankAnswer, ...] = ()  # per-rank heads, when the card has them
    prior: PriorSummary | None = None  # the geo-prior offered (None: the model has none, or it was switched off)


@dataclass(frozen=True)
class IdentifyJob:
    """One photo to identify and how (``identify``'s arguments); jobs identified together share a CAM method."""

    image: object  # an RGB PIL image
    top_k: int = 5
    threshold: float = DEFAULT_THRESHOLD
    cam_method: str | None = FAST_METHOD
    place: Place | None = None
    prior: BoundPrior | None = None


def identify(
    classifier: Classifier,
    image,
    top_k: int = 5,
    threshold: float = DEFAULT_THRESHOLD,
    cam_method: str | None = FAST_METHOD,
    place: Place | None = None,
    prior: BoundPrior | None = None,
) -> IdentifyResult:
    """Top-k suggestions, roll-up, CAMs, the embedding and the rank heads' answers for one RGB PIL image, from one
    forward pass; with a place and a prior, ranked on vision x geo (both reported). ``cam_method=None``: no CAMs."""
    return identify_many(classifier, [IdentifyJob(image, top_k, threshold, cam_method, place, prior)])[0]


def identify_many(classifier: Classifier, jobs: list[IdentifyJob]) -> list[IdentifyResult]:
    """``identify`` for several photos from one batched forward pass (and one batched backward for the CAMs where
    the model needs one): each photo's answer is its own (eval mode), equal to one-at-a-time up to float rounding.
    The jobs share one CAM method; everything else (top-k, threshold, place, prior) is per photo. Raises
    ValueError for a job's impossible top-k, threshold or CAM method before any model runs."""
    methods = {job.cam_method for job in jobs}
    if len(methods) != 1:
        raise ValueError(f"photos identified together share one CAM method, got {sorted(map(str, methods))}")
    cam_method = methods.pop()
    checked = [_checked_job(classifier, job) for job in jobs]
    x = torch.cat([classifier.preprocess(job.image) for job in jobs])  # (B, 3, S, S)
    selects = [select for select, _scored in checked]
    heads_in = classifier.rank_heads_input()  # None: the rank heads read the embedding (or there are none)
    with classifier.embedding_capture() as embedding, heads_in or contextlib.nullcontext():
        if cam_method in BATCHED_METHODS:
            _logits, indices, cams = classifier.forward_with_cams_batch(x, selects, cam_method)
        else:  # no CAMs, or pytorch-grad-cam's reference below: a plain forward pass ranks
            with torch.no_grad(), classifier.autocast():
                logits = classifier.module(x).float()
            indices = [select(logits[b : b + 1]) for b, select in enumerate(selects)]
            cams = [np.zeros((len(i), 0, 0), dtype=np.float32) for i in indices]
    if cam_method in REFERENCE_METHODS:
        module, layer, layout = classifier.module, classifier.cam_layer, classifier.cam_layout
        cams = [reference_cams(module, x[b : b + 1], i, layer, cam_method, layout) for b, i in enumerate(indices)]
    vectors = embedding.array()  # (B, D): the pooled pre-logit features
    features = heads_in.array() if heads_in else vectors
    return [
        _result(classifier, job, scored, indices[b], cams[b], vectors[b], features[b])
        for b, (job, (_select, scored)) in enumerate(zip(jobs, checked))
    ]


def identify_captured(classifier: Classifier, jobs: list[IdentifyJob], captured: Captured) -> list[IdentifyResult]:
    """``identify_many`` from a forward pass already run (``models.shared_trunk.trunk_pass``, which gave several
    models' logits at once): the jobs' photos are rows ``captured.photos`` of its activations. The CAM method must
    be None or a batched one (pytorch-grad-cam's references run their own passes)."""
    methods = {job.cam_method for job in jobs}
    if len(methods) != 1 or not methods <= {None, *BATCHED_METHODS}:
        raise ValueError(f"captured passes give one batched CAM method or none, got {sorted(map(str, methods))}")
    cam_method = methods.pop()
    checked = [_checked_job(classifier, job) for job in jobs]
    logits = captured.logits
    indices = [select(logits[b : b + 1].detach()) for b, (select, _scored) in enumerate(checked)]
    if cam_method is None:
        cams = [np.zeros((len(i), 0, 0), dtype=np.float32) for i in indices]
    else:
        head, layout = classifier.cam_head, classifier.cam_layout
        cams = cams_from_capture(
            logits, captured.activations, indices, head, layout, cam_method, captured.photos, retain_graph=True
        )
    return [
        _result(classifier, job, scored, indices[b], cams[b], captured.embeddings[b], captured.features[b])
        for b, (job, (_select, scored)) in enumerate(zip(jobs, checked))
    ]


@dataclass(frozen=True)
class Captured:
    """One model's part of a pass already run, for ``identify_captured``."""

    logits: torch.Tensor  # (n, N) this model's logits for the n photos (in the graph from ``activations``)
    activations: torch.Tensor  # (B, ...) the CAM layer's output for the whole pass
    photos: tuple[int, ...]  # the row of ``activations`` of each logits row
    embeddings: np.ndarray  # (n, D) the pooled pre-logit features
    features: np.ndarray  # (n, F) what the rank heads read (the embeddings when they read those)


def _checked_job(classifier: Classifier, job: IdentifyJob) -> tuple[Callable, dict]:
    """(select, scored) for one photo: ``select(logits (1, N))`` ranks on vision x geo inside the forward pass and
    leaves the logits, the combined scores, the notes and the top-k in ``scored``."""
    top_k, capped = _check_arguments(job.top_k, job.threshold, job.cam_method, len(classifier.labels))
    geo_scores, notes = _geo_scores(job.prior, job.place)
    prior = job.prior
    scored: dict = {"notes": [*capped, *notes], "geo_used": geo_scores is not None}

    def select(logits: torch.Tensor) -> list[int]:
        scored["logits"] = logits[0].float().cpu().numpy()
        vision = torch.softmax(logits[0].float(), dim=0).cpu().numpy().astype(np.float64)
        alignment = prior.alignment if prior is not None else np.full(len(vision), -1)
        known = prior.known if prior is not None else np.zeros(0, bool)
        rule = {**prior.rule, "cutoff": prior.range_cutoff} if prior is not None else {}
        scored["result"] = combine(vision, geo_scores, alignment, known, **rule)
        return np.argsort(-scored["result"].combined, kind="stable")[:top_k].tolist()

    return select, scored


def _result(classifier: Classifier, job: IdentifyJob, scored: dict, indices, cams, vector, features) -> IdentifyResult:
    combined: Combined = scored["result"]
    return IdentifyResult(
        model=classifier.name,
        predictions=tuple(_predictions(classifier, list(indices), combined)),
        rollup=rollup(classifier, combined.combined, job.threshold),
        cams=cams,
        cam_method=job.cam_method,
        notes=tuple(scored["notes"]),
        place=job.place,
        logits=scored["logits"],
        embedding=vector,
        rank_answers=tuple(rank_answers(classifier, features, combined.vision)),
        prior=_prior_summary(job.prior, scored["geo_used"], classifier),
    )


def _prior_summary(prior: BoundPrior | None, used: bool, classifier: Classifier) -> PriorSummary | None:
    if prior is None:
        return None
    covers = prior.coverage(_species_count(classifier))
    return PriorSummary(prior.name, prior.label, prior.credit, used, covers, prior.rule_text)


def _predictions(classifier: Classifier, indices: list[int], combined: Combined) -> list[Prediction]:
    vision_rank, combined_rank = _ranks(combined.vision), _ranks(combined.combined)
    return [_prediction(classifier, i, combined, int(vision_rank[i]), int(combined_rank[i])) for i in indices]


def _ranks(scores: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    return ranks


def rank_answers(classifier: Classifier, features: np.ndarray, vision: np.ndarray) -> list[RankAnswer]:
    """Each rank head's answer for the features it reads, beside the species head's roll-up and top-1 at that rank."""
    if classifier.rank_heads is None:
        return []
    top = classifier.labels[int(np.argmax(vision))]
    answers = []
    for rank, (names, probs) in classifier.rank_heads.answers(features[None, :]).items():
        if rank == "species":
            rolled, rolled_prob = top.scientific_name, float(vision.max())
        else:
            sums = classifier.tree.clade_sums(vision, rank)
            best = int(np.argmax(sums)) if sums.size else -1
            rolled = classifier.tree.group_names[rank][best] if best >= 0 else None
            rolled_prob = float(sums[best]) if best >= 0 else 0.0
        top_name = None if top.is_background else (top.scientific_name if rank == "species" else top.lineage.at(rank))
        name = str(names[0])
        answers.append(RankAnswer(rank, name, float(probs[0]), rolled, rolled_prob, top_name, name == top_name))
    return answers


def _geo_scores(prior: BoundPrior | None, place: Place | None) -> tuple[np.ndarray | None, list[str]]:
    """The prior's scores at the place, or None (with a note) where it has no information at all."""
    if place is None or prior is None:
        return None, []
    geo_scores = prior.scores(place)
    if prior.known.any() and geo_scores[prior.known].max() < NO_INFORMATION:
        note = (
            f"The geo-prior has no information at {place.lat:.2f}, {place.lon:.2f} (no species it knows scores "
            f"as much as {NO_INFORMATION:.0%} there: open sea, or far from its training records), so the ranking "
            "is the image's alone."
        )
        return None, [note]
    return geo_scores, []


def _check_arguments(top_k, threshold: float, cam_method: str | None, num_classes: int) -> tuple[int, list[str]]:
    """(top_k as an int, capped at the number of classes, and a note when it was); ValueError for an impossible
    top-k, threshold or CAM method."""
    top_k = check_options(top_k, threshold, cam_method)
    if top_k <= num_classes:
        return top_k, []
    return num_classes, [f"This model has only {num_classes} classes: all {num_classes} are shown."]


def check_options(top_k, threshold: float, cam_method: str | None) -> int:
    """Check what a user chose before any model runs.

    Args:
        top_k: how many suggestions (a whole number, 1..MAX_TOP_K; a float like 3.0 is accepted).
        threshold: the roll-up threshold, in (0, 1].
        cam_method: a CAM method of ``cam.gradcam`` (METHODS or REFERENCE_METHODS), or None for no CAMs.

    Returns:
        top_k as an int.

    Raises:
        ValueError: naming the impossible value and what is allowed.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if cam_method is not None and cam_method not in METHODS and cam_method not in REFERENCE_METHODS:
        raise ValueError(f"unknown CAM method {cam_method!r}; choose from {list(METHODS)}")
    return _check_top_k(top_k)


def _check_top_k(top_k) -> int:
    if isinstance(top_k, float) and not top_k.is_integer():
        raise ValueError(f"top_k must be a whole number, got {top_k}")
    top_k = int(top_k)
    if not 1 <= top_k <= MAX_TOP_K:
        raise ValueError(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
    return top_k


def _prediction(classifier: Classifier, index: int, scores: Combined, vision_rank: int, rank: int = 0) -> Prediction:
    """One suggestion (``rank``: its place in the combined ranking; an out-of-range species the place did not push
    down, from the vagrant rule or a permissive list, is "kept unusual")."""
    label = classifier.labels[index]
    lineage = label.lineage
    geo = scores.geo[index]
    out_of_range = not np.isnan(geo) and geo < scores.cutoff and scores.vision[index] >= STRONG_VISION
    return Prediction(
        class_index=index,
        scientific_name=label.scientific_name,
        common_name=label.common_name,
        lineage=lineage.as_dict(),
        resolved_rank=lineage.resolved_rank,
        taxon_id=lineage.taxon_id,
        probability=float(scores.combined[index]),
        is_background=label.is_background,
        note=lineage.note,
        vision_probability=float(scores.vision[index]),
        geo_score=None if np.isnan(geo) else float(geo),
        vision_rank=vision_rank,
        out_of_range=bool(out_of_range),
        kept_unusual=bool(out_of_range and 0 < rank <= vision_rank),
    )


def rollup(classifier: Classifier, probs: np.ndarray, threshold: float) -> Rollup:
    """The deepest answer whose (summed) probability reaches ``threshold``, as iNaturalist rolls up.

    A confident top-1 species answers at species rank; otherwise the clade with the largest summed
    probability at the deepest rank that reaches the threshold; the background class answers "nothing found".
    """
    top = int(np.argmax(probs))
    label, best = classifier.labels[top], float(probs[top])
    if best >= threshold:
        if label.is_background:
            return no_claim(best, threshold, f"No {classifier.card.subject} found ({best:.0%}).")
        return Rollup(
            rank="species",
            name=label.scientific_name,
            probability=best,
            threshold=threshold,
            confident_species=True,
            text=f"{label.display}, {best:.0%}",
        )
    for rank in reversed(RANKS[:-1]):  # genus, family, ..., kingdom
        sums = classifier.tree.clade_sums(probs, rank)
        if sums.size and sums.max() >= threshold:
            clade = int(np.argmax(sums))
            name = classifier.tree.group_names[rank][clade]
            text = f"Not sure of the species: probably {rank} {name}, {sums[clade]:.0%}"
            return clade_answer(rank, name, float(sums[clade]), threshold, text)
    text = f"Not sure: no species or clade reaches {threshold:.0%} (best species {best:.0%})."
    return no_claim(best, threshold, text)


def no_claim(probability: float, threshold: float, text: str) -> Rollup:
    """A roll-up that names no species and no clade, only says ``text``."""
    return Rollup(
        rank=None, name=None, probability=probability, threshold=threshold, confident_species=False, text=text
    )


def clade_answer(rank: str, name: str, probability: float, threshold: float, text: str) -> Rollup:
    """A roll-up that names a clade above species rank (never a confident species)."""
    return Rollup(
        rank=rank, name=name, probability=probability, threshold=threshold, confident_species=False, text=text
    )


def with_scope(classifier: Classifier, result: IdentifyResult, check: ScopeCheck) -> IdentifyResult:
    """The result told honestly (a new result; ``result`` is left as it is): out of scope, the headline says so
    and no clade is claimed; a species the model probably does not know keeps only a roll-up above species rank
    and names the closest class."""
    r, subject = result.rollup, classifier.card.subject
    if not check.in_scope:
        return replace(result, scope=check, rollup=no_claim(r.probability, r.threshold, check.explanation))
    if check.known_species is not False:
        return replace(result, scope=check)
    species = [p for p in result.predictions if not p.is_background]
    closest = f"; closest: {species[0].scientific_name}" if species else ""
    closest += f" ({species[0].common_name})" if species and species[0].common_name else ""
    count = _species_count(classifier)
    text = f"{article(subject).capitalize()} {subject}, probably not one of the {count} species this model knows"
    text += f"{closest}."
    if r.rank is not None and r.rank != "species":
        text += f" Probably {r.rank} {r.name} ({r.probability:.0%})."
        return replace(result, scope=check, rollup=clade_answer(r.rank, r.name, r.probability, r.threshold, text))
    return replace(result, scope=check, rollup=no_claim(r.probability, r.threshold, text))


def _species_count(classifier: Classifier) -> int:
    return sum(not label.is_background for label in classifier.labels)


def result_to_json(result: IdentifyResult) -> dict:
    """The identify API's JSON: model, predictions, rollup, notes."""
    return {
        "model": result.model,
        "predictions": [{**asdict(p), "provenance": suggestion_provenance(result, p)} for p in result.predictions],
        "rollup": asdict(result.rollup),
        "provenance": headline_provenance(result),
        "cam_method": result.cam_method,
        "place": None
        if result.place is None
        else {
            "lat": result.place.lat,
            "lon": result.place.lon,
            "date": result.place.date.isoformat() if result.place.date else None,
        },
        "notes": list(result.notes),
        "scope": None if result.scope is None else result.scope.as_json(),
        "rank_heads": [asdict(a) for a in result.rank_answers],
        "prior": None if result.prior is None else result.prior.as_json(),
        **({"routed_from": result.routed_from, "routing": result.routing} if result.routed_from else {}),
    }
