"""Plain state dicts: a safetensors file or a torch file (``torch.load(weights_only=True)``, so no pickled code runs),
formats "safetensors" and "state_dict". The file's suffix decides how it is read. A card's ``head_weights`` (a state
dict of the same kinds) replaces the base weights' tensors of the same names."""

from __future__ import annotations

from pathlib import Path

import torch

from explorer.models.formats.loaded_weights import (
    LoadedWeights,
    WeightsSource,
    sha256_file,
    strip_prefixes,
    with_head_sha256,
)

# where training scripts put the weights inside a checkpoint dict (Lightning, timm's train.py, torchvision's
# references, common scripts), tried in this order; the rest of such a dict (epoch, optimizer, ...) is left out
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "model_state", "net", "network")


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Weights from safetensors or a torch file (weights_only=True), unwrapped from a training checkpoint's dict
    (``WRAPPER_KEYS``); strips DDP/compile prefixes."""
    if Path(path).suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = unwrapped(torch.load(path, map_location="cpu", weights_only=True), path)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state_dict, found {type(state).__name__}")
    return strip_prefixes(state)


def unwrapped(state, path: Path):
    """The state dict inside a checkpoint dict ({"model": state_dict, "epoch": 30, ...}); the dict itself when its
    values are the tensors. ValueError naming the keys when neither."""
    if not isinstance(state, dict) or all(isinstance(v, torch.Tensor) for v in state.values()):
        return state
    for key in WRAPPER_KEYS:
        if isinstance(state.get(key), dict):
            return state[key]
    raise ValueError(
        f"{path}: a checkpoint dict without a state dict under any of {list(WRAPPER_KEYS)}; its keys are "
        f"{sorted(map(str, state))[:10]}. Save model.state_dict() itself, or under one of those keys"
    )


def read_state_dict_file(path: Path, source: WeightsSource) -> LoadedWeights:
    """The state dict at ``path``, with the card's head (if any) over it; the digest covers both files."""
    state, digest = load_state_dict(path), sha256_file(path)
    if source.head_weights:
        head_path = source.find(source.head_weights)
        state = {**state, **load_state_dict(head_path)}
        digest = with_head_sha256(digest, head_path)
    return LoadedWeights(state, Path(path), digest)


class StateDictReader:
    """A state dict file next to the card or in the search folders (formats "safetensors" and "state_dict")."""

    names_classes = False

    def read(self, source: WeightsSource) -> LoadedWeights:
        return read_state_dict_file(source.find(source.file), source)
