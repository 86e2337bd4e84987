"""Per-rank heads: loading and checking, answers, the taxonomy-smoothed targets, and the one L-BFGS fit and one
hold-out chooser behind every head, on hand-built numbers."""

import json

import numpy as np
import pandas as pd
import pytest

from explorer.models.rank_heads import RankHead, RankHeads, load_rank_heads, save_rank_heads
from explorer.represent.probes import choose_weight_decay, fit_linear_head
from explorer.represent.rank_training import choose_smoothing, fit_rank_heads, taxonomy_targets

TREE = pd.DataFrame(
    {
        "order": ["O1", "O1", "O1", "O1", "O2"],
        "family": ["F1", "F1", "F1", "F2", "F3"],
        "genus": ["G1", "G1", "G2", "G3", "G4"],
        "species": ["G1 a", "G1 b", "G2 c", "G3 d", "G4 e"],
    }
)


def test_taxonomy_targets_spread_by_closeness():
    soft = taxonomy_targets(TREE, epsilon=0.3, decay=0.5)
    # class 0: genus level {1}, family {2}, order {3}, rest {4}: shares 1, .5, .25, .125 of 0.3
    total = 1 + 0.5 + 0.25 + 0.125
    assert soft[0] == pytest.approx([0.7, 0.3 / total, 0.15 / total, 0.075 / total, 0.0375 / total])
    # class 3 (alone in its family): order {0, 1, 2} share 0.25 each third, rest {4} 0.125
    assert soft[3] == pytest.approx([0.25 / 0.375 * 0.3 / 3] * 3 + [0.7, 0.125 / 0.375 * 0.3])
    assert soft.sum(axis=1) == pytest.approx(np.ones(5))
    assert taxonomy_targets(TREE.iloc[:1], 0.3, 0.5).tolist() == [[1.0]]  # nobody to spread to


# Three classes in 2-D, one photo of class 0 near the middle; soft targets as the smoothing makes them
FEATURES = np.array(
    [[2.0, 0.0], [1.5, 0.5], [1.0, -0.5], [0.0, 2.0], [0.5, 1.5], [-0.5, 1.0], [-2.0, -2.0], [-1.5, -1.0], [0.2, 0.1]],
    np.float32,
)
CLASSES = np.array([0, 0, 0, 1, 1, 1, 2, 2, 0])
SOFT = np.array([[0.8, 0.15, 0.05], [0.15, 0.8, 0.05], [0.1, 0.1, 0.8]])


def test_one_fit_for_hard_and_soft_targets_gives_the_weights_of_the_two_loops_it_replaced():
    """Weights and biases written down from fit_linear_head (class indices) and fit_smoothed_head (its own
    -sum(p log softmax) loss) before they were merged, seed 0, L2 0.01; the merged fit must give them within 1e-5."""
    hard = fit_linear_head(FEATURES, CLASSES, 3, 0.01)
    assert hard.weight.detach().numpy() == pytest.approx(
        np.array([[1.573588, -0.855510], [-0.422473, 1.918657], [-1.151121, -1.063146]]), abs=1e-5
    )
    assert hard.bias.detach().numpy() == pytest.approx([1.222220, -0.098596, -0.639727], abs=1e-5)
    soft = fit_linear_head(FEATURES, SOFT[CLASSES], 3, 0.01)
    assert soft.weight.detach().numpy() == pytest.approx(
        np.array([[0.740180, -0.304419], [-0.157954, 0.805651], [-0.582322, -0.501227]]), abs=1e-5
    )
    assert soft.bias.detach().numpy() == pytest.approx([0.619020, 0.251133, -0.386254], abs=1e-5)
    one_hot = fit_linear_head(FEATURES, np.eye(3)[CLASSES], 3, 0.01)  # the same loss as the indices
    assert one_hot.weight.detach().numpy() == pytest.approx(hard.weight.detach().numpy(), abs=1e-5)
    with pytest.raises(ValueError, match=r"targets must be \(9,\) class indices or \(9, 3\) probabilities"):
        fit_linear_head(FEATURES, SOFT, 3, 0.01)


def test_one_hold_out_chooser_picks_the_same_l2_and_smoothing_as_before():
    """Hold-out top-1 of each setting (12 of 60 photos held out, seed 0), as the two choosers gave before they
    became one; ties go to the first setting in the grid."""
    rng = np.random.default_rng(0)
    classes = np.repeat(np.arange(5), 12)
    features = (np.eye(5)[classes] + rng.normal(0, 0.8, (60, 5))).astype(np.float32)  # overlapping clouds
    assert choose_weight_decay(features, classes, 5) == (1e-3, {1e-4: 8 / 12, 1e-3: 9 / 12, 1e-2: 9 / 12})
    grid = ((0.1, 0.5), (0.4, 0.5), (0.9, 0.5))
    assert choose_smoothing(features, classes, TREE, 0.01, grid) == (
        (0.1, 0.5),
        {(0.1, 0.5): 9 / 12, (0.4, 0.5): 8 / 12, (0.9, 0.5): 0.0},
    )


def test_rank_heads_round_trip_answers_and_refusals(tmp_path):
    heads = RankHeads(
        (
            RankHead("genus", ("A", "B"), np.array([[1, 0], [0, 1]], np.float32), np.zeros(2, np.float32)),
            RankHead("order", ("X",) * 1 + ("Y",), np.array([[0, 0], [0, 0]], np.float32), np.array([0, 1.0])),
        ),
        "hand-built",
    )
    path = save_rank_heads(tmp_path / "m_rank_heads.json", heads)
    back = load_rank_heads(path)
    assert [h.rank for h in back.heads] == ["order", "genus"]  # deepest last
    answers = back.answers(np.array([[2.0, 0.0], [0.0, 3.0]]))
    assert answers["genus"][0].tolist() == ["A", "B"]
    assert answers["genus"][1] == pytest.approx([np.exp(2) / (np.exp(2) + 1), np.exp(3) / (np.exp(3) + 1)])
    assert answers["order"][0].tolist() == ["Y", "Y"]
    spec = json.loads(path.read_text())
    spec["ranks"]["genus"] = ["A", "B", "C"]
    path.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="genus has 3 names but weights"):
        load_rank_heads(path)
    spec["ranks"] = {"tribe": ["A"]}
    path.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="unknown rank 'tribe'"):
        load_rank_heads(path)


def test_fit_rank_heads_learns_separable_clades():
    rng = np.random.default_rng(0)
    centres = np.eye(5) * 6
    rows = np.repeat(np.arange(5), 12)
    embeddings = centres[rows] + rng.normal(0, 0.3, (60, 5))
    lineages = TREE.iloc[rows].reset_index(drop=True)
    lineages.loc[0, "genus"] = None  # unknown at one rank: left out of that head only
    heads, stats = fit_rank_heads(embeddings.astype(np.float32), lineages, "test")
    assert [h.rank for h in heads.heads] == ["order", "family", "genus", "species"]
    assert stats["genus"]["photos"] == 59 and stats["species"]["photos"] == 60
    answers = heads.answers(centres)
    assert answers["family"][0].tolist() == ["F1", "F1", "F1", "F2", "F3"]
    assert answers["species"][0].tolist() == TREE["species"].tolist()


def _tiny_with_heads(tiny_dir, tmp_path, dim=None, input_module="", random=False):
    """The tiny test model's card with rank heads whose weights are zero: each head says the softmax of its bias."""
    import shutil

    from explorer.models.cards import load_model_card
    from explorer.models.classifier import load_classifier
    from explorer.models.features import EmbeddingCapture
    from explorer.settings import Settings
    from explorer.taxa.taxonomy import load_taxonomy

    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_dir, folder)
    card = json.loads((folder / "tiny.json").read_text())
    plain = load_classifier(load_model_card(folder / "tiny.json"), Settings(checkpoint_dir=folder))
    if dim is None:
        import torch

        with EmbeddingCapture(plain.cam_layer) as capture, torch.no_grad():
            plain.module(torch.zeros(1, 3, plain.card.input_size, plain.card.input_size))
        dim = capture.array().shape[1]
    genus = RankHead("genus", ("Athene", "Parus", "Poecile"), np.zeros((3, dim), np.float32), np.log([1, 3, 1.0]))
    species = RankHead("species", ("Parus major", "Poecile gambeli"), np.zeros((2, dim), np.float32), np.log([1, 4.0]))
    if random:  # answers that depend on the features
        rng = np.random.default_rng(1)
        genus = RankHead("genus", genus.names, rng.normal(size=(3, dim)).astype(np.float32), genus.bias)
    save_rank_heads(folder / "rank_heads" / "tiny.json", RankHeads((genus, species), "hand-built", input_module))
    card["rank_heads"] = "rank_heads/tiny.json"
    (folder / "tiny.json").write_text(json.dumps(card))
    taxonomy = load_taxonomy(["Poecile atricapillus", "Poecile gambeli", "Parus major", "Athene cunicularia"])
    return load_classifier(load_model_card(folder / "tiny.json"), Settings(checkpoint_dir=folder), taxonomy)


def test_identify_gives_each_rank_heads_answer_beside_the_species_head(tiny_dir, tmp_path, photo_rgb):
    from explorer.identify.answer import identify, result_to_json
    from explorer.identify.present import rank_heads_html

    classifier = _tiny_with_heads(tiny_dir, tmp_path)
    result = identify(classifier, photo_rgb, top_k=3)
    genus, species = result.rank_answers
    assert (genus.rank, genus.head_name, species.head_name) == ("genus", "Parus", "Poecile gambeli")
    assert genus.head_probability == pytest.approx(0.6) and species.head_probability == pytest.approx(0.8)
    vision = np.exp(result.logits - result.logits.max())
    vision /= vision.sum()
    top = classifier.labels[int(np.argmax(vision))]
    assert species.top1_name == (None if top.is_background else top.scientific_name)
    assert species.consistent == (top.scientific_name == "Poecile gambeli")
    sums = classifier.tree.clade_sums(vision, "genus")
    assert genus.rollup_name == classifier.tree.group_names["genus"][int(np.argmax(sums))]
    assert genus.rollup_probability == pytest.approx(float(sums.max()))
    assert result_to_json(result)["rank_heads"][0]["head_name"] == "Parus"
    page = rank_heads_html(result)
    assert "<i>Parus</i> 60.0%" in page
    assert ("⚠ inconsistent" in page) == (not genus.consistent or not species.consistent)


def test_rank_heads_of_the_wrong_size_are_refused_at_load(tiny_dir, tmp_path):
    with pytest.raises(ValueError, match=r"take 7-d features, but the embedding \(the CAM layer, pooled\) gives 16-d"):
        _tiny_with_heads(tiny_dir, tmp_path, dim=7)


def test_rank_head_accuracy_against_the_summed_species_head():
    from explorer.diagnose.representation import rank_head_accuracy

    view = pd.DataFrame(
        {
            "status": ["ok"] * 5,
            "true_genus": pd.Categorical(["G1", "G1", "G2", "G2", "G9"]),
            "head_genus": ["G1", "G2", "G2", "G2", "G1"],
            "head_knows_genus": [True, True, True, True, False],  # G9: the genus head has no class for it
            "rollup_correct_genus": [True, True, False, True, False],
            "pred_genus": ["G1", "G1", "G1", "G2", "G1"],
            "true_species": ["a", "a", "b", "c", "d"],
            "head_species": ["a", "b", "b", "c", "d"],
            "head_knows_species": [True] * 5,
            "correct_1": [True, False, True, True, False],
            "pred_species": ["a", "x", "b", "c", "y"],
        }
    )
    frame = rank_head_accuracy(view)
    genus, species = frame.to_dict("records")
    assert (genus["photos"], genus["own head"], genus["species head summed"]) == (4, 0.75, 0.75)
    assert genus["top-1 species' clade"] == 0.75
    assert (genus["only the own head right"], genus["only the summed species head right"]) == (1, 1)
    assert (species["photos"], species["own head"], species["species head summed"]) == (5, 0.8, 0.6)
    assert rank_head_accuracy(view.drop(columns=[c for c in view if c.startswith("head_")])).empty


def test_rank_heads_can_read_the_species_heads_input(tiny_dir, tmp_path, photo_rgb):
    from explorer.identify.answer import identify

    classifier = _tiny_with_heads(tiny_dir, tmp_path, input_module="classifier", random=True)
    assert classifier.rank_heads.input_module == "classifier"
    result = identify(classifier, photo_rgb, top_k=2)
    # the tiny model's linear classifier reads the pooled features: the same numbers as the embedding
    names, probs = classifier.rank_heads.answers(result.embedding[None, :])["genus"]
    assert result.rank_answers[0].head_name == names[0]
    assert result.rank_answers[0].head_probability == pytest.approx(float(probs[0]), rel=1e-5)
    with pytest.raises(ValueError, match="rank heads read the input of nothing_here, which the model lacks"):
        _tiny_with_heads(tiny_dir, tmp_path / "again", input_module="nothing_here", dim=8)


def test_evaluation_table_gets_the_heads_answers_from_the_same_pass(tiny_dir, tmp_path, photo_rgb):
    from explorer.diagnose.model_pass import evaluate_photos

    classifier = _tiny_with_heads(tiny_dir, tmp_path, input_module="classifier", random=True)
    photo_rgb.save(tmp_path / "a.png")
    manifest = pd.DataFrame(
        {
            "path": ["a.png", "missing.png"],
            "abs_path": [str(tmp_path / "a.png"), str(tmp_path / "missing.png")],
            "scientific_name": ["Parus major", "Poecile gambeli"],
            "common_name": ["", ""],
            "source": "drawn",
            "note": "",
        }
    )
    found = evaluate_photos(classifier, manifest, data_root=tmp_path, workers=0, progress=False, embed=True)
    table = found.table
    names, _probs = classifier.rank_heads.answers(found.embeddings.vectors[:1])["genus"]  # tiny: input == embedding
    assert table["head_genus"].tolist() == [names[0], None]  # the unreadable photo gets no answer
    assert table["head_knows_genus"].tolist() == [True, True] and np.isnan(table["head_prob_genus"].iloc[1])
