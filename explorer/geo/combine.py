"""Combining a classifier with a geo-prior: taxa aligned by name, vision x floored presence, renormalised; and a
prior bound to one classifier's classes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from explorer.cards import ModelCard
from explorer.geo.model import GeoPrior, load_geo_prior, presence
from explorer.places import Place
from explorer.synonyms import load_synonyms

log = logging.getLogger(__name__)

GEO_FLOOR = 0.01  # a presence score never falls below this: an out-of-range sighting is demoted, not erased
OUT_OF_RANGE = 0.05  # below this presence score a taxon is "out of known range"


@dataclass(frozen=True)
class Combined:
    """Vision and geo scores aligned on the classifier's classes, and their renormalised product.

    geo: (N,) presence score per class, NaN where the prior does not know the taxon (or no location was given).
    combined: (N,) probabilities; classes with NaN geo keep a neutral factor (the mean geo factor of the known
    taxa at that place), so that knowing nothing neither helps nor hurts them.
    """

    vision: np.ndarray
    geo: np.ndarray
    combined: np.ndarray


def align_taxa(class_names: list[str], prior_taxa: list[str]) -> np.ndarray:
    """(N,) index into the prior's taxa for each classifier class, -1 where the prior does not know it; names
    match through synonyms (a prior trained on *Anas strepera* records knows the CUB head's *Mareca strepera*)."""
    return np.array(load_synonyms().lookup(prior_taxa, class_names), dtype=np.int64)


def combine(
    vision: np.ndarray,
    geo_scores: np.ndarray | None,
    alignment: np.ndarray,
    known: np.ndarray,
    floor: float = GEO_FLOOR,
) -> Combined:
    """Multiply vision probabilities by floored presence scores and renormalise.

    Args:
        vision: (N,) classifier probabilities.
        geo_scores: (T,) prior presence scores at the place (None: no location, nothing changes).
        alignment: (N,) prior index per class (-1 unknown), from align_taxa.
        known: (T,) bool, the prior saw records of the taxon (a taxon with none has no range to speak of).
    """
    vision = np.asarray(vision, dtype=np.float64)
    geo = np.full(vision.shape, np.nan)
    if geo_scores is None:
        return Combined(vision, geo, vision.copy())
    usable = usable_classes(alignment, known)
    geo[usable] = geo_scores[alignment[usable]]
    return Combined(vision, geo, combine_many(vision[None], np.asarray(geo_scores)[None], alignment, known, floor)[0])


def usable_classes(alignment: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(N,) the class has a taxon in the prior that had training records."""
    usable = alignment >= 0
    usable[usable] = known[alignment[usable]]
    return usable


def combine_many(
    vision: np.ndarray, geo_scores: np.ndarray, alignment: np.ndarray, known: np.ndarray, floor: float = GEO_FLOOR
) -> np.ndarray:
    """combine() for a batch: (n, N) probabilities and (n, T) presence scores -> (n, N) combined probabilities.
    Rows whose scores are all NaN (no place) are returned unchanged."""
    vision = np.asarray(vision, dtype=np.float64)
    usable = usable_classes(alignment, known)
    if not usable.any():
        return vision.copy()
    factor = np.maximum(geo_scores[:, alignment[usable]], floor)  # (n, usable)
    neutral = factor.mean(axis=1, keepdims=True)  # taxa the prior does not know: neither helped nor hurt
    full = np.repeat(neutral, vision.shape[1], axis=1)
    full[:, usable] = factor
    product = vision * full
    total = product.sum(axis=1, keepdims=True)
    out = np.where(total > 0, product / np.where(total > 0, total, 1.0), vision)
    no_place = np.isnan(geo_scores).all(axis=1)
    out[no_place] = vision[no_place]
    return out


@dataclass
class BoundPrior:
    """A geo-prior aligned to one classifier's classes."""

    model: GeoPrior
    taxa: list[str]
    alignment: np.ndarray  # (N,) prior index per classifier class, -1 unknown
    known: np.ndarray  # (T,) the taxon had training records
    metrics: dict
    path: Path | None = None
    data: dict = field(default_factory=dict)  # training data, see save_geo_prior

    @property
    def usable(self) -> np.ndarray:
        """(N,) the classifier's class has a taxon in the prior that had training records."""
        return usable_classes(self.alignment, self.known)

    def scores(self, place: Place) -> np.ndarray:
        """(T,) presence scores at the place (and date, when given)."""
        return presence(self.model, np.array([place.lat]), np.array([place.lon]), np.array([place.day_of_year]))[0]

    def scores_many(self, lat: np.ndarray, lon: np.ndarray, day_of_year: np.ndarray) -> np.ndarray:
        """(n, T) presence scores; NaN rows where lat or lon is NaN (no place)."""
        lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
        out = np.full((len(lat), len(self.taxa)), np.nan)
        has = ~(np.isnan(lat) | np.isnan(lon))
        if has.any():
            out[has] = presence(self.model, lat[has], lon[has], np.asarray(day_of_year, dtype=float)[has])
        return out


def bind_prior(path: Path, class_names: list[str]) -> BoundPrior:
    model, taxa, metrics = load_geo_prior(path)
    known = np.asarray(metrics.pop("known"), dtype=bool)
    data = metrics.pop("data", {})
    return BoundPrior(model, taxa, align_taxa(class_names, taxa), known, metrics, Path(path), data)


def prior_path(checkpoint_dir: Path, card: ModelCard) -> Path:
    """The card's geo_prior, else geo/<model name>.safetensors, in the checkpoint folder."""
    return Path(checkpoint_dir) / (card.geo_prior or f"geo/{card.name}.safetensors")


def load_model_prior(checkpoint_dir: Path, card: ModelCard, class_names: list[str]) -> BoundPrior | None:
    """A model's geo-prior (see prior_path) bound to its classes; None when it has none. A card that names a
    prior file that is not there raises FileNotFoundError."""
    path = prior_path(checkpoint_dir, card)
    if card.geo_prior and not path.is_file():
        raise FileNotFoundError(f"model card {card.name}: geo_prior {path} does not exist")
    if not path.is_file():
        return None
    prior = bind_prior(path, class_names)
    log.info("geo-prior for %s: %d taxa", card.name, len(prior.taxa))
    return prior
