"""Which model answers a photo: each model's scope verdict (with the ImageNet gate's logits computed once per
photo), and ``model="auto"``, the species model whose scope fits the photo.

``route_many`` routes a batch of photos at the cost of the distinct backbones involved: the models with a scope
rule and the gate run one pass per shared trunk (``models.shared_trunk``: the gate and the CUB heads are one
EfficientNet-Lite0 pass), and the chosen model's answer and maps are then read from that pass
(``Routing.captured``), not from another."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer.cam.gradcam import BATCHED_METHODS, needs_graph
from explorer.identify.answer import Captured
from explorer.identify.scope_check import GATE_MODEL, ScopeCheck, check_scope
from explorer.models.classifier import Classifier
from explorer.models.preprocess import normalise
from explorer.models.shared_trunk import TrunkPass, trunk_groups, trunk_pass
from explorer.services.resources import Resources

AUTO = "auto"  # the model name that routes each photo to the model whose scope fits


@dataclass(frozen=True)
class Route:
    """One photo's routing: the model chosen, why, and that model's scope verdict (None: it has no rule)."""

    model: str
    why: str
    check: ScopeCheck | None


@dataclass
class Routing:
    """A batch of photos routed: a route per photo, and the passes that routed them, by model name."""

    routes: list[Route]
    passes: dict[str, TrunkPass]

    def captured(self, model: str, photos: list[int]) -> Captured | None:
        """``model``'s part of the routing pass for those photos (None: it did not run in it)."""
        found = self.passes.get(model)
        if found is None:
            return None
        rows = torch.tensor(photos, dtype=torch.long)
        features = found.rank_inputs.get(model, found.embeddings)
        return Captured(
            found.logits[model][rows], found.activations, tuple(photos), found.embeddings[photos], features[photos]
        )


def scope_check(
    resources: Resources, classifier: Classifier, logits: np.ndarray, image, gate_cache: dict | None = None
) -> ScopeCheck | None:
    """The model's scope verdict for a photo.

    Args:
        resources: the loaded models and their scope rules.
        classifier: the model that answered.
        logits: its raw outputs for the photo, (N,).
        image: the photo (RGB PIL image), for the ImageNet gate when the rule needs it.
        gate_cache: the gate's logits for this photo, kept here once computed.

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
            gate_cache["logits"] = batch_logits(resources.models()[GATE_MODEL], [image])[0]
        gate_logits = gate_cache["logits"]
    return check_scope(rule, logits, classifier.background_index, gate_logits)


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


def route_many(resources: Resources, images: list, cam_method: str | None) -> Routing:
    """Route each photo for ``model="auto"`` (``choose``), from one pass per distinct trunk of the models with a
    scope rule and the gate; the graph from the CAM layer is kept when ``cam_method`` needs it, so the chosen
    model's maps come from the same pass. Runs models: call it holding a worker."""
    models = resources.models()
    rules = resources.scope_rules
    names = [name for name in models if name in rules]
    if any(rules[name].needs_gate for name in names) and GATE_MODEL in models and GATE_MODEL not in names:
        names.append(GATE_MODEL)
    passes: dict[str, TrunkPass] = {}
    resized: dict = {}  # each photo resized once per input size and crop (the models differ in normalisation)
    for group in trunk_groups([models[name] for name in names]):
        leader = group.leader
        size = (leader.card.input_size, leader.card.crop_pct)
        arrays = resized.setdefault(size, [leader.resize(image) for image in images])
        x = torch.stack([normalise(a, leader.card.mean, leader.card.std) for a in arrays]).to(leader.device)
        keep = cam_method in BATCHED_METHODS and any(needs_graph(cam_method, m.cam_head) for m in group.members)
        done = trunk_pass(group, x, keep)
        passes.update({member.name: done for member in group.members})
    logits = {name: done.logits[name].detach().float().cpu().numpy() for name, done in passes.items()}
    routes = [choose(resources, {name: rows[b] for name, rows in logits.items()}) for b in range(len(images))]
    unfit = [b for b, found in enumerate(routes) if found is None]
    if unfit:  # no model fits and the gate has not run: it names what the photo looks like
        group = trunk_groups([models[GATE_MODEL]])[0]
        done = trunk_pass(group, torch.cat([group.leader.preprocess(images[b]) for b in unfit]), False)
        gate = done.logits[GATE_MODEL].float().cpu().numpy()
        for row, b in enumerate(unfit):
            routes[b] = choose(resources, {**{name: rows[b] for name, rows in logits.items()}, GATE_MODEL: gate[row]})
    return Routing(routes, passes)


def choose(resources: Resources, logits: dict[str, np.ndarray]) -> Route | None:
    """The route of one photo given each routed model's logits (and the gate's): the species model whose scope
    fits (one that also knows the species first, then the card's priority); none fits -> the ImageNet model,
    saying what it sees (None when that needs the gate's logits and they are not given)."""
    gate = logits.get(GATE_MODEL)
    fits, checks = [], {}
    for name, classifier in resources.models().items():  # in card priority order
        rule = resources.scope_rules.get(name)
        if rule is not None and name in logits:
            check = checks[name] = check_scope(rule, logits[name], classifier.background_index, gate)
            if check.in_scope:
                fits.append((check.known_species is False, name, check))
    if fits:
        _, name, check = min(fits, key=lambda f: f[0])
        others = [n for _, n, _ in fits if n != name]
        also = f" ({', '.join(others)} would also take it)" if others else ""
        return Route(name, f"Chose {resources.classifiers[name].card.label}: {check.explanation}{also}", check)
    checked = ", ".join(resources.scope_rules) or "none"
    if gate is None and GATE_MODEL in resources.classifiers:
        return None  # route_many runs the gate for this photo, then asks again
    if gate is not None:
        top = resources.classifiers[GATE_MODEL].labels[int(np.argmax(gate))].scientific_name
        why = f"None of the species models covers this photo ({checked}); closest: ImageNet says '{top}'."
        return Route(GATE_MODEL, why, checks.get(GATE_MODEL))
    return Route(resources.default_model, f"None of the species models covers this photo ({checked}).", None)
