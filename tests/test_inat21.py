"""iNat 2021 class names: the lineage from the name, checked against the iNat taxonomy; common names."""

import pytest

from explorer.taxa.inat21 import common_name, inat21_labels, inat21_lineage, is_inat21, parse_inat21
from explorer.taxa.taxonomy import load_taxonomy

CHICKADEE = "03111_Animalia_Chordata_Aves_Passeriformes_Paridae_Poecile_atricapillus"
CHICKADEE_RANKS = {
    "kingdom": "Animalia",
    "phylum": "Chordata",
    "class": "Aves",
    "order": "Passeriformes",
    "family": "Paridae",
    "genus": "Poecile",
    "species": "Poecile atricapillus",
}


def test_a_name_gives_every_rank():
    parsed = parse_inat21(CHICKADEE)
    assert parsed.number == 3111 and parsed.binomial == "Poecile atricapillus"
    assert parsed.ranks == CHICKADEE_RANKS


@pytest.mark.parametrize(
    "name",
    [
        "Poecile atricapillus",
        "3111_Animalia_Chordata_Aves_Passeriformes_Paridae_Poecile",  # a part short
        "03111_Animalia_Chordata_Aves_Passeriformes_Paridae_Poecile_Atricapillus",  # epithet capitalised
        "0311a_Animalia_Chordata_Aves_Passeriformes_Paridae_Poecile_atricapillus",
        "",
    ],
)
def test_other_names_are_not_taken_for_inat21(name):
    assert parse_inat21(name) is None
    assert not is_inat21([CHICKADEE, name])
    with pytest.raises(ValueError, match="is not an iNat 2021 class name"):
        inat21_lineage(name, None)


def test_the_taxonomy_check_says_where_it_differs():
    taxonomy = load_taxonomy(["Poecile atricapillus"])
    moved = CHICKADEE.replace("_Paridae_", "_Fringillidae_")
    lineage = inat21_lineage(moved, taxonomy)
    assert lineage.at("family") == "Fringillidae"  # what the model was trained with
    assert lineage.note == "the iNat taxonomy now has family Paridae (the class name says Fringillidae)"
    assert inat21_lineage(CHICKADEE, taxonomy).note == "agrees with the iNat taxonomy"
    assert inat21_lineage(CHICKADEE, None).note == "not checked: no taxonomy loaded"


def test_common_names_come_from_the_committed_table():
    assert inat21_labels([CHICKADEE]) == [("Poecile atricapillus", "Black-capped Chickadee")]
    assert common_name("Danaus plexippus") == "Monarch"  # an insect, from the Coral insect labels
    assert common_name("Poecile notarealspecies") == ""
