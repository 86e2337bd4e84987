import numpy as np
import pytest

from explorer.taxa.taxonomy import (
    RANKS,
    ClassTree,
    Lineage,
    divergence_rank,
    imagenet_lineage,
    load_taxonomy,
    lowest_common_ancestor,
    split_binomial,
)


def lin(*names):
    return Lineage(ranks=dict(zip(RANKS, list(names) + [None] * (len(RANKS) - len(names)))))


CHICKADEE = lin("Animalia", "Chordata", "Aves", "Passeriformes", "Paridae", "Poecile", "Poecile atricapillus")
MOUNTAIN = lin("Animalia", "Chordata", "Aves", "Passeriformes", "Paridae", "Poecile", "Poecile gambeli")
TIT = lin("Animalia", "Chordata", "Aves", "Passeriformes", "Paridae", "Parus", "Parus major")
OWL = lin("Animalia", "Chordata", "Aves", "Strigiformes", "Strigidae", "Athene", "Athene cunicularia")
OAK = lin("Plantae", "Tracheophyta", "Magnoliopsida", "Fagales", "Fagaceae", "Quercus", "Quercus alba")


@pytest.mark.parametrize(
    "a,b,rank",
    [
        (CHICKADEE, CHICKADEE, "correct"),
        (CHICKADEE, MOUNTAIN, "species"),
        (CHICKADEE, TIT, "genus"),
        (CHICKADEE, OWL, "order"),
        (CHICKADEE, OAK, "kingdom"),
    ],
)
def test_divergence_rank(a, b, rank):
    assert divergence_rank(a, b) == rank


def test_divergence_skips_unknown_ranks_and_says_unknown_when_nothing_compares():
    genus_only = lin(None, None, None, None, None, "Poecile", "Poecile hudsonicus")
    assert divergence_rank(CHICKADEE, genus_only) == "species"
    assert divergence_rank(CHICKADEE, lin()) == "unknown"


def test_lowest_common_ancestor():
    assert lowest_common_ancestor(CHICKADEE, MOUNTAIN) == ("genus", "Poecile")
    assert lowest_common_ancestor(CHICKADEE, OWL) == ("class", "Aves")
    assert lowest_common_ancestor(CHICKADEE, CHICKADEE) == ("species", "Poecile atricapillus")
    assert lowest_common_ancestor(CHICKADEE, OAK) is None


def test_split_binomial():
    assert split_binomial("Poecile atricapillus") == ("Poecile", "Poecile atricapillus")
    assert split_binomial("Junco hyemalis oreganus") == ("Junco", "Junco hyemalis")
    assert split_binomial("background") == (None, None)
    assert split_binomial("great white shark") == (None, None)


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy(["Poecile atricapillus", "Chen rossii", "Ixobrychus exilis", "Madeupus nonexistens"])


def test_real_taxonomy_resolves_species(taxonomy):
    lineage = taxonomy.lineage_for("Poecile atricapillus", {"class": "Aves"})
    assert lineage.resolved_rank == "species" and lineage.taxon_id == 144815
    assert lineage.as_dict() == dict(zip(RANKS, CHICKADEE.ranks.values()))


def test_unresolved_name_keeps_only_what_is_known(taxonomy):
    lineage = taxonomy.lineage_for("Madeupus nonexistens")
    assert lineage.resolved_rank is None
    assert lineage.at("genus") == "Madeupus" and lineage.at("family") is None and lineage.at("kingdom") is None
    assert "higher ranks unknown" in lineage.note


def test_not_a_binomial(taxonomy):
    assert taxonomy.lineage_for("background").resolved_rank is None


def test_imagenet_lineages_are_honest():
    assert imagenet_lineage(0).at("kingdom") == "Animalia" and imagenet_lineage(0).at("class") is None
    assert imagenet_lineage(992).at("kingdom") == "Fungi"
    assert imagenet_lineage(500).resolved_rank is None and "not a taxonomic class" in imagenet_lineage(500).note


def test_class_tree_sums():
    tree = ClassTree.from_lineages([CHICKADEE, MOUNTAIN, TIT, OWL, lin()])
    probs = np.array([0.4, 0.3, 0.1, 0.15, 0.05])
    genus = dict(zip(tree.group_names["genus"], tree.clade_sums(probs, "genus")))
    assert genus == pytest.approx({"Athene": 0.15, "Parus": 0.1, "Poecile": 0.7})
    assert tree.clade_sums(probs, "class").tolist() == pytest.approx([0.95])
