"""Identify: top-k species with lineage, a "not sure" roll-up to the lowest confident clade, and a CAM
for every suggestion, all from one forward pass."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from explorer.cam import FAST_METHOD, METHODS, forward_with_cams, reference_cams
from explorer.model import Classifier
from explorer.taxonomy import RANKS

DEFAULT_THRESHOLD = 0.78  # iNaturalist's production roll-up threshold (a summed score)
MAX_TOP_K = 20


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


@dataclass(frozen=True)
class Rollup:
    """The answer at the rank the evidence supports: a species, a clade, nothing found, or no decision."""

    rank: str | None  # "species", "genus", ... ; None when nothing passes the threshold
    name: str | None
    probability: float
    threshold: float
    confident_species: bool
    text: str


@dataclass
class IdentifyResult:
    model: str
    predictions: list[Prediction]
    rollup: Rollup
    cams: np.ndarray  # (k, h, w) in [0, 1]; explorer.cam.scale_cams upsamples like pytorch-grad-cam
    cam_method: str
    notes: list[str] = field(default_factory=list)


def identify(
    classifier: Classifier,
    image,
    top_k: int = 5,
    threshold: float = DEFAULT_THRESHOLD,
    cam_method: str = FAST_METHOD,
) -> IdentifyResult:
    """Top-k suggestions, roll-up and CAMs for one RGB PIL image."""
    top_k = _check_top_k(top_k, len(classifier.labels))
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if cam_method not in METHODS:
        raise ValueError(f"unknown CAM method {cam_method!r}; choose from {list(METHODS)}")
    x = classifier.preprocess(image)  # (1, 3, S, S)
    logits, indices, cams = forward_with_cams(
        classifier.module,
        x,
        classifier.cam_layer,
        lambda z: torch.topk(z[0], top_k).indices.tolist(),
        autocast=classifier.autocast,
        head=classifier.cam_head,
    )
    probs = torch.softmax(logits[0], dim=0).cpu().numpy().astype(np.float64)  # (N,)
    if cam_method != FAST_METHOD:
        cams = reference_cams(classifier.module, x, indices, classifier.cam_layer, cam_method)
    predictions = [_prediction(classifier, i, probs[i]) for i in indices]
    return IdentifyResult(classifier.name, predictions, rollup(classifier, probs, threshold), cams, cam_method)


def _check_top_k(top_k, num_classes: int) -> int:
    if isinstance(top_k, float) and not top_k.is_integer():
        raise ValueError(f"top_k must be a whole number, got {top_k}")
    top_k = int(top_k)
    if not 1 <= top_k <= min(MAX_TOP_K, num_classes):
        raise ValueError(f"top_k must be between 1 and {min(MAX_TOP_K, num_classes)}, got {top_k}")
    return top_k


def _prediction(classifier: Classifier, index: int, probability: float) -> Prediction:
    label = classifier.labels[index]
    lineage = label.lineage
    return Prediction(
        class_index=index,
        scientific_name=label.scientific_name,
        common_name=label.common_name,
        lineage=lineage.as_dict(),
        resolved_rank=lineage.resolved_rank,
        taxon_id=lineage.taxon_id,
        probability=float(probability),
        is_background=label.is_background,
        note=lineage.note,
    )


def rollup(classifier: Classifier, probs: np.ndarray, threshold: float) -> Rollup:
    """The deepest answer whose (summed) probability reaches ``threshold``, as iNaturalist rolls up.

    A confident top-1 species answers at species rank; otherwise the clade with the largest summed
    probability at the deepest rank that reaches the threshold; the background class answers "nothing found".
    """
    top = int(np.argmax(probs))
    label = classifier.labels[top]
    if probs[top] >= threshold:
        if label.is_background:
            return Rollup(
                None,
                None,
                float(probs[top]),
                threshold,
                False,
                f"No {classifier.card.subject} found ({probs[top]:.0%}).",
            )
        return Rollup(
            "species", label.scientific_name, float(probs[top]), threshold, True, f"{label.display}, {probs[top]:.0%}"
        )
    for rank in reversed(RANKS[:-1]):  # genus, family, ..., kingdom
        sums = classifier.tree.clade_sums(probs, rank)
        if sums.size and sums.max() >= threshold:
            best = int(np.argmax(sums))
            name = classifier.tree.group_names[rank][best]
            return Rollup(
                rank,
                name,
                float(sums[best]),
                threshold,
                False,
                f"Not sure of the species: probably {rank} {name}, {sums[best]:.0%}",
            )
    return Rollup(
        None,
        None,
        float(probs[top]),
        threshold,
        False,
        f"Not sure: no species or clade reaches {threshold:.0%} (best species {probs[top]:.0%}).",
    )


def result_to_json(result: IdentifyResult) -> dict:
    """The identify API's JSON: model, predictions, rollup, notes."""
    from dataclasses import asdict

    return {
        "model": result.model,
        "predictions": [asdict(p) for p in result.predictions],
        "rollup": asdict(result.rollup),
        "cam_method": result.cam_method,
        "notes": list(result.notes),
    }
