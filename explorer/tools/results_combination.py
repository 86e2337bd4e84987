"""The priors page's section on how the place is combined with the image: each prior's rule fitted on half the
placed photos and reported on the other half (explorer-fit-prior's checkpoints/geo/combination.json)."""

from __future__ import annotations

from explorer.tools.results_sources import Sources, count, markdown_table, pct


def _row(label: str, rule: str, found: dict | None) -> list[str]:
    if not found:
        return [label, rule, "–", "–", "–", "–"]
    net = found["fixed"] - found["broke"]
    return [label, rule, count(found["fixed"]), count(found["broke"]), f"{net:+d}", pct(found["top1"])]


def _model_table(report: dict) -> str:
    rows = [_row("the image alone", "", {**report["image_alone_held_out"], "fixed": 0, "broke": 0})]
    for name, prior in report["priors"].items():
        rows.append(_row(f"`{name}`, the plain rule", prior["current"]["text"], prior["current_held_out"]))
        fitted = prior["fitted"]["text"] if prior["fitted"] else "the image alone (no rule helped)"
        default = " (**the default**)" if name == report["default"] else ""
        rows.append(_row(f"`{name}`, fitted{default}", fitted, prior["fitted_held_out"]))
    oracle = report.get("oracle_held_out")
    rows.append(_row("oracle bound", "the image's top 5, only species recorded in the photo's 1° cell", oracle))
    header = ["held-out half", "rule", "fixed", "broke", "net", "top-1"]
    return markdown_table(header, rows)


def _vagrant_text(report: dict) -> str:
    """The default prior's vagrant thresholds on the held-out half."""
    prior = report["priors"].get(report["default"])
    if not prior or not prior.get("vagrants"):
        return ""
    chosen = (prior["fitted"] or {}).get("vagrant")
    rows = [
        [
            f"**{row['vagrant']:.0%}** (fitted)" if row["vagrant"] == chosen else f"{row['vagrant']:.0%}",
            count(row["hidden_without"]),
            count(row["fixed"]),
            count(row["broke"]),
            f"{row['fixed'] - row['broke']:+d}",
        ]
        for row in prior["vagrants"]
    ]
    header = ["image at least", "true species it would have hidden", "fixed", "broke", "net"]
    which = f"fitted: {chosen:.0%}" if chosen is not None else "none fitted: every threshold netted less"
    return (
        f"Vagrants, `{report['default']}` (the default), held-out half ({which}): a species the image gives at "
        "least this much keeps the place's best factor, flagged *unusual here*, instead of being demoted. *Hidden* "
        "counts the photos whose true species the image gave that much, right on the image alone, that the rule "
        "without it took from the top.\n\n" + markdown_table(header, rows)
    )


def combination_text(sources: Sources) -> str:
    fitted = sources.combination
    if not fitted:
        return "No combination has been fitted (`explorer-fit-prior --model NAME --update-table`)."
    parts = [
        "## How the place is combined: fitted on one half, reported on the other",
        "From `checkpoints/geo/combination.json`, which `explorer-fit-prior --model NAME --update-table` writes "
        "(the real model on the table's placed photos, in `../shared/data`). Each prior's rule is fitted on the "
        "photos of the table's `calibration_half` (a fixed half, chosen when the table was made) and reported on "
        "the others. A rule is a weighted product (the image's probability × max(presence, floor)^exponent) or a "
        "species list (presence at least a threshold keeps the image's probability, below it is multiplied by "
        "the floor); the fit takes the most net fixes (fixed − broke, against the image alone) on the fitting "
        "half, the gentlest rule among equals, or the image alone when no rule nets a fix. The default prior is "
        "the one whose fitted rule netted most on the fitting half, kept only if it does not break more than it "
        "fixes on the held-out half. The oracle bound re-ranks the image's top five by the eBird records in the "
        "photo's 1° cell: the photo's place is itself a record of its true species, so the true species is "
        "always recorded there; no prior can know that much. The tables' geo columns (the figures above, both "
        "halves) are rewritten with the fitted rules.",
    ]
    for name, report in fitted.items():
        parts.append(
            f"### `{name}`\n\n{count(report['photos'])} placed photos ({count(report['fit_photos'])} to fit, "
            f"{count(report['held_out_photos'])} held out). Default: **{report['default']}** "
            f"({report['default_why']}).\n\n" + _model_table(report) + "\n\n" + _vagrant_text(report)
        )
    return "\n\n".join(parts)
