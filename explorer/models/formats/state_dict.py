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


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Weights from safetensors or a torch file (weights_only=True); strips DDP/compile prefixes."""
    if Path(path).suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state_dict, found {type(state).__name__}")
    return strip_prefixes(state)


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
