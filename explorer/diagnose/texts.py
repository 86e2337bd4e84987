"""What the dashboard says in words: headline numbers, lineage comparisons, escaped for the page."""

from __future__ import annotations

import html

from explorer.diagnose.calibration import TemperatureFit
from explorer.diagnose.geo_effect import GeoEffect
from explorer.diagnose.metrics import TableSummary
from explorer.diagnose.scope_effect import ScopeEffect
from explorer.identify.present import format_probability
from explorer.taxa.taxonomy import RANKS


def q_text(q: float) -> str:
    """A q-value (or p-value) as the pages print it: two significant digits, "< 0.001" below that."""
    return "< 0.001" if q < 0.001 else f"{q:.2g}"


def summary_markdown(stats: TableSummary, table_name: str, model: str) -> str:
    """Headline numbers of a (filtered) evaluation table, with what is not known said plainly."""
    return (
        f"**{html.escape(table_name)}** (model `{html.escape(model)}`): {stats.readable} photos of "
        f"{stats.species} species in view; top-1 **{stats.top1:.1%}**, top-5 {stats.topk:.1%} "
        f"(on the {stats.readable - stats.out_of_vocabulary} photos whose species the model knows). "
        f"{stats.out_of_vocabulary} out-of-vocabulary, {stats.unreadable} unreadable, "
        f"{stats.noted} with a doubtful label. Overlap of these photos with the model's training photos is "
        f"unknown."
    )


def comparison_html(row) -> str:
    """Truth and top-1 lineages side by side; the first rank that differs is marked."""
    esc = html.escape
    cells = []
    diverged = False
    for rank in RANKS:
        truth, pred = row[f"true_{rank}"], row[f"pred_{rank}"]
        differs = truth is not None and pred is not None and truth != pred and not diverged
        diverged |= differs
        style = " style='background:#fde2e2'" if differs else ""
        cells.append(
            f"<tr{style}><td>{rank}</td><td>{esc(str(truth or '?'))}</td><td>{esc(str(pred or '?'))}</td></tr>"
        )
    head = (
        "<tr><th>rank</th><th>truth</th><th>top-1 prediction "
        f"({format_probability(float(row['confidence']))})</th></tr>"
    )
    return f"<table class='predictions'>{head}{''.join(cells)}</table>"


def geo_markdown(effect: GeoEffect) -> str:
    """Headline of what the geo-prior did to the photos that had a place."""
    n = effect.photos_with_place
    if not n:
        return "No photo in view has a place, so the geo-prior did nothing here."
    sources = "; ".join(f"{html.escape(k)}: {v}" for k, v in effect.location_sources.items())
    return (
        f"On the **{n}** photos in view that have a place ({sources}; {effect.photos_without_place} others have "
        f"none), top-1 goes from **{effect.top1_vision:.1%}** on the image alone to "
        f"**{effect.top1_geo:.1%}** with the geo-prior. It changed the top-1 on {effect.changed} "
        f"({effect.changed / n:.1%}): **fixed {effect.fixed}**, **broke {effect.broke}** "
        f"(net {effect.fixed - effect.broke:+d}), and moved {effect.wrong_to_other_wrong} from one wrong "
        "answer to another."
    )


def calibration_markdown(fit: TemperatureFit) -> str:
    if not fit.held_out_photos:
        return "Too few photos in view to fit a temperature."
    return (
        f"Temperature fitted on half of the photos in view ({fit.fit_photos}, split by a hash of the photo "
        f"id): **T = {fit.temperature:.2f}**. On the other half ({fit.held_out_photos} photos) the expected "
        f"calibration error on that half goes from {fit.ece_before:.3f} to {fit.ece_after:.3f} "
        f"(the chart's legend gives it over all photos in view). Logits are divided by T "
        f"before the softmax; T > 1 means the model was over-confident." + ("" if fit.exact else OLD_TABLE_NOTE)
    )


OLD_TABLE_NOTE = (
    " **This table is from before the exact-calibration columns**: it stores only each photo's 20 largest "
    "logits, so the temperature and both ECEs come from a softmax over those alone, which leaves out the "
    "probability beyond them (for a model of many classes T comes out too high: 0.93 instead of 0.78 for "
    "`inat_bird`). `python -m explorer.tools.calibration_columns` adds the columns."
)


NO_SCOPE = (
    "This table has no scope columns. `explorer-evaluate` adds them when the model has a scope rule "
    "(`checkpoints/scope/MODEL.json`, made by `explorer-scope`)."
)


def _share(part: int, whole: int) -> str:
    return f"{part} of {whole} ({part / whole:.1%})" if whole else "none"


def scope_markdown(effect: ScopeEffect) -> str:
    """What the scope check and the open-set flag do to the photos in view, at the rule's thresholds."""
    if not effect.photos:
        return "No readable photo in view."
    lines = [
        f"**Is it in scope?** The rule's score is `{html.escape(effect.kind)}` (threshold {effect.threshold:.2f}). "
        f"It keeps {_share(effect.kept, effect.photos)} photos in view, all of the model's own subject."
    ]
    if effect.outside_photos:
        lines.append(
            f"Of the rule's {effect.outside_photos} held-out out-of-scope photos (other groups and everyday "
            f"objects, not in this table) it accepts {_share(effect.outside_accepted, effect.outside_photos)}."
        )
    if effect.unknown_photos and effect.known_photos and effect.novelty_threshold == effect.novelty_threshold:
        lines.append(
            f"\n\n**Does it know the species?** The largest logit tells photos of known species from those of "
            f"species without a class with AUROC **{effect.open_set_auroc:.3f}** here "
            f"({effect.known_photos} known, {effect.unknown_photos} unknown). At its threshold "
            f"({effect.novelty_threshold:.2f}) it keeps {_share(effect.known_kept, effect.known_photos)} known "
            f"and flags {_share(effect.unknown_flagged, effect.unknown_photos)} unknown as 'probably not one of "
            "its species': a hint, not a verdict."
        )
    elif not effect.unknown_photos:
        lines.append(
            "\n\nNo photo in view is of a species the model has no class for, so the open-set flag "
            "cannot be measured here."
        )
    lines.append(
        "\n\n<small>Half of these photos (a hash of the photo id) chose the thresholds, so these counts are a "
        "little optimistic; docs/results/scope.md gives the held-out half alone.</small>"
    )
    return " ".join(lines)
