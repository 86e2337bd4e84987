"""Can you trust the map? The faithfulness measures on a hand-built model that reads only one corner of the photo,
where the right map is known; the per-method table and its comparison with a random map."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from explorer.cam.gradcam import BATCHED_METHODS
from explorer.cam.perturbation import blurred, deletion_insertion, removal_check, road_scores
from explorer.diagnose.map_faithfulness import RANDOM_MAP, faithfulness_frame, summarise


class Corner(nn.Module):
    """Two classes: class 0's logit is 8 x the mean of the top-left 8 x 8 pixels of the first channel, - 4."""

    def forward(self, x):
        corner = x[:, 0, :8, :8].mean(dim=(1, 2))
        return torch.stack([8 * corner - 4, torch.zeros_like(corner)], dim=1)


@pytest.fixture
def photo():
    x = torch.zeros(1, 3, 24, 24)
    x[:, :, :8, :8] = 1.0  # a bright corner, the rest dark
    return x


CORNER_MAP = np.zeros((24, 24), np.float32)
CORNER_MAP[:8, :8] = 1.0
CORNER_MAP += np.linspace(0, 0.01, 24 * 24, dtype=np.float32).reshape(24, 24)  # no ties: a strict order
ELSEWHERE_MAP = CORNER_MAP.max() - CORNER_MAP


def probability(model, x) -> float:
    return float(torch.softmax(model(x), dim=1)[0, 0])


def test_a_blur_keeps_a_flat_image_flat():
    flat = torch.full((1, 3, 20, 20), 0.3)
    assert torch.allclose(blurred(flat, sigma=3.0), flat, atol=1e-6)


def test_deletion_and_insertion_run_between_the_photo_and_its_blur(photo):
    model = Corner()
    deletion, insertion, down, up = deletion_insertion(model, photo, CORNER_MAP, 0, steps=4)
    whole, blur = probability(model, photo), probability(model, blurred(photo))
    assert down[0] == pytest.approx(whole) and down[-1] == pytest.approx(blur)
    assert up[0] == pytest.approx(blur) and up[-1] == pytest.approx(whole)
    assert deletion == pytest.approx(((down[1:] + down[:-1]) / 2).mean())
    assert insertion == pytest.approx(((up[1:] + up[:-1]) / 2).mean())
    # the right map deletes the evidence first: lower deletion, higher insertion than the map of elsewhere
    wrong_deletion, wrong_insertion, _, _ = deletion_insertion(model, photo, ELSEWHERE_MAP, 0, steps=4)
    assert deletion < wrong_deletion and insertion > wrong_insertion


def test_the_inspectors_check_blurs_the_map_against_the_same_area_elsewhere(photo):
    model = Corner()
    check = removal_check(model, photo, CORNER_MAP, 0, share=64 / 576)  # exactly the corner's 64 pixels
    assert check.probability == pytest.approx(1 / (1 + math.exp(-4)))  # softmax of (4, 0)
    assert check.without_elsewhere == check.probability  # the model never looks there
    assert check.drop > 0.3 and check.drop_elsewhere == 0.0
    flipped = removal_check(model, photo, ELSEWHERE_MAP, 0, share=64 / 576)
    assert flipped.without_map == check.probability and flipped.drop < flipped.drop_elsewhere


def test_road_prefers_the_map_of_the_evidence(photo):
    model = Corner()
    maps = np.stack([CORNER_MAP, ELSEWHERE_MAP])
    scores = road_scores(model, photo, maps, [0, 0], percentiles=(50, 80))
    assert scores.morf[0] < scores.morf[1]  # removing the corner first costs the class more
    assert scores.combined[0] > scores.combined[1]
    assert scores.combined == pytest.approx((scores.lerf - scores.morf) / 2)


def test_the_table_says_where_a_method_beats_the_random_map():
    def measures(morf, lerf, deletion, insertion, half):
        combined = (lerf - morf) / 2
        values = dict(road_morf=morf, road_lerf=lerf, road_combined=combined, deletion=deletion, insertion=insertion)
        return {k: {"mean": v, "ci95": half, "n": 10} for k, v in values.items()}

    report = {
        "photos": 10,
        "methods": {
            "gradcam": measures(-0.5, -0.05, 0.1, 0.7, 0.04),  # better than noise on all five
            "eigencam": measures(-0.12, -0.1, 0.3, 0.35, 0.2),  # within noise's reach on all five
            RANDOM_MAP: measures(-0.1, -0.1, 0.3, 0.3, 0.05),
        },
    }
    frame = faithfulness_frame(report).set_index("method")
    assert frame.loc["gradcam", "beats the random map on"] == 5
    assert frame.loc["eigencam", "beats the random map on"] == 0
    assert frame.loc["gradcam", "road_combined"] == pytest.approx(0.225)
    assert math.isnan(frame.loc[RANDOM_MAP, "beats the random map on"])


def test_a_mean_and_its_interval():
    got = summarise([1.0, 2.0, 3.0, 4.0])
    assert got == {"mean": 2.5, "ci95": pytest.approx(1.96 * np.std([1, 2, 3, 4], ddof=1) / 2), "n": 4}
    assert math.isnan(summarise([1.0])["ci95"]) and summarise([])["n"] == 0


@pytest.mark.slow
@pytest.mark.shared_data
def test_the_tool_measures_a_shipped_model_and_writes_beside_its_table(tmp_path, capsys):
    """explorer-faithfulness on two photos of the shipped insect table (copied): the JSON beside the copy, every
    method and the random map measured on both photos; a user's mistake is one line and status 2."""
    import json
    import shutil

    from conftest import HAVE_CORAL, HAVE_SHARED_DATA, ROOT, SHARED_REASON

    from explorer.tools.faithfulness import main

    if not (HAVE_CORAL and HAVE_SHARED_DATA):
        pytest.skip(SHARED_REASON)
    table = tmp_path / "inat_insect.parquet"
    shutil.copy(ROOT / "assets" / "eval" / "inat_insect.parquet", table)
    main(["--model", "inat_insect", "--table", str(table), "--sample", "2"])
    report = json.loads((tmp_path / "inat_insect.faithfulness.json").read_text())
    assert report["photos"] == 2 and len(report["photo_ids"]) == 2 and report["road_percentiles"] == [20, 40, 60, 80]
    assert list(report["methods"]) == [*BATCHED_METHODS, RANDOM_MAP]
    assert all(m["road_combined"]["n"] == 2 for m in report["methods"].values())
    assert "2 photos in" in capsys.readouterr().out
    for argv, message in (
        (["--model", "inat_insect", "--table", str(table), "--sample", "1"], "--sample must be at least 2"),
        (["--model", "nobody"], "no evaluation table for nobody"),
        (["--model", "inat_bird", "--table", str(table)], "is inat_insect's table, not inat_bird's"),
    ):
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 2 and message in capsys.readouterr().err


def test_arcc_from_its_parts_on_hand_built_maps(photo):
    """ARCC of a map whose method gives it back unchanged (coherency 1) and of one it flips (coherency 0)."""
    from explorer.cam.perturbation import arcc_scores

    square = np.zeros((24, 24), np.float32)
    square[:8, :8] = 1.0  # complexity: 64 of 576 pixels at 1
    maps = np.stack([square, square])
    again = [square, 1.0 - square]  # the first method repeats its map, the second gives the opposite
    found = arcc_scores(photo, maps, lambda i, masked: again[i], np.array([0.25, 0.6]))
    assert found.complexity == pytest.approx([1 / 9, 1 / 9])
    assert found.coherency == pytest.approx([1.0, 0.0], abs=1e-6)
    # 3 / (1/1 + 1/(8/9) + 1/clip(0.5)) and, with coherency 0, next to nothing
    assert found.arcc[0] == pytest.approx(3 / (1 + 9 / 8 + 2))
    assert found.arcc[1] == pytest.approx(0.0, abs=1e-6)
    negative = arcc_scores(photo, maps[:1], lambda i, masked: square, np.array([-0.1]))
    assert negative.arcc[0] == pytest.approx(0.0, abs=1e-6)  # a map worse than none at ROAD scores no ARCC
