"""A geo-prior in the spirit of SINR (Cole et al. 2023): where (and when) is each taxon present?

Location (and optionally day of year) is wrapped with sin/cos, a small residual MLP maps it to a shared
256-d representation (the "trunk"), and one sigmoid per taxon says how likely the taxon is present there.
It is trained on presence-only records with SINR's "assume negative (full)" loss: the recorded taxon is a
positive at its location, every other taxon a pseudo-negative there, and every taxon a pseudo-negative at a
random location. The trunk does not depend on the taxon, so a range map over many cells is one matrix
product once the trunk's features for those cells are known.

This module holds the encoding, the model and its checkpoints; training is in ``explorer.geo.training`` and the
command line in ``explorer.tools.train_geo`` (``explorer-train-geo``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

INPUT_DIM = 7


def encode(lat: np.ndarray, lon: np.ndarray, day_of_year: np.ndarray | None = None) -> torch.Tensor:
    """(N, 7) float32: sin/cos of lon and lat (SINR's wrap), sin/cos of the day of year, and a has-date flag.

    A missing day (None, or NaN entries) encodes as zeros with the flag off, so one model serves both.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    x, y = np.pi * lon / 180.0, np.pi * lat / 180.0  # lon wraps around; lat spans [-pi/2, pi/2]
    parts = [np.sin(x), np.cos(x), np.sin(y), np.cos(y)]
    if day_of_year is None:
        day_of_year = np.full(lat.shape, np.nan)
    day = np.asarray(day_of_year, dtype=np.float64)
    has = ~np.isnan(day)
    angle = 2 * np.pi * np.where(has, day, 0.0) / 365.25
    parts += [np.where(has, np.sin(angle), 0.0), np.where(has, np.cos(angle), 0.0), has.astype(np.float64)]
    return torch.from_numpy(np.stack(parts, axis=-1).astype(np.float32))


@dataclass(frozen=True)
class GeoPriorConfig:
    hidden: int = 256
    layers: int = 4
    dropout: float = 0.3
    positive_weight: float = 2048.0  # SINR's lambda: a presence counts like this many pseudo-absences
    epochs: int = 12
    batch_size: int = 2048
    lr: float = 5e-4
    date_dropout: float = 0.5  # share of training records shown without their date
    seed: int = 0


class ResidualLayer(nn.Module):
    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.block = nn.Sequential(
            nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, width), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class GeoPrior(nn.Module):
    """encode(...) (N, 7) -> trunk (N, hidden) -> per-taxon logits (N, T)."""

    def __init__(self, num_taxa: int, config: GeoPriorConfig):
        super().__init__()
        self.config = config
        layers = [nn.Linear(INPUT_DIM, config.hidden), nn.ReLU()]
        layers += [ResidualLayer(config.hidden, config.dropout) for _ in range(config.layers)]
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(config.hidden, num_taxa)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (N, 7) -> (N, T) logits
        return self.head(self.trunk(features))

    def features(self, lat, lon, day_of_year=None) -> torch.Tensor:
        """(N, hidden): the taxon-independent trunk at these places (and days); the head makes them scores."""
        return self.trunk(encode(lat, lon, day_of_year))


@torch.no_grad()
def presence(model, lat, lon, day_of_year=None) -> np.ndarray:
    """(N, T) presence scores in [0, 1], for any range model with ``features`` and ``head`` (ours, BirdNET's)."""
    return torch.sigmoid(model.head(model.features(lat, lon, day_of_year))).numpy()


def save_geo_prior(
    model: GeoPrior,
    taxa: list[str],
    path: Path,
    metrics: dict | None = None,
    known: list[bool] | None = None,
    data: dict | None = None,
) -> Path:
    """safetensors weights with the config, the taxon list, which taxa had training records, the metrics, and
    the training data (occurrence files relative to the data root, the held-out share, cell size and seed) so
    that the held-in / held-out split can be rebuilt."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "config": json.dumps(asdict(model.config)),
        "taxa": json.dumps(taxa),
        "metrics": json.dumps(metrics or {}),
        "known": json.dumps(known if known is not None else [True] * len(taxa)),
        "data": json.dumps(data or {}),
    }
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=metadata)
    return path


def load_geo_prior(path: Path) -> tuple[GeoPrior, list[str], dict]:
    """(model in eval mode, taxon names, metrics) from a checkpoint written by save_geo_prior; metrics["known"]
    says which taxa had training records."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "config" not in metadata or "taxa" not in metadata:
        raise ValueError(f"{path} is not a geo-prior checkpoint (no config/taxa in its metadata)")
    config = GeoPriorConfig(**json.loads(metadata["config"]))
    taxa = json.loads(metadata["taxa"])
    model = GeoPrior(len(taxa), config)
    model.load_state_dict(load_file(str(path)))
    metrics = json.loads(metadata.get("metrics", "{}"))
    metrics["known"] = json.loads(metadata.get("known", json.dumps([True] * len(taxa))))
    metrics["data"] = json.loads(metadata.get("data", "{}"))
    return model.eval(), taxa, metrics
