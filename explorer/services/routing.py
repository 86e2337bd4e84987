"""Which model answers a photo: each model's scope verdict (with the ImageNet gate's logits computed once per
photo), and ``model="auto"``, the species model whose scope fits the photo."""

from __future__ import annotations

import numpy as np
import torch

from explorer.identify.scope_check import GATE_MODEL, ScopeCheck, check_scope
from explorer.models.classifier import Classifier
from explorer.services.resources import Resources

AUTO = "auto"  # the model name that routes each photo to the model whose scope fits


def scope_check(
    resources: Resources, classifier: Classifier, logits: np.ndarray, image, gate_cache: dict | None = None
) -> ScopeCheck | None:
    """The model's scope verdict for a photo.

    Args:
        resources: the loaded models and their scope rules.
        classifier: the model that answered.
        logits: its raw outputs for the photo, (N,).
        image: the photo (RGB PIL image), for the ImageNet gate when the rule needs it.
        gate_cache: the gate's logits for this photo, kept here once computed (routing checks several models).

    Returns:
        The verdict, or None when the model has no scope rule.
    """
    rule = resources.scope_rules.get(classifier.name)
    if rule is None:
        return None
    gate_logits = None
    if rule.needs_gate:
        gate_cache = {} if gate_cache is None else gate_cache
        if "logits" not in gate_cache:
            gate_cache["logits"] = _logits(resources.models()[GATE_MODEL], image)
        gate_logits = gate_cache["logits"]
    return check_scope(rule, logits, classifier.background_index, gate_logits)


def _logits(classifier: Classifier, image) -> np.ndarray:
    return batch_logits(classifier, [image])[0]


def batch_logits(classifier: Classifier, images: list) -> list[np.ndarray]:
    """Each photo's raw outputs (N,), from one forward pass over them all."""
    with torch.no_grad(), classifier.autocast():
        logits = classifier.module(torch.cat([classifier.preprocess(image) for image in images]))
    return list(logits.float().cpu().numpy())


def gate_logits(resources: Resources, classifier: Classifier, image, gate_cache: dict) -> None:
    """Put the ImageNet gate's logits for the photo in ``gate_cache`` when the model's scope rule needs them,
    batched with the concurrent calls' (``Resources.batched``)."""
    rule = resources.scope_rules.get(classifier.name)
    if rule is None or not rule.needs_gate or "logits" in gate_cache:
        return
    run = lambda images: batch_logits(resources.models()[GATE_MODEL], images)  # noqa: E731
    gate_cache["logits"] = resources.batched((GATE_MODEL, "logits"), image, run)


def route(resources: Resources, image, gate_cache: dict) -> tuple[str, str]:
    """(model, why) for ``model="auto"``: the species model whose scope fits the photo (one that also knows
    the species first, then the card's priority); none fits -> the ImageNet model, saying what it sees."""
    fits = []
    for name, classifier in resources.models().items():  # in card priority order
        if name in resources.scope_rules:
            check = scope_check(resources, classifier, _logits(classifier, image), image, gate_cache)
            if check.in_scope:
                fits.append((check.known_species is False, name, check))
    if fits:
        _, name, check = min(fits, key=lambda f: f[0])
        others = [n for _, n, _ in fits if n != name]
        also = f" ({', '.join(others)} would also take it)" if others else ""
        return name, f"Chose {resources.classifiers[name].card.label}: {check.explanation}{also}"
    checked = ", ".join(resources.scope_rules) or "none"
    if GATE_MODEL in resources.classifiers:
        gate = resources.models()[GATE_MODEL]
        logits = gate_cache.get("logits")
        logits = _logits(gate, image) if logits is None else logits
        top = gate.labels[int(np.argmax(logits))].scientific_name
        return GATE_MODEL, f"None of the species models covers this photo ({checked}); closest: ImageNet says '{top}'."
    return resources.default_model, f"None of the species models covers this photo ({checked})."
