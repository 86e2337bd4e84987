"""Checkpoints saved by birder (https://gitlab.com/birder/birder, Apache-2.0), read without importing birder.

``birder.common.fs_ops.checkpoint_model`` saves ``torch.save({"state", "birder_version", "task", "signature",
"class_to_idx", "rgb_stats"[, "config"]})``; its ``save_st`` writes the same as safetensors metadata (JSON strings).
The signature holds the input shape (0, 3, H, W) and the number of classes; ``rgb_stats`` the normalisation. The
separately trained linear heads of the seed model cards (BIOSCAN-5M: one per rank) are
``torch.save({"class_to_idx": {...}, "state": <classifier state_dict>})``. Everything is read with
``weights_only=True``. Format "birder": the reader gives the class names, the input size and normalisation and the
network config the checkpoint records, with a card's ``head_weights`` (a birder head) as the classifier."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from explorer.models.formats.loaded_weights import (
    LoadedWeights,
    Preprocessing,
    WeightsSource,
    sha256_file,
    strip_prefixes,
    with_head_sha256,
)


@dataclass(frozen=True)
class BirderCheckpoint:
    state: dict[str, torch.Tensor]
    class_names: tuple[str, ...]  # in output order (class_to_idx sorted by index)
    size: int  # the input side it was trained at
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    config: dict  # the network config it was built with (birder's external config), {} when none
    version: str = ""


def _names(class_to_idx: dict, where: str) -> tuple[str, ...]:
    if not isinstance(class_to_idx, dict) or not class_to_idx:
        raise ValueError(f"{where}: no class_to_idx mapping")
    order = sorted(class_to_idx.items(), key=lambda item: int(item[1]))
    if [int(i) for _, i in order] != list(range(len(order))):
        raise ValueError(f"{where}: class_to_idx indices are not 0..{len(order) - 1}")
    return tuple(str(name) for name, _ in order)


def _stats(rgb_stats: dict, where: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    try:
        return tuple(float(v) for v in rgb_stats["mean"]), tuple(float(v) for v in rgb_stats["std"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{where}: rgb_stats must hold mean and std ({err})") from err


def read_birder_checkpoint(path: Path) -> BirderCheckpoint:
    """A birder classification checkpoint (``.pt`` or ``.safetensors``); ValueError saying what is missing."""
    path = Path(path)
    where = f"birder checkpoint {path.name}"
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        try:
            data = {key: json.loads(meta[key]) for key in ("signature", "class_to_idx", "rgb_stats")}
        except (KeyError, json.JSONDecodeError) as err:
            raise ValueError(f"{where}: its metadata lacks birder's signature/class_to_idx/rgb_stats") from err
        data["config"] = json.loads(meta["config"]) if meta.get("config") else {}
        data["state"] = load_file(str(path))
    else:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        missing = [k for k in ("state", "signature", "class_to_idx", "rgb_stats") if k not in data]
        if not isinstance(data, dict) or missing:
            raise ValueError(f"{where}: not saved by birder (missing {missing})")
    try:
        shape = data["signature"]["inputs"][0]["data_shape"]
    except (KeyError, IndexError, TypeError) as err:
        raise ValueError(f"{where}: its signature has no input shape") from err
    if shape[2] != shape[3]:
        raise ValueError(f"{where}: input {shape[2]}×{shape[3]} is not square; only square inputs are supported")
    mean, std = _stats(data["rgb_stats"], where)
    names = _names(data["class_to_idx"], where) if data["class_to_idx"] else ()  # an encoder may name none
    config = dict(data.get("config") or {})
    return BirderCheckpoint(data["state"], names, int(shape[2]), mean, std, config, str(data.get("birder_version", "")))


def read_birder_head(path: Path) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """(class names, weight (classes, D), bias (classes,)) of one birder linear head file."""
    path = Path(path)
    where = f"birder head {path.name}"
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        state = data["state"]
        names = _names(data["class_to_idx"], where)
        weight, bias = state["weight"], state.get("bias")
    except (OSError, RuntimeError, KeyError, TypeError) as err:
        raise ValueError(f"{where}: expected {{'class_to_idx': ..., 'state': <linear state_dict>}} ({err})") from err
    if weight.ndim != 2 or weight.shape[0] != len(names):
        raise ValueError(f"{where}: {len(names)} classes but a weight of shape {tuple(weight.shape)}")
    bias = torch.zeros(len(names)) if bias is None else bias
    return names, weight.float().numpy(), bias.float().numpy()


def with_birder_head(checkpoint: BirderCheckpoint, head_path: Path) -> BirderCheckpoint:
    """The checkpoint with a separately trained linear head as its classifier, and the head's classes, as the seed
    cards do it (``net.reset_classifier(n); net.classifier.load_state_dict(head["state"])``)."""
    names, weight, bias = read_birder_head(head_path)
    state = {k: v for k, v in strip_prefixes(checkpoint.state).items() if not k.startswith("classifier.")}
    state.update({"classifier.weight": torch.from_numpy(weight), "classifier.bias": torch.from_numpy(bias)})
    return dataclasses.replace(checkpoint, state=state, class_names=names)


class BirderReader:
    """A birder checkpoint: weights, class names (an encoder may name none), input size, normalisation, config."""

    names_classes = True

    def read(self, source: WeightsSource) -> LoadedWeights:
        path = source.find(source.file)
        checkpoint, digest = read_birder_checkpoint(path), sha256_file(path)
        if source.head_weights:
            head_path = source.find(source.head_weights)
            checkpoint, digest = with_birder_head(checkpoint, head_path), with_head_sha256(digest, head_path)
        preprocessing = Preprocessing(checkpoint.size, checkpoint.mean, checkpoint.std)
        state = strip_prefixes(checkpoint.state)
        return LoadedWeights(state, path, digest, checkpoint.class_names, preprocessing, dict(checkpoint.config))
