"""A classifier's outputs as taxa: each class's names and lineage (through the taxonomy, the ImageNet hierarchy or
the iNat 2021 class name itself), and which class means "nothing here"."""

from __future__ import annotations

from dataclasses import dataclass

from explorer.models.cards import ModelCard
from explorer.taxa.inat21 import inat21_lineage
from explorer.taxa.taxonomy import Lineage, Taxonomy, imagenet_lineage, split_binomial


@dataclass(frozen=True)
class ClassLabel:
    """One output of a classifier."""

    class_index: int
    scientific_name: str
    common_name: str
    lineage: Lineage
    is_background: bool = False

    @property
    def display(self) -> str:
        return f"{self.scientific_name} ({self.common_name})" if self.common_name else self.scientific_name


def build_labels(
    card: ModelCard, names: list[tuple[str, str]], taxonomy: Taxonomy | None, raw: list[str] | None = None
) -> list[ClassLabel]:
    """ClassLabels with lineages: iNat names through the taxonomy, ImageNet by class order, and iNat 2021 class
    names (``raw``) from the name itself, checked against the taxonomy."""
    labels = []
    for index, (name, common) in enumerate(names):
        background = card.background_label is not None and name == card.background_label
        if background:
            lineage = Lineage(ranks={}, note=f"no {card.subject} found")
        elif raw is not None:
            lineage = inat21_lineage(raw[index], taxonomy)
        elif card.taxonomy == "imagenet":
            lineage = imagenet_lineage(index)
        elif card.taxonomy == "inat" and taxonomy is not None:
            lineage = taxonomy.lineage_for(name, card.taxon_scope or None)
        else:
            genus, binomial = split_binomial(name)
            lineage = Lineage(ranks={"genus": genus, "species": binomial}, note="no taxonomy loaded")
        labels.append(ClassLabel(index, name, common, lineage, is_background=background))
    return labels
