"""The results page on observations of several photos: how much a second and third photo of one organism help,
per shipped model and fusion rule (explorer-fusion's reports beside the tables)."""

from __future__ import annotations

from explorer.identify.fusing import FUSION_RULE, FUSION_RULES
from explorer.tools.results_sources import TABLES, Sources, count, markdown_table, num, page, pct


def _cell(value) -> str:
    return "–" if value is None else pct(value)


def _sureness(scores: dict) -> list[str]:
    """Calibration error, mean confidence, answers said at >= 99.5 % and how many of those were right."""
    certain, right = scores["certain"], scores.get("certain_right")
    share = "–" if not certain or right is None else f"{count(right)} ({pct(right / certain)})"
    return [num(scores["ece"]), pct(scores["mean_confidence"]), count(certain), share]


def _model_text(name: str, report: dict) -> str:
    one = report["one_photo"]
    rows = [
        [
            "one photo alone (each photo of the groups)",
            pct(one["top1"]),
            "",
            "",
            *_sureness(one),
        ]
    ]
    for rule in FUSION_RULES:
        scores = report["rules"][rule]
        label = f"**{rule}** (the default)" if rule == FUSION_RULE else rule
        sizes = scores["by_size"]
        rows.append([label, pct(scores["top1"]), _cell(sizes["2"]), _cell(sizes["3"]), *_sureness(scores)])
    header = ["answer", "top-1", "of 2 photos", "of 3 photos", "calibration error", "mean confidence", "said ≥ 99.5 %"]
    header.append("of those, right")
    excluded = "; ".join(f"{reason}: {count(n)}" for reason, n in report["excluded"].items() if n)
    gain = report["rules"][FUSION_RULE]["top1"] - one["top1"]
    return (
        f"## `{name}`\n\n"
        f"{count(report['observations'])} pseudo-observations ({count(report['by_size']['2'])} of two photos, "
        f"{count(report['by_size']['3'])} of three) from {count(report['photos'])} of the table's "
        f"{count(report['table_rows'])} photos (seed {report['seed']}); left out: {excluded or 'none'}. The default "
        f"rule gets **{pct(report['rules'][FUSION_RULE]['top1'])}** of them right at top-1 against "
        f"{pct(one['top1'])} for one photo ({gain * 100:+.1f} points).\n\n" + markdown_table(header, rows)
    )


def observations_page(sources: Sources) -> str:
    measured = [n for n in TABLES if n in sources.fusion]
    missing = [n for n in TABLES if n not in sources.fusion]
    rules = "; ".join(f"**{rule}**: {text}" for rule, text in FUSION_RULES.items())
    return page(
        "Several photos of one organism",
        "Written by `explorer-results` from `assets/eval/NAME.fusion.json`, which `explorer-fusion --model NAME` "
        "measures with the real model on the table's photos (in `../shared/data`). No shipped photo set has "
        "observations of several photos, so each table's readable photos of species the model knows are grouped "
        "into **pseudo-observations**: per species, its photos shuffled (one seeded generator) and cut into groups "
        "of three and two, so that every photo of a species with two or more is used once and none twice. A group "
        "is several photos of one species, not of one animal: real observations (one bird from the side, in "
        "flight) are more alike than these, so the gain here is an upper bound of sorts. *One photo alone* counts "
        "every photo of the groups on its own. The rules: " + rules + ". The calibration error is the expected "
        "calibration error of the answer's top-1 probability (10 bins); *said ≥ 99.5 %* counts answers that "
        "confident, and *of those, right* how many of them were. The Identify tab and the `observation` endpoint "
        "use the default rule; see "
        "[Identify](../guide/identify.md#several-photos-of-one-organism).",
        *(_model_text(n, sources.fusion[n]) for n in measured),
        ("Not measured: " + ", ".join(f"`{n}`" for n in missing) + ".") if missing else "",
    )
