"""What every weights reader is given and gives back, whatever the format: the interface of ``formats/``.

A reader (``WeightReader``) turns a card's weights entry (``WeightsSource``) into one frozen ``LoadedWeights``: the
state dict with DDP/compile prefixes stripped, and, where the format records them, the class names, the
preprocessing it was trained with and the constructor arguments it was built with. ``formats/readers.py`` maps each
card ``weights.format`` to its reader; the classifier loader only ever sees ``LoadedWeights``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch


@dataclass(frozen=True)
class WeightsSource:
    """A card's weights entry, as a reader needs it: the file names, and how to find and cache files."""

    card_name: str
    file: str  # the card's weights.file
    find: Callable[[str], Path]  # a file name as a card writes it -> its path (FileNotFoundError naming it)
    cache_dir: Path  # where converted weights are kept
    package: str | None = None  # the installed package holding ``file`` (format "package_file")
    sha256: str | None = None  # the digest the card expects of ``file``, when it gives one
    head_weights: str = ""  # the card's trained head, whose tensors replace the base weights'


@dataclass(frozen=True)
class Preprocessing:
    """The input a checkpoint was trained with; the card's own values win over these."""

    input_size: int  # the square side it was built at
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class LoadedWeights:
    """One checkpoint, read: what the classifier loader builds a model from."""

    state: dict[str, torch.Tensor]  # without module./_orig_mod. prefixes; a trained head's tensors in
    path: Path  # the weights file (named in messages)
    sha256: str  # of the weights file, and of the head file with it when the card has one
    class_names: tuple[str, ...] | None = None  # in output order; None: the card's labels_file names them
    preprocessing: Preprocessing | None = None  # None: the card's input size and normalisation
    options: dict = field(default_factory=dict)  # constructor arguments the weights were built with (under the card's)


class WeightReader(Protocol):
    """Reads one weights format. A new format is a module with a reader and one line in ``formats/readers.py``."""

    names_classes: bool  # its weights name their classes, so a card of this format may leave out labels_file

    def read(self, source: WeightsSource) -> LoadedWeights:
        """The weights (with the card's head in); FileNotFoundError or ValueError naming what is wrong."""
        ...


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict with the prefixes DDP (``module.``) and torch.compile (``_orig_mod.``) add taken off its keys."""
    return {_strip_prefix(key): value for key, value in state.items()}


def _strip_prefix(key: str) -> str:
    for prefix in ("module.", "_orig_mod."):
        while key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def with_head_sha256(weights_sha256: str, head_path: Path) -> str:
    """One digest for base weights and a head file together (what evaluation tables record as the weights)."""
    return hashlib.sha256((weights_sha256 + sha256_file(head_path)).encode()).hexdigest()
