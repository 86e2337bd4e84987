"""Start-up: find every usable model card, load the taxonomy once and each classifier once."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from explorer.config import ModelCard, Settings, load_model_cards
from explorer.geo import BoundPrior, bind_prior
from explorer.maps import RangeMapper
from explorer.model import Classifier, find_file, load_classifier, read_labels
from explorer.taxonomy import Taxonomy, load_taxonomy

log = logging.getLogger(__name__)

EXAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class Resources:
    """What the app serves: loaded classifiers (by card name), the ones that could not load and why."""

    classifiers: dict[str, Classifier]
    unavailable: dict[str, str] = field(default_factory=dict)
    examples: list[Path] = field(default_factory=list)
    settings: Settings | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # evaluation tables by file stem
    priors: dict[str, BoundPrior] = field(default_factory=dict)  # geo-priors by model card name
    mappers: dict[str, RangeMapper] = field(default_factory=dict)  # range maps by model card name

    def warm_maps(self) -> threading.Thread:
        """Build the land grids (a few seconds per prior) in a background thread, so the first map is quick."""

        def work():
            for mapper in {id(m): m for m in self.mappers.values()}.values():
                mapper.warm()

        thread = threading.Thread(target=work, name="warm-range-maps", daemon=True)
        thread.start()
        return thread

    @property
    def default_model(self) -> str:
        wanted = self.settings.default_model if self.settings else None
        if wanted:
            return wanted
        return next(iter(self.classifiers))  # cards are sorted by priority

    def get(self, name: str) -> Classifier:
        if name not in self.classifiers:
            why = f" ({self.unavailable[name]})" if name in self.unavailable else ""
            raise ValueError(f"unknown or unavailable model {name!r}{why}; available: {list(self.classifiers)}")
        return self.classifiers[name]


def load_resources(settings: Settings) -> Resources:
    """Load every card whose files are present. Missing files make a model unavailable (with the reason);
    a card that is wrong (e.g. label count != outputs) stops start-up with its message."""
    cards = load_model_cards(settings.checkpoint_dir)
    taxonomy = _load_shared_taxonomy(cards, settings)
    classifiers, unavailable = {}, {}
    for card in cards:
        try:
            classifiers[card.name] = load_classifier(card, settings, taxonomy)
        except FileNotFoundError as err:
            unavailable[card.name] = str(err)
            log.warning("model %s unavailable: %s", card.name, err)
    if not classifiers:
        raise RuntimeError(f"no usable model in {settings.checkpoint_dir}: {unavailable}")
    if settings.default_model and settings.default_model not in classifiers:
        raise ValueError(
            f"--model {settings.default_model!r} is not available; available: {list(classifiers)}"
            + (
                f"; {settings.default_model}: {unavailable[settings.default_model]}"
                if settings.default_model in unavailable
                else ""
            )
        )
    tables = load_eval_tables(settings.eval_dir)
    priors = load_priors(settings.checkpoint_dir, classifiers)
    mappers, by_path = {}, {}
    for name, prior in priors.items():  # one mapper per prior file, shared by the models that use it
        mappers[name] = by_path.setdefault(prior.path, RangeMapper(prior, settings.data_root))
    return Resources(classifiers, unavailable, find_examples(settings.examples_dir), settings, tables, priors, mappers)


def prior_path(checkpoint_dir: Path, card: ModelCard) -> Path:
    """The card's geo_prior, else geo/<model name>.safetensors, in the checkpoint folder."""
    return Path(checkpoint_dir) / (card.geo_prior or f"geo/{card.name}.safetensors")


def load_priors(checkpoint_dir: Path, classifiers: dict[str, Classifier]) -> dict[str, BoundPrior]:
    """Each model's geo-prior (see prior_path), bound to that model's classes; a card that names a prior file
    that is not there stops start-up."""
    priors = {}
    for name, classifier in classifiers.items():
        path = prior_path(checkpoint_dir, classifier.card)
        if classifier.card.geo_prior and not path.is_file():
            raise FileNotFoundError(f"model card {name}: geo_prior {path} does not exist")
        if path.is_file():
            priors[name] = bind_prior(path, [label.scientific_name for label in classifier.labels])
            log.info("geo-prior for %s: %d taxa", name, len(priors[name].taxa))
    return priors


def load_eval_tables(folder: Path | None) -> dict[str, pd.DataFrame]:
    """Every evaluation table in a folder, validated (a bad table stops start-up with the missing columns)."""
    from explorer.evaluate import load_table

    if folder is None or not Path(folder).is_dir():
        return {}
    from explorer.dashboard import for_dashboard

    return {path.stem: for_dashboard(load_table(path)) for path in sorted(Path(folder).glob("*.parquet"))}


def _load_shared_taxonomy(cards: list[ModelCard], settings: Settings) -> Taxonomy | None:
    """One taxonomy for the names of every iNat card whose label file is present."""
    names = []
    for card in cards:
        if card.taxonomy != "inat":
            continue
        try:
            names += [name for name, _ in read_labels(find_file(card.labels_file, settings, card), card.labels_format)]
        except FileNotFoundError:
            continue
    if not names:
        return None
    return load_taxonomy(names, supplement=settings.taxonomy_supplement)


def find_examples(folder: Path | None) -> list[Path]:
    """Example photos offered in the UI (sorted); none when the folder is absent."""
    if folder is None or not Path(folder).is_dir():
        return []
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in EXAMPLE_SUFFIXES)


def load_resources_for(settings: Settings, model: str, extra_names) -> tuple[Classifier, Taxonomy | None]:
    """One classifier, with a taxonomy that also covers ``extra_names`` (e.g. an evaluation's true names)."""
    cards = {c.name: c for c in load_model_cards(settings.checkpoint_dir)}
    if model not in cards:
        raise ValueError(f"unknown model {model!r}; cards: {sorted(cards)}")
    card = cards[model]
    names = list(extra_names)
    if card.taxonomy == "inat":
        names += [n for n, _ in read_labels(find_file(card.labels_file, settings, card), card.labels_format)]
    taxonomy = load_taxonomy(names, supplement=settings.taxonomy_supplement) if names else None
    return load_classifier(card, settings, taxonomy), taxonomy
