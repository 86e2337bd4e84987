"""The organism or its surroundings: the masks, shares, batched Grad-CAM and blurring on hand-built arrays and the
tiny model; the per-clade flag and the cause on a hand-built table; the planted mark's geometry; and the real
locator on a real photo."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch
from conftest import CORAL, HAVE_CORAL, SHARED_REASON

from explorer.cam.perturbation import blurred
from explorer.cam.subject import (
    batched_gradcam,
    group_target,
    mask_share,
    off_subject_share,
    on_grid,
    subject_masks,
    top1_target,
    without,
)
from explorer.diagnose.causes import (
    benjamini_hochberg,
    mann_whitney_greater,
    rests_on_surroundings,
    surroundings_by_clade,
    with_causes,
)
from explorer.diagnose.frames import to_frame
from explorer.diagnose.shortcut_planting import GOLD, MARK_INSET, RIM, corner, mark_cells, mark_centre, paste_mark


def test_masks_cover_the_locator_map_from_a_fifth_of_its_peak():
    maps = np.array([[[0.1, 0.5], [1.0, 0.19]], [[0.0, 0.0], [0.0, 0.0]]])
    masks = subject_masks(maps)
    assert masks[0].tolist() == [[False, True], [True, False]]
    assert not masks[1].any()  # no mass: no organism found, not the whole photo
    assert mask_share(masks).tolist() == [0.5, 0.0]


def test_off_subject_share_is_the_maps_mass_outside_the_mask():
    maps = np.array([[[1.0, 1.0], [2.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]])
    masks = np.array([[[True, False], [False, False]], [[True, True], [True, True]], [[False] * 2] * 2])
    share = off_subject_share(maps, masks)
    assert share[0] == pytest.approx(0.75)  # (1 + 2 + 0) of 4
    assert math.isnan(share[1])  # a map with no mass says nothing
    assert math.isnan(share[2])  # nor does an empty mask


def test_group_target_is_the_log_of_the_groups_probability():
    logits = torch.tensor([[0.0, math.log(3.0), 0.0]])
    assert group_target([0, 1])(logits).item() == pytest.approx(math.log(0.8))
    assert top1_target(logits).item() == pytest.approx(math.log(3.0))


def test_batched_gradcam_equals_one_photo_at_a_time(tiny_classifier):
    """A batch's maps are each photo's own: the same as the single-photo fast path, scaled alike."""
    torch.manual_seed(0)
    batch = torch.randn(3, 3, 64, 64)
    module, layer = tiny_classifier.module, tiny_classifier.cam_layer
    logits, maps = batched_gradcam(module, batch, layer, top1_target)
    for i in range(3):
        _, picked, single = tiny_classifier.forward_with_cams(batch[i : i + 1], lambda lg: [int(lg.argmax())])
        assert picked == [int(logits[i].argmax())]
        scaled = maps[i] - maps[i].min()
        scaled = (scaled / (scaled.max() + 1e-7)).numpy()
        np.testing.assert_allclose(scaled, single[0], atol=1e-5)


def test_without_blurs_the_organism_or_the_surroundings():
    torch.manual_seed(1)
    batch = torch.rand(1, 3, 8, 8)
    inside = np.zeros((1, 2, 2), bool)
    inside[0, 0, 0] = True  # the top-left quarter is the organism
    gone = without(batch, inside, keep_inside=False)
    base = blurred(batch)
    torch.testing.assert_close(gone[..., :4, :4], base[..., :4, :4])  # the organism blurred
    torch.testing.assert_close(gone[..., 4:, :], batch[..., 4:, :])  # the rest untouched
    kept = without(batch, inside, keep_inside=True)
    torch.testing.assert_close(kept[..., :4, :4], batch[..., :4, :4])
    torch.testing.assert_close(kept[..., 4:, 4:], base[..., 4:, 4:])


def _measured(rows) -> pd.DataFrame:
    names = ["true_species", "off_subject_share", "kept_without_subject", "correct_1", "p_without_subject"]
    frame = pd.DataFrame(rows, columns=names)
    frame["p_without_surroundings"] = 0.5  # blurring the surroundings: the answer at 0.5
    frame["status"], frame["in_vocab"] = "ok", True
    return frame


def test_species_recognised_by_their_surroundings_are_flagged():
    frame = _measured(
        [
            ("A", 0.6, False, True, 0.1),  # more than half the map outside the organism
            ("A", 0.7, False, False, 0.1),
            ("A", 0.1, False, True, 0.1),
            ("A", 0.2, True, True, 0.1),  # kept without the organism
            ("B", 0.1, False, True, 0.2),
            ("B", 0.2, False, False, 0.6),  # needs the surroundings more: 0.5 without them, 0.6 without the bird
            ("B", 0.3, False, True, 0.2),
            ("C", 0.9, True, True, 0.1),  # two photos: under the three a clade needs
            ("C", 0.9, True, True, 0.1),
            ("B", float("nan"), None, True, float("nan")),  # not measured: left out
        ]
    )
    assert rests_on_surroundings is not None
    found = surroundings_by_clade(frame, "species", min_photos=3)
    assert found["species"].tolist() == ["A", "B"]
    assert found["photos"].tolist() == [4, 3]
    assert found["rests_on_surroundings"].tolist() == pytest.approx([0.75, 1 / 3])
    assert found["mean_off_subject_share"].tolist() == pytest.approx([0.4, 0.2])
    assert found["top1_accuracy"].tolist() == pytest.approx([0.75, 2 / 3])
    # ranks among the 9 measured shares (C's two photos count as the others): A's sum 18, B's 10; three tied pairs
    assert found["off_subject_auc"].tolist() == pytest.approx([8 / 20, 4 / 18])
    assert found["q_value"].tolist() == pytest.approx([0.9248092, 0.9248092])  # p 0.7324 and 0.9248 (scipy's)
    assert found["flagged"].tolist() == [False, False]  # often resting on the surroundings, but no more off the bird


def test_a_species_whose_maps_lie_off_the_organism_more_than_the_others_is_flagged():
    shares = {
        "A": [0.80, 0.81, 0.82, 0.83, 0.84, 0.85],
        "B": [0.10, 0.12, 0.14, 0.16, 0.18, 0.20],
        "C": [0.11, 0.13, 0.15, 0.17, 0.19, 0.21],
    }
    frame = _measured([(name, v, False, True, 0.1) for name, values in shares.items() for v in values])
    found = surroundings_by_clade(frame, "species", min_photos=3)
    assert found["species"].tolist() == ["A", "C", "B"]
    assert found["off_subject_auc"].tolist() == pytest.approx([1.0, 21 / 72, 15 / 72])
    # A: U = 72 of 72, z = (72 - 36 - 0.5) / sqrt(6 * 12 / 12 * 19), p = 4.4228e-4 (scipy's), times 3 tests
    assert found["q_value"].tolist() == pytest.approx([3 * 4.4228358e-4, 0.9779774, 0.9779774])
    assert found["flagged"].tolist() == [True, False, False]
    assert surroundings_by_clade(frame, "species", min_photos=3, top=1)["species"].tolist() == ["A"]
    assert surroundings_by_clade(frame, "species", min_photos=7).empty  # 6 photos each
    assert surroundings_by_clade(frame, "species")["species"].tolist() == ["A", "C", "B"]  # at least 5, every one


def test_the_flag_test_is_scipys_mann_whitney_and_benjamini_hochberg():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    values = np.round(rng.random(60), 1)  # ties on purpose
    groups = np.repeat(np.arange(6), 10)
    ranks = stats.rankdata(values)
    _, counts = np.unique(values, return_counts=True)
    sums = [ranks[groups == g].sum() for g in range(6)]
    auc, p = mann_whitney_greater(sums, [10] * 6, 60, float((counts**3 - counts).sum()))
    for g in range(6):
        ref = stats.mannwhitneyu(values[groups == g], values[groups != g], alternative="greater", method="asymptotic")
        assert p[g] == pytest.approx(ref.pvalue) and auc[g] == pytest.approx(ref.statistic / 500)
    assert benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.5, np.nan])).tolist()[:4] == pytest.approx(
        [0.04, 0.04 / 0.75, 0.04 / 0.75, 0.5]
    )
    assert stats.false_discovery_control([0.01, 0.04, 0.03, 0.5]).tolist() == pytest.approx(
        benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.5])).tolist()
    )


def test_a_table_without_the_columns_has_no_surroundings_table(hand_table):
    assert surroundings_by_clade(hand_table, "species").empty


def test_the_surroundings_cause_marks_wrong_answers_that_rest_on_the_surroundings(hand_table):
    table = hand_table.copy()
    table["off_subject_share"] = [0.9, 0.9, 0.2, np.nan, 0.9, 0.3]
    table["kept_without_subject"] = pd.array([False, False, True, None, False, False], dtype="boolean")
    table["p_without_subject"] = [0.1, 0.1, 0.1, np.nan, 0.1, 0.1]
    table["p_without_surroundings"] = [0.9, 0.9, 0.9, np.nan, 0.9, 0.9]  # all need the organism more
    found = with_causes(to_frame(table))
    flagged = dict(zip(found["_row"].to_list(), found["cause_surroundings"].to_list()))
    # row 0 is right (not an error); 1 rests on the surroundings by its share, 2 by staying without the organism;
    # 3 is not measured; 4 is an unknown species (the model could not be right); 5 rests on the organism
    assert flagged == {1: True, 2: True, 3: False, 4: False, 5: False}
    assert "rests on the surroundings" in found.filter(pl.col("_row") == 1)["causes"][0]


def test_the_planted_mark_sits_in_its_corner():
    photo = np.zeros((224, 224, 3), np.uint8)
    marked = paste_mark(photo, 3)
    cy, cx = mark_centre(224, 3)
    assert (cy, cx) == (223 - MARK_INSET, 223 - MARK_INSET)
    assert tuple(marked[cy, cx]) == GOLD
    assert tuple(marked[cy, cx - 12]) == GOLD
    assert tuple(marked[cy, cx - 19]) == RIM  # the rim: the outer 3 px of the 20-px radius
    assert tuple(marked[cy, cx - 21]) == (0, 0, 0)
    assert not marked[:150, :150].any() and marked.any(axis=2).sum() == 1257  # pixels within 20 px of the centre
    assert mark_centre(224, 0) == (MARK_INSET, MARK_INSET)
    assert corner("images/001.jpg") == corner("images/001.jpg")
    cells = mark_cells(224, 0, grid=56)
    assert cells[7, 7] and not cells[20, 20] and not cells[7, 40]


@pytest.mark.skipif(not HAVE_CORAL, reason=SHARED_REASON)
def test_the_real_locator_finds_the_bird_and_measures_a_real_photo(real_resources):
    """The Coral ImageNet MobileNetV2 locates the chickadee of bird.bmp; inat_bird's answer rests on it."""
    from PIL import Image

    from explorer.diagnose.surroundings import CORAL_IMAGENET, load_locator, measure_pixels

    classifier = real_resources.classifiers["inat_bird"]
    locator = load_locator(real_resources.settings, CORAL_IMAGENET)
    pixels = classifier.resize(Image.open(CORAL / "bird.bmp").convert("RGB"))[None]
    masks = subject_masks(locator.maps(pixels, "bird"))
    assert 0.05 < masks.mean() < 0.9
    measured = measure_pixels(classifier, locator, pixels, "bird")
    assert measured["subject_locator"].tolist() == [CORAL_IMAGENET]
    assert measured["off_subject_share"][0] < 0.5
    assert not measured["kept_without_subject"][0]  # no bird, no chickadee
    assert measured["p_without_surroundings"][0] > measured["p_without_subject"][0]
    assert on_grid(torch.ones(1, 7, 7)).shape == (1, 56, 56)


def test_the_tools_answer_a_users_mistake_in_one_line(tmp_path, capsys):
    from explorer.tools.shortcut_experiment import main as experiment
    from explorer.tools.subject_columns import main as columns

    with pytest.raises(SystemExit) as stopped:
        columns(["--eval-dir", str(tmp_path)])
    assert stopped.value.code == 2
    assert capsys.readouterr().err == f"explorer-subject-columns: error: no table to extend in {tmp_path}\n"
    with pytest.raises(SystemExit) as stopped:
        columns(["--eval-dir", str(tmp_path), "--batch-size", "0"])
    assert capsys.readouterr().err.endswith("error: --batch-size must be at least 1, got 0\n")
    with pytest.raises(SystemExit) as stopped:
        experiment(["--cub-root", str(tmp_path)])
    assert stopped.value.code == 2
    message = f"explorer-shortcut-experiment: error: {tmp_path} is not the CUB-100 folder (no train_test_split.txt)\n"
    assert capsys.readouterr().err == message


def test_a_model_of_a_subject_imagenet_does_not_know_is_said_not_measured(tiny_classifier, capsys):
    from dataclasses import replace

    from explorer.tools.subject_columns import with_surroundings

    plants = replace(tiny_classifier, card=replace(tiny_classifier.card, subject="plant"))
    table = pd.DataFrame({"status": ["ok"], "path": ["p.jpg"]})
    assert with_surroundings(table, plants, None, required=False) is table
    assert capsys.readouterr().out.startswith("no organism-or-surroundings columns: the organism cannot be located")
    with pytest.raises(ValueError, match="for a model of plants"):
        with_surroundings(table, plants, None)
