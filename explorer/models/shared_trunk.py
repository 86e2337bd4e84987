"""Models that differ only in their last linear layer share one forward pass: the ImageNet gate and the CUB heads
all run EfficientNet-Lite0 with the same weights and end in their own ``_fc``. ``trunk_groups`` finds them (the
cards agree on architecture, weights, preprocessing and CAM layer; the modules' tensors differ only inside one
``nn.Linear``; and that layer's output *is* the logits, checked by running a probe input once), and
``trunk_pass`` runs each group's trunk once: every member's logits come from the leader's input to that layer, and
every member's maps from the same captured CAM-layer activations (the graph, when kept, starts there)."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from explorer.cam.gradcam import forward_capture
from explorer.models.classifier import Classifier
from explorer.models.features import EmbeddingCapture

# member module -> {leader module -> the differing linear layer's name, or "" (they do not share)}: checked once
_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class TrunkGroup:
    """Models whose forward passes are one: ``leader``'s module runs, each member's ``head`` reads its input."""

    leader: Classifier
    members: tuple[Classifier, ...]  # the leader first
    head: str  # the name of the linear layer that differs ("" for a group of one)


@dataclass
class TrunkPass:
    """What one pass of a group's trunk gives, for a batch of B photos."""

    logits: dict[str, torch.Tensor]  # (B, N) per member name, in the graph from ``activations`` when it is kept
    activations: torch.Tensor  # (B, ...) the CAM layer's output, a leaf (requires grad when the graph is kept)
    embeddings: np.ndarray  # (B, D) the pooled pre-logit features (the same for every member)
    rank_inputs: dict[str, np.ndarray]  # member name -> (B, F) what its rank heads read, where not the embedding


def trunk_key(classifier: Classifier) -> tuple:
    """What two models must agree on before their tensors are compared."""
    card = classifier.card
    return (
        card.architecture,
        card.weights.format,
        card.weights.package,
        card.weights.file,
        card.weights.sha256,
        repr(sorted(card.architecture_args.items())),
        card.input_size,
        tuple(card.mean),
        tuple(card.std),
        card.crop_pct,
        classifier.cam_layer_name or card.cam_layer,
        classifier.pre_logits,
        repr(classifier.cam_layout),
        str(classifier.device),
    )


def trunk_groups(classifiers: Sequence[Classifier]) -> list[TrunkGroup]:
    """The classifiers in groups that share a trunk, in the order given (each group led by its first member)."""
    groups: list[list] = []  # [leader, head, members]
    for classifier in classifiers:
        for group in groups:
            head = shared_head(group[0], classifier)
            if head and group[1] in ("", head):
                group[1] = head
                group[2].append(classifier)
                break
        else:
            groups.append([classifier, "", [classifier]])
    return [TrunkGroup(leader, tuple(members), head) for leader, head, members in groups]


def shared_head(leader: Classifier, member: Classifier) -> str:
    """The name of the linear layer that alone sets ``member`` apart from ``leader`` (its logits computed from the
    leader's input to that layer), or "" when they do not share a trunk. Checked once per pair of modules."""
    if trunk_key(leader) != trunk_key(member):
        return ""
    known = _CHECKED.setdefault(member.module, weakref.WeakKeyDictionary())
    if leader.module not in known:
        known[leader.module] = _differing_head(leader, member)
    return known[leader.module]


def _differing_head(leader: Classifier, member: Classifier) -> str:
    ours, theirs = leader.module.state_dict(), member.module.state_dict()
    if ours.keys() != theirs.keys():
        return ""
    differ = {k for k in ours if ours[k].shape != theirs[k].shape or not torch.equal(ours[k], theirs[k])}
    prefixes = {k.rsplit(".", 1)[0] for k in differ}
    if len(prefixes) != 1:
        return ""
    head = prefixes.pop()
    modules = [m.module.get_submodule(head) for m in (leader, member)]
    if not all(isinstance(m, nn.Linear) for m in modules):
        return ""
    return head if _head_makes_logits(leader, member, head) else ""


@torch.no_grad()
def _head_makes_logits(leader: Classifier, member: Classifier, head: str) -> bool:
    """True when the member's logits equal its ``head`` applied to the leader's input to that layer (nothing runs
    after it), on a fixed random input."""
    size = leader.card.input_size
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0)).to(leader.device)
    seen: list[torch.Tensor] = []
    handle = leader.module.get_submodule(head).register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    try:
        leader_logits = leader.module(x)
    finally:
        handle.remove()
    if len(seen) != 1:
        return False
    expected = member.module(x)
    got = member.module.get_submodule(head)(seen[0])
    leader_ok = torch.allclose(leader.module.get_submodule(head)(seen[0]), leader_logits, atol=1e-4, rtol=1e-4)
    return leader_ok and got.shape == expected.shape and torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


def trunk_pass(group: TrunkGroup, x: torch.Tensor, keep_graph: bool) -> TrunkPass:
    """One forward pass of the group's trunk over ``x`` (B, 3, S, S), preprocessed as the leader does: every
    member's logits, the CAM layer's activations (``keep_graph``: the logits stay differentiable from them, for
    maps that need a backward pass), the embeddings and what each member's rank heads read."""
    leader = group.leader
    inputs: list[torch.Tensor] = []
    hooks = contextlib.ExitStack()
    with hooks:
        if group.head:
            layer = leader.module.get_submodule(group.head)
            handle = layer.register_forward_pre_hook(lambda _m, args: inputs.append(args[0]))
            hooks.callback(handle.remove)
        embedding = hooks.enter_context(leader.embedding_capture())
        rank_captures = {
            m.name: hooks.enter_context(EmbeddingCapture(leader.module.get_submodule(name), inputs=True))
            for m in group.members
            if (name := _rank_input(m))
        }
        logits, activations = forward_capture(leader.module, x, leader.cam_layer, keep_graph, leader.autocast)
    member_logits = {leader.name: logits}
    with torch.set_grad_enabled(keep_graph), leader.autocast():
        for member in group.members[1:]:
            member_logits[member.name] = member.module.get_submodule(group.head)(inputs[0])
    return TrunkPass(
        member_logits,
        activations,
        embedding.array(),
        {name: capture.array() for name, capture in rank_captures.items()},
    )


def _rank_input(classifier: Classifier) -> str:
    heads = classifier.rank_heads
    return heads.input_module if heads is not None and heads.input_module else ""
