"""Photo labels matched to a model's classes, or refused, before any photo is run through the model.

A label as written (a folder name, a table cell, a COCO category) is tried, in this order, as:

1. the class's name exactly as the model writes it (``Parus major`` or ``Parus major (Great Tit)``);
2. a class index, when every label is a whole number (``0`` .. ``classes - 1``);
3. a scientific name, in any case, with ``_`` for spaces (``calypte_anna``), through synonyms (*Anas strepera* is
   *Mareca strepera*), also inside an iNat 2021 folder name (``00000_Animalia_..._Calypte_anna``) or after a
   CUB-style number (``001.Black_footed_Albatross``);
4. an English name, ignoring case, spaces, ``_``, ``-`` and a possessive 's (``Rufous_Hummingbird``,
   ``BLACK-FOOTED ALBATROSS``, ``Anna_Hummingbird``):
   the model's own common names, then the committed table of 14,314 names (``taxa/data/common_names.csv``).

A label that names a species the model has no class for (a scientific name the iNat taxonomy, the synonym table or
the common-name table knows, or an English name that table knows) is **not in the model**: its photos stay in the
table as out of vocabulary (the open set), counted and named. A label that is none of these is **unmatched**:
listed with the nearest class names. When most labels are unmatched, nothing is evaluated
(``LabelReport.refusal``).
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from explorer.models.class_labels import ClassLabel
from explorer.taxa.inat21 import common_names, english_keys, parse_inat21, plain_name, scientific_for_english
from explorer.taxa.synonymy import Synonyms, clean_name, load_synonyms
from explorer.taxa.taxonomy import Taxonomy

# how a label was matched, in the order the summary lists them
EXACT, INDEX, SCIENTIFIC, SYNONYM, INAT21, COMMON = (
    "exactly",
    "by class index",
    "by scientific name",
    "through synonyms",
    "by iNat 2021 name",
    "by common name",
)
NOT_IN_MODEL, UNMATCHED = "not in the model", "unmatched"
HOW_ORDER = (EXACT, INDEX, SCIENTIFIC, SYNONYM, INAT21, COMMON, NOT_IN_MODEL, UNMATCHED)


@dataclass(frozen=True)
class LabelMatch:
    """One label as written, and what it means for this model."""

    label: str
    how: str  # one of HOW_ORDER
    class_index: int = -1  # the model's class, -1 when none
    name: str = ""  # the truth's scientific name as the table records it (the label itself when unmatched)
    detail: str = ""  # the synonym used, the species named, or the nearest class names

    @property
    def matched(self) -> bool:
        return self.class_index >= 0


@dataclass(frozen=True)
class LabelReport:
    """Every distinct label of a photo set, matched; with each label's photo count."""

    matches: dict[str, LabelMatch]
    photos: dict[str, int]

    def count(self, how: str) -> int:
        return sum(1 for m in self.matches.values() if m.how == how)

    def photo_count(self, how: str) -> int:
        return sum(self.photos[label] for label, m in self.matches.items() if m.how == how)

    def summary(self) -> str:
        """'600 photos, 20 labels: 18 by scientific name, 2 through synonyms, 0 unmatched'."""
        parts = [f"{self.count(how)} {how}" for how in HOW_ORDER if self.count(how) and how != UNMATCHED]
        parts.append(f"{self.count(UNMATCHED)} {UNMATCHED}")
        labels = len(self.matches)
        return f"{sum(self.photos.values())} photos, {labels} label{'s' if labels != 1 else ''}: " + ", ".join(parts)

    def details(self, limit: int = 20) -> list[str]:
        """The labels a person should look at: species the model does not know, and labels that match nothing."""
        lines = []
        for how, heading in (
            (NOT_IN_MODEL, "species the model has no class for (kept, as out of vocabulary)"),
            (UNMATCHED, "labels that match no class and no species we know (kept, as out of vocabulary)"),
        ):
            found = [m for m in self.matches.values() if m.how == how]
            if not found:
                continue
            lines.append(f"{len(found)} {heading}, {self.photo_count(how)} photos:")
            for m in sorted(found, key=lambda m: -self.photos[m.label])[:limit]:
                lines.append(f"  {m.label!r} ({self.photos[m.label]} photos){': ' + m.detail if m.detail else ''}")
            if len(found) > limit:
                lines.append(f"  ... and {len(found) - limit} more")
        return lines

    @property
    def refusal(self) -> str:
        """Why nothing should be evaluated ('' when the labels will do): most labels match nothing."""
        unmatched, labels = self.count(UNMATCHED), len(self.matches)
        if unmatched * 2 <= labels:
            return ""
        example = next(m for m in self.matches.values() if m.how == UNMATCHED)
        return (
            f"{unmatched} of {labels} labels match no class of the model and no species we know "
            f"(e.g. {example.label!r}{': ' + example.detail if example.detail else ''}); nothing was evaluated. "
            "A label may be a class name, a class index, a scientific or an English name; "
            "point --label-column at another column, or see the docs' 'Bring your own model'"
        )


def match_labels(
    labels: Sequence[str],
    classes: Sequence[ClassLabel],
    taxonomy: Taxonomy | None = None,
    synonyms: Synonyms | None = None,
) -> LabelReport:
    """Match every label (one per photo, as written) to ``classes``; see the module's docstring for the order."""
    synonyms = synonyms if synonyms is not None else load_synonyms()
    photos = Counter(str(label) for label in labels)
    matcher = _Matcher(classes, taxonomy, synonyms, indices=all(_is_index(label) for label in photos))
    return LabelReport({label: matcher.match(label) for label in photos}, dict(photos))


def candidate_names(labels: Sequence[str]) -> set[str]:
    """Every scientific name the labels may stand for (for loading the taxonomy rows they need)."""
    out = set()
    for label in set(map(str, labels)):
        inat, plain = parse_inat21(label.strip()), plain_name(label)
        out.update(n for n in (inat.binomial if inat else None, plain, scientific_for_english(plain)) if n)
    return out


def _is_index(label: str) -> bool:
    return label.strip().isdigit()


def _key(name: str) -> str:
    return english_keys(name)[0]


class _Matcher:
    def __init__(self, classes: Sequence[ClassLabel], taxonomy: Taxonomy | None, synonyms: Synonyms, indices: bool):
        self.classes = [c for c in classes if not c.is_background]
        self.count = len(classes)
        self.taxonomy, self.synonyms, self.indices = taxonomy, synonyms, indices
        self.exact = {}
        for c in reversed(self.classes):  # the first class wins a shared name
            self.exact[c.scientific_name] = c
            self.exact[c.display] = c
        self.by_index = {c.class_index: c for c in self.classes}
        self.by_name = {synonyms.canonical(c.scientific_name): c for c in reversed(self.classes)}
        self.by_common = {k: c for c in reversed(self.classes) if c.common_name for k in english_keys(c.common_name)}
        self.known_names = {synonyms.canonical(n) for n in (*common_names(), *synonyms.accepted)}

    def match(self, label: str) -> LabelMatch:
        written = str(label).strip()
        if written in self.exact:
            return self._found(label, EXACT, self.exact[written])
        if self.indices:
            return self._by_index(label, int(written))
        inat = parse_inat21(written)
        forms = [(inat.binomial, INAT21)] if inat else []
        forms.append((plain_name(written), SCIENTIFIC))
        for form, how in forms:
            found = self._by_scientific(label, form, how)
            if found is not None:
                return found
        return self._by_common(label, forms[-1][0]) or self._unmatched(label, forms[-1][0])

    def _found(self, label: str, how: str, cls: ClassLabel, detail: str = "") -> LabelMatch:
        return LabelMatch(label, how, cls.class_index, cls.scientific_name, detail)

    def _by_index(self, label: str, index: int) -> LabelMatch:
        if index in self.by_index:
            return self._found(label, INDEX, self.by_index[index])
        detail = f"no species class {index} (the model's classes are 0 .. {self.count - 1})"
        return LabelMatch(label, UNMATCHED, -1, label, detail)

    def _by_scientific(self, label: str, form: str, how: str) -> LabelMatch | None:
        if not form:
            return None
        canonical = self.synonyms.canonical(form)
        cls = self.by_name.get(canonical)
        if cls is not None:
            if how == SCIENTIFIC and clean_name(form) != clean_name(cls.scientific_name):
                said = self.synonyms.explain(form) or self.synonyms.explain(cls.scientific_name)
                return self._found(label, SYNONYM, cls, said)
            return self._found(label, how, cls)
        if self._known_species(canonical):
            return LabelMatch(label, NOT_IN_MODEL, -1, canonical, f"the species {canonical}")
        return None

    def _known_species(self, name: str) -> bool:
        if len(name.split()) < 2:
            return False
        if name in self.known_names:
            return True
        return self.taxonomy is not None and self.taxonomy.lineage_for(name).resolved_rank == "species"

    def _by_common(self, label: str, form: str) -> LabelMatch | None:
        key = _key(form)
        if not key:
            return None
        if key in self.by_common:
            return self._found(label, COMMON, self.by_common[key])
        scientific = scientific_for_english(form)
        if scientific is None:
            return None
        canonical = self.synonyms.canonical(scientific)
        if canonical in self.by_name:
            return self._found(label, COMMON, self.by_name[canonical], f"{form} = {canonical}")
        return LabelMatch(label, NOT_IN_MODEL, -1, canonical, f"{form} = {canonical}")

    def _unmatched(self, label: str, form: str) -> LabelMatch:
        names = {c.scientific_name: c.display for c in self.classes}
        commons = {c.common_name.lower(): c.display for c in self.classes if c.common_name}
        near = difflib.get_close_matches(clean_name(form), list(names), n=3, cutoff=0.6)
        near += difflib.get_close_matches(form.lower(), list(commons), n=3, cutoff=0.6)
        shown = list(dict.fromkeys([names.get(n) or commons[n] for n in near]))[:3]
        return LabelMatch(label, UNMATCHED, -1, label, ("nearest classes: " + "; ".join(shown)) if shown else "")
