"""The checks a classifier passes at load, so that a card that does not fit fails at start-up with a message that
names the card, the file and what to change, never at the first request: the weights' keys and class count, the
logits' shape, the CAM layer and its layout, the rank heads' input."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from explorer.cam.gradcam import check_linear_head
from explorer.cam.layout import FeatureLayout, choose_cam_layer, derive_layout, nearest_layers
from explorer.models.cards import ModelCard, find_file
from explorer.models.features import EmbeddingCapture
from explorer.models.rank_heads import RankHeads, load_birder_rank_heads, load_rank_heads
from explorer.settings import Settings


def load_weights_into(card: ModelCard, module: nn.Module, state: dict, path: Path) -> None:
    """strict loading, naming the first few missing and unexpected keys when the weights do not fit."""
    missing, unexpected = _key_differences(module, state)
    if missing or unexpected:
        parts = [
            f"{len(keys)} {what} (first: {', '.join(keys[:4])})"
            for what, keys in (("missing keys", missing), ("unexpected keys", unexpected))
            if keys
        ]
        raise ValueError(
            f"model card {card.name!r}: weights {path.name} do not fit {card.architecture}: " + "; ".join(parts)
        )
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        message = f"model card {card.name!r}: weights {path.name} do not fit {card.architecture}: {err}"
        raise ValueError(message) from err


def _key_differences(module: nn.Module, state: dict) -> tuple[list[str], list[str]]:
    expected = set(module.state_dict())
    return sorted(expected - set(state)), sorted(set(state) - expected)


def check_logits(card: ModelCard, module: nn.Module, num_labels: int) -> None:
    """The model must map (B, 3, S, S) to (B, classes)."""
    device = next(module.parameters()).device
    with torch.no_grad():
        out = module(torch.zeros(2, 3, card.input_size, card.input_size, device=device))
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if shape != (2, num_labels):
        raise ValueError(
            f"model card {card.name!r}: for 2 images the model returns {shape}, not (2, {num_labels}) logits "
            "(batch, classes); wrap it so forward() returns the class logits"
        )


def find_cam_target(card: ModelCard, module: nn.Module) -> tuple[str, str, FeatureLayout]:
    """(CAM layer name, why it is used, its layout); fails at start-up, not at the first request."""
    if card.cam_layer:
        name, why = card.cam_layer, "named in the card"
    else:
        name, why = choose_cam_layer(module, card.input_size)
    try:
        layer = module.get_submodule(name)
    except AttributeError as err:
        raise ValueError(
            f"model card {card.name!r}: cam_layer {name!r} is not a module of {card.architecture}; the nearest "
            f"names are {nearest_layers(module, name)}"
        ) from err
    try:
        layout = derive_layout(module, layer, card.input_size)
        if card.cam_head:
            check_linear_head(module, layer, module.get_submodule(card.cam_head), card.input_size)
    except (ValueError, AttributeError) as err:
        raise ValueError(f"model card {card.name!r}: cam_layer {name!r}: {err}") from err
    return name, f"{why}; {layout.describe()}", layout


def pre_logits_name(module: nn.Module, num_labels: int) -> str:
    """The name of the model's last nn.Linear with ``num_labels`` outputs (its classifier), "" when none."""
    linears = [n for n, m in module.named_modules() if isinstance(m, nn.Linear) and m.out_features == num_labels]
    return linears[-1] if linears else ""


def load_card_rank_heads(
    card: ModelCard, settings: Settings, module: nn.Module, embedding: EmbeddingCapture
) -> RankHeads:
    """The card's rank heads, checked against what they read (one forward pass of a blank image)."""
    if isinstance(card.rank_heads, dict):
        files = {rank: find_file(file, settings, card) for rank, file in card.rank_heads.items()}
        heads = load_birder_rank_heads(files, pre_logits_name(module, _num_outputs(module, card)))
    else:
        heads = load_rank_heads(find_file(card.rank_heads, settings, card))
    source = f"the input of {heads.input_module}" if heads.input_module else "the embedding (the CAM layer, pooled)"
    capture = embedding
    if heads.input_module:
        try:
            capture = EmbeddingCapture(module.get_submodule(heads.input_module), inputs=True)
        except AttributeError as err:
            raise ValueError(f"model card {card.name!r}: rank heads read {source}, which the model lacks") from err
    with capture, torch.no_grad():
        module(torch.zeros(1, 3, card.input_size, card.input_size, device=next(module.parameters()).device))
    dim = capture.array().shape[1]
    if heads.dim != dim:
        raise ValueError(
            f"model card {card.name!r}: rank heads {card.rank_heads} take {heads.dim}-d features, but {source} "
            f"gives {dim}-d"
        )
    return heads


def _num_outputs(module: nn.Module, card: ModelCard) -> int:
    with torch.no_grad():
        return int(
            module(torch.zeros(1, 3, card.input_size, card.input_size, device=next(module.parameters()).device)).shape[
                1
            ]
        )


def check_outputs(card: ModelCard, module: nn.Module, state: dict, num_labels: int) -> None:
    """Name both numbers when the label file and the weights disagree on the number of classes."""
    expected = module.state_dict()
    for key, tensor in expected.items():
        if key in state and tensor.ndim >= 1 and tensor.shape[0] == num_labels and state[key].shape != tensor.shape:
            raise ValueError(
                f"model card {card.name!r}: the label file {card.labels_file} has {num_labels} classes but the "
                f"weights' {key} has {state[key].shape[0]} outputs"
            )
