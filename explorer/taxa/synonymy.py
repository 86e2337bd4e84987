"""Names that changed: each scientific name maps to one accepted name, so a photo's truth, a model's class and a
geo-prior's taxon are matched through synonyms, never by string equality alone.

Class names, photo labels, taxonomy rows and range-model labels come from different years: the Coral bird model
says *Anas strepera* where CUB and iNat say *Mareca strepera* (Gadwall). The table ``explorer/taxa/data/synonyms.csv``
(package data, built by ``explorer-synonyms`` from the eBird/Clements v2024 checklist and the NCBI-matched
taxonomy table in ``../shared/data/taxonomy``) lists each older name with its accepted name and the evidence.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SYNONYMS_FILE = Path(__file__).parent / "data" / "synonyms.csv"
SYNONYM_COLUMNS = ("name", "accepted_name", "common_name", "source")


def clean_name(name: str) -> str:
    """A scientific name with single spaces, genus capitalised, the rest lower case."""
    words = str(name).split()
    return " ".join([words[0].capitalize(), *(w.lower() for w in words[1:])]) if words else ""


@dataclass(frozen=True)
class Synonyms:
    """Older name -> accepted name (both cleaned), with where each pair comes from."""

    accepted: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def canonical(self, name: str) -> str:
        """The accepted name of ``name`` (itself when it is not a known synonym)."""
        cleaned = clean_name(name)
        return self.accepted.get(cleaned, cleaned)

    def explain(self, name: str) -> str:
        """'Anas strepera = Mareca strepera (source)' when ``name`` is a synonym, else ''."""
        cleaned = clean_name(name)
        if cleaned not in self.accepted:
            return ""
        return f"{cleaned} = {self.accepted[cleaned]} ({self.sources.get(cleaned, 'synonym table')})"

    def index(self, names: Sequence[str]) -> dict[str, int]:
        """Accepted name -> position in ``names``; the first wins when two names share an accepted name."""
        out: dict[str, int] = {}
        for position, name in enumerate(names):
            out.setdefault(self.canonical(name), position)
        return out

    def lookup(self, names: Sequence[str], wanted: Iterable[str]) -> list[int]:
        """Position in ``names`` of each wanted name through accepted names, -1 where none matches."""
        index = self.index(names)
        return [index.get(self.canonical(w), -1) for w in wanted]


def read_synonyms(path: Path) -> Synonyms:
    accepted, sources = {}, {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in SYNONYM_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: synonym table lacks column(s) {missing}")
        for row in reader:
            name, target = clean_name(row["name"]), clean_name(row["accepted_name"])
            if name and target and name != target:
                accepted[name], sources[name] = target, row["source"]
    return Synonyms(accepted, sources)


@functools.lru_cache(maxsize=4)
def load_synonyms(path: Path | None = None) -> Synonyms:
    """The shipped synonym table (cached); an empty table when the file is missing."""
    path = Path(path) if path else SYNONYMS_FILE
    return read_synonyms(path) if path.is_file() else Synonyms()
