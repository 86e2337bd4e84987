"""The results pages (docs/results/*.md) are what `explorer-results` writes from the shipped files: regenerated
here into a temporary folder, any difference from the committed pages fails, naming the page and the line."""

import pytest
from conftest import ROOT

from explorer.tools.results import build_pages, first_difference, main
from explorer.tools.results_sources import markdown_table, pct, signed_points

PAGES = [
    "index.md",
    "tables.md",
    "rollup.md",
    "scope.md",
    "priors.md",
    "representation.md",
    "rank-heads.md",
    "causes.md",
    "faithfulness.md",
    "observations.md",
    "surroundings.md",
]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    assert main(["--out", str(out)]) == 0
    return out


def test_committed_pages_are_the_generated_ones(generated):
    pages = {p.name: p.read_text(encoding="utf-8") for p in sorted(generated.glob("*.md"))}
    assert sorted(pages) == sorted([*PAGES, "smoothing.md"])
    difference = first_difference(pages, ROOT / "docs" / "results")
    assert difference is None, f"run `explorer-results` and commit docs/results: {difference}"


def test_a_difference_names_the_page_and_its_first_differing_line(generated, tmp_path):
    pages = {"rollup.md": (generated / "rollup.md").read_text(encoding="utf-8")}
    lines = pages["rollup.md"].splitlines()
    (tmp_path / "rollup.md").write_text("\n".join([*lines[:4], "typed by hand", *lines[5:]]) + "\n")
    assert first_difference(pages, tmp_path) == f"rollup.md line 5: committed 'typed by hand', generated {lines[4]!r}"
    assert first_difference(pages, tmp_path / "none").startswith("rollup.md line 1: committed None")


def test_figures_come_from_the_shipped_tables(generated):
    """The corrected figures: roll-up at 0.78 (0.5; 0.9) on the 4,074 strict inat_bird photos, the comparison
    through synonyms, and the temperature over all logits."""
    rollup = (generated / "rollup.md").read_text(encoding="utf-8")
    assert "| 0.78 | 97.3 % | 58.0 % | 41.5 % | 0.5 % |" in rollup
    assert "| 0.50 | 92.4 %" in rollup and "| 0.90 | 98.8 %" in rollup
    tables = (generated / "tables.md").read_text(encoding="utf-8")
    assert "They predict different species on 428 photos" in tables
    assert "T = 0.78, so the model is under-confident" in tables and "both over all the logits" in tables
    priors = (generated / "priors.md").read_text(encoding="utf-8")
    assert "27,595 held-out records" in priors and "about 6.0 times ours" in priors
    scope = (generated / "scope.md").read_text(encoding="utf-8")
    assert "For `cub100_effnet_head` no open-set figure is given" in scope and "0.888" not in scope


def test_cli_mistakes_get_one_line_and_status_2(capsys, tmp_path):
    for argv, said in (
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--eval-dir", str(tmp_path)], f"missing shipped file(s): {tmp_path / 'inat_bird.parquet'}"),
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        err = capsys.readouterr().err
        assert exited.value.code == 2 and err.count("\n") == 1 and said in err


def test_check_exits_1_on_a_stale_page(generated, tmp_path, capsys):
    for name in PAGES + ["smoothing.md"]:
        (tmp_path / name).write_text((generated / name).read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "scope.md").write_text("stale\n", encoding="utf-8")
    assert main(["--out", str(tmp_path), "--check"]) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("scope.md line 1: committed 'stale'")


def test_formatting():
    assert pct(0.97264) == "97.3 %" and pct(float("nan")) == "n/a" and signed_points(-0.075) == "−7.5"
    assert markdown_table(["a", "b"], [["1", "2"]]) == "| a | b |\n| --- | --- |\n| 1 | 2 |"


def test_pages_are_built_in_seconds():
    import time

    started = time.perf_counter()
    build_pages(ROOT / "assets" / "eval", ROOT / "checkpoints")
    assert time.perf_counter() - started < 30  # ~3 s of CPU here; the limit leaves room for a busy machine


def test_the_label_check_finds_planted_label_errors_on_every_shipped_table(generated):
    """Issue 27's bar: planted label errors (3 % relabelled at random within the vocabulary) separated with AUROC
    >= 0.9 on every shipped table; the 35 photos the BIRDS-525 manifest doubts are reported."""
    import re

    page = (generated / "causes.md").read_text(encoding="utf-8")
    planted = page.split("## Planted label errors")[1].split("##")[0]
    aurocs = {
        name: float(value)
        for name, value in re.findall(r"\| `(\w+)` \|[^|]+\|[^|]+\|[^|]+\| \*\*([0-9.]+)\*\*", planted)
    }
    assert set(aurocs) == {"inat_bird", "inat_insect", "cub100_effnet_head", "cub100_effnet_taxsmooth"}
    assert min(aurocs.values()) >= 0.9, aurocs
    assert "notes a doubt on 35 photos of 7 classes (folders)" in page
    assert (
        "| FRILL BACK PIGEON, JACOBIN PIGEON |" in page and "not tested" in page
    )  # inat_insect has no place: that cause untested


def test_the_surroundings_page_reports_the_planted_shortcut_from_its_report(generated):
    """The planted-shortcut experiment's report, as the page gives it: the clean model flags none of the planted
    species, the planted one learned the disc and its maps point at it; every measured table has its section."""
    import json

    report = json.loads((ROOT / "assets" / "eval" / "shortcut_experiment.json").read_text(encoding="utf-8"))
    planted, clean = report["heads"]["planted"], report["heads"]["clean"]
    assert clean["planted_flagged"] == 0 and planted["planted_flagged"] >= 1
    assert planted["map_on_mark_median"] > 3 * planted["mark_cells_share"] > 20 * clean["map_on_mark_median"]
    assert planted["planted_accuracy_unmarked"] < planted["planted_accuracy_marked"] - 0.2  # it needs the disc
    page = (generated / "surroundings.md").read_text(encoding="utf-8")
    flagged = f"The test flags **{planted['planted_flagged']} of the 4 planted species** for the planted model"
    assert flagged in page and "and **0 of 4** for the clean one" in page
    assert "| planted species: share of the map on the disc (median) | 24.0 % | 0.2 % |" in page
    for name in ("inat_bird", "inat_insect", "cub100_effnet_head", "cub100_effnet_taxsmooth"):
        assert f"## `{name}`" in page


def test_the_observations_page_says_what_the_fusion_reports_measured(generated):
    import json

    report = json.loads((ROOT / "assets" / "eval" / "inat_bird.fusion.json").read_text(encoding="utf-8"))
    product, one = report["rules"]["product"], report["one_photo"]
    page = (generated / "observations.md").read_text(encoding="utf-8")
    fused = product["correct"] / report["observations"]
    assert f"The default rule gets **{fused:.1%}** of them right".replace("%", " %") in page
    assert f"against {one['top1']:.1%} for one photo".replace("%", " %") in page
    assert f"| **product** (the default) | {product['top1']:.1%}".replace("%", " %") in page
    assert f"{report['observations']:,} pseudo-observations" in page
