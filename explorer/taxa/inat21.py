"""iNat 2021 class names carry their lineage:
``03111_Animalia_Chordata_Aves_Passeriformes_Paridae_Poecile_atricapillus`` (the dataset's folder names, which the
seeds' iNat21 ViT uses as its class-to-index keys): number, kingdom, phylum, class, order, family, genus, epithet.
The lineage comes straight from the name and is cross-checked against the iNat taxonomy, saying where today's
taxonomy places the species differently. Common names come from the committed table
``explorer/taxa/data/common_names.csv`` (eBird/Clements v2024 for birds, the Coral label files for birds, insects and
plants; built by ``explorer-synonyms --common-names``); the iNat taxonomy package itself has none."""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass
from pathlib import Path

from explorer.taxa.synonymy import clean_name, load_synonyms
from explorer.taxa.taxonomy import RANKS, Lineage, Taxonomy

COMMON_NAMES_FILE = Path(__file__).parent / "data" / "common_names.csv"
_PART = re.compile(r"^[A-Za-z][A-Za-z-]*$")
SOURCE = "iNat 2021 class name"


@dataclass(frozen=True)
class Inat21Name:
    number: int
    ranks: dict[str, str]  # kingdom .. genus, and species (the binomial)

    @property
    def binomial(self) -> str:
        return self.ranks["species"]


def parse_inat21(raw: str) -> Inat21Name | None:
    """The parts of one iNat 2021 class name; None when ``raw`` is not one."""
    parts = str(raw).strip().split("_")
    if len(parts) != 8 or not parts[0].isdigit() or not all(_PART.match(p) for p in parts[1:]):
        return None
    kingdom, phylum, klass, order, family, genus, epithet = parts[1:]
    if not genus[:1].isupper() or not epithet.islower():
        return None
    ranks = dict(zip(RANKS[:6], (kingdom, phylum, klass, order, family, genus), strict=True))
    return Inat21Name(int(parts[0]), {**ranks, "species": f"{genus} {epithet}"})


def is_inat21(names: list[str]) -> bool:
    """True when every name is an iNat 2021 class name."""
    return bool(names) and all(parse_inat21(n) is not None for n in names)


def inat21_lineage(raw: str, taxonomy: Taxonomy | None) -> Lineage:
    """The lineage the class name states, checked against the iNat taxonomy (ValueError for other names)."""
    parsed = parse_inat21(raw)
    if parsed is None:
        raise ValueError(f"{raw!r} is not an iNat 2021 class name (NNNNN_Kingdom_..._Genus_epithet)")
    if taxonomy is None:
        return Lineage(dict(parsed.ranks), "species", SOURCE, None, "not checked: no taxonomy loaded")
    found = taxonomy.lineage_for(parsed.binomial)
    if found.resolved_rank is None:
        return Lineage(dict(parsed.ranks), "species", SOURCE, None, "not in the iNat taxonomy under this name")
    differ = [
        f"{rank} {found.at(rank)} (the class name says {parsed.ranks[rank]})"
        for rank in RANKS[:6]
        if found.at(rank) and found.at(rank) != parsed.ranks[rank]
    ]
    if found.at("species") and clean_name(found.at("species")) != clean_name(parsed.binomial):
        differ.append(f"species {found.at('species')} (the class name says {parsed.binomial})")
    note = ("the iNat taxonomy now has " + "; ".join(differ)) if differ else "agrees with the iNat taxonomy"
    if found.resolved_rank != "species":
        note = f"the species is not in the iNat taxonomy under this name; its genus {note.replace('the iNat', 'the')}"
    taxon_id = found.taxon_id if found.resolved_rank == "species" else None
    return Lineage(dict(parsed.ranks), "species", f"{SOURCE}, checked against {found.source}", taxon_id, note)


@functools.cache
def common_names(path: Path = COMMON_NAMES_FILE) -> dict[str, str]:
    """Scientific name (cleaned) -> English name, from the committed table ({} when it is missing)."""
    if not Path(path).is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {clean_name(row["scientific_name"]): row["common_name"] for row in csv.DictReader(handle)}


LATIN = re.compile(r"^[A-Z][a-z-]+ [a-z-]+( [a-z-]+)?$")  # Genus epithet (subspecies), as written
_CLASS_NUMBER = re.compile(r"^\d+[._\s-]+(?=\D)")  # CUB's "001." before a class folder's name


def plain_name(name: str) -> str:
    """A class folder's name as words: CUB's number dropped, '_' as spaces ('001.Black_footed_Albatross' ->
    'Black footed Albatross')."""
    return " ".join(_CLASS_NUMBER.sub("", str(name).strip()).replace("_", " ").split())


def english_keys(name: str) -> tuple[str, ...]:
    """An English name's letters and digits, lower case ('Black-footed Albatross' = 'BLACK_FOOTED_ALBATROSS'), and
    the same without a possessive 's ("Anna's Hummingbird" = 'Anna_Hummingbird', CUB's spelling)."""
    plain = re.sub(r"[^0-9a-z]", "", name.lower())
    return tuple(dict.fromkeys((plain, re.sub(r"[^0-9a-z]", "", re.sub(r"['\u2019]s\b", "", name.lower())))))


@functools.cache
def _by_english() -> dict[str, str]:
    return {key: scientific for scientific, common in common_names().items() for key in english_keys(common)}


def scientific_for_english(name: str) -> str | None:
    """The scientific name an English name stands for in the committed table (None when it is not one there)."""
    return _by_english().get(english_keys(name)[0])


def class_name_as_taxon(name: str) -> tuple[str, str]:
    """(scientific name, English name) for a class name as a training set wrote it: a Latin binomial as it is
    (its English name from the table), 'Blue_Jay' or '001.Black_footed_Albatross' through the table of English
    names; any other name unchanged, with no English name."""
    text = plain_name(name)
    if LATIN.match(text):
        return text, common_name(text)
    scientific = scientific_for_english(text)
    if scientific is None:
        return name, ""
    return scientific, common_names().get(clean_name(scientific), text)


def common_name(scientific: str, synonyms=None) -> str:
    """The English name of a species, also through its accepted name; "" when no table has one."""
    table = common_names()
    name = clean_name(scientific)
    if name in table:
        return table[name]
    accepted = synonyms.canonical(name) if synonyms is not None else name
    return table.get(accepted, "")


def inat21_labels(raw_names: list[str]) -> list[tuple[str, str]]:
    """(binomial, common name) per iNat 2021 class name, for a card's label list."""
    out = []
    for raw in raw_names:
        parsed = parse_inat21(raw)
        if parsed is None:
            raise ValueError(f"{raw!r} is not an iNat 2021 class name (NNNNN_Kingdom_..._Genus_epithet)")
        out.append((parsed.binomial, common_name(parsed.binomial, load_synonyms())))
    return out
