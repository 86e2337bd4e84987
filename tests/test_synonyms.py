"""Names that changed are matched through synonyms: truths to classes, classes to a prior's taxa, lineages."""

import numpy as np
import pytest
from conftest import write_tiny_checkpoint

from explorer.taxa.synonymy import Synonyms, clean_name, load_synonyms, read_synonyms


def test_clean_name_and_canonical():
    table = Synonyms({"Anas strepera": "Mareca strepera"}, {"Anas strepera": "eBird"})
    assert clean_name("  anas   STREPERA ") == "Anas strepera"
    assert table.canonical("anas  strepera") == "Mareca strepera"
    assert table.canonical("Mareca strepera") == "Mareca strepera"
    assert table.explain("Anas strepera") == "Anas strepera = Mareca strepera (eBird)"
    assert table.explain("Parus major") == ""
    assert table.lookup(["Parus major", "Anas strepera"], ["Mareca strepera", "Parus major", "Bubo bubo"]) == [1, 0, -1]


def test_read_synonyms_names_a_missing_column(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("name,accepted_name\nA b,C d\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"\['common_name', 'source'\]"):
        read_synonyms(path)


def test_shipped_table_has_the_four_cub_names():
    table = load_synonyms()
    assert table.canonical("Anas strepera") == "Mareca strepera"
    assert table.canonical("Coccothraustes vespertinus") == "Hesperiphona vespertina"
    assert table.canonical("Picoides pubescens") == "Dryobates pubescens"
    assert table.canonical("Oreothlypis ruficapilla") == "Leiothlypis ruficapilla"
    assert len(table.accepted) == 73


def test_lineage_through_a_synonym():
    from explorer.taxa.taxonomy import load_taxonomy

    lineage = load_taxonomy(["Anas strepera"]).lineage_for("Anas strepera", {"class": "Aves"})
    assert (lineage.resolved_rank, lineage.at("genus"), lineage.taxon_id) == ("species", "Mareca", 558439)
    assert "synonym Anas strepera = Mareca strepera" in lineage.note


def test_truth_matches_an_old_class_name(tmp_path):
    from explorer.diagnose.table import match_truth
    from explorer.models.cards import load_model_card
    from explorer.models.classifier import load_classifier
    from explorer.settings import Settings
    from explorer.taxa.taxonomy import Lineage, load_taxonomy

    labels = ["Anas strepera (Gadwall)", "Parus major (Great Tit)", "background"]
    write_tiny_checkpoint(tmp_path, labels=labels, name="ducks")
    taxonomy = load_taxonomy(["Anas strepera", "Parus major"])
    classifier = load_classifier(load_model_card(tmp_path / "ducks.json"), Settings(checkpoint_dir=tmp_path), taxonomy)
    names = ["Mareca strepera", "Parus major", "Anas platyrhynchos"]
    none = Lineage(ranks={})
    assert match_truth(classifier, names, [none] * 3).tolist() == [0, 1, -1]
    assert match_truth(classifier, names, [none] * 3, Synonyms()).tolist() == [-1, 1, -1]  # string equality alone


def test_prior_taxa_align_through_synonyms():
    from explorer.geo.combine import align_taxa

    aligned = align_taxa(["Mareca strepera", "Parus major", "Bubo bubo"], ["Parus major", "Anas strepera"])
    assert np.array_equal(aligned, [1, 0, -1])


@pytest.mark.shared_data
def test_the_shipped_table_is_what_the_tool_builds(tmp_path):
    from explorer.tools.synonyms import main

    main(["--out", str(tmp_path / "s.csv")])
    from explorer.taxa.synonymy import SYNONYMS_FILE

    assert (tmp_path / "s.csv").read_text(encoding="utf-8") == SYNONYMS_FILE.read_text(encoding="utf-8")
