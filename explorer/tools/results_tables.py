"""The results pages on the evaluation tables themselves: the shipped tables, the roll-up and the scope check."""

from __future__ import annotations

import pandas as pd

from explorer.diagnose.calibration import TemperatureFit, fit_temperature
from explorer.diagnose.metrics import (
    compare_models,
    errors_by_rank,
    rollup_answers,
    rollup_tradeoff,
    summary,
    worst_clades,
)
from explorer.diagnose.scope_effect import scope_effect
from explorer.tools.results_sources import (
    Sources,
    by_source,
    count,
    markdown_table,
    num,
    page,
    pct,
    signed_points,
    strict,
)

OVERLAP = (
    "**Overlap of these photos with the models' training photos is unknown** (the Coral models were trained on "
    "iNat 2017 photos; the BIRDS-525 and CUB photos come from the web and may overlap with it; the CUB-100 heads "
    "were trained here on the CUB-100 train split only, and what their ImageNet backbone saw is unknown)."
)
ROLLUP_THRESHOLDS = (0.5, 0.6, 0.7, 0.78, 0.8, 0.9, 0.95)


def _summary_row(label: str, table: pd.DataFrame, note: str = "") -> list[str]:
    """One row of the headline table: all photos, then the strict view (doubtful labels left out)."""
    every, kept = summary(table), summary(strict(table))
    known = every.readable - every.out_of_vocabulary
    strict_known = kept.readable - kept.out_of_vocabulary
    if kept.photos == every.photos:
        strict_text = "no doubtful labels"
    else:
        strict_text = f"{pct(kept.top1)} / {pct(kept.topk)} on {count(strict_known)}"
    return [
        label,
        f"{count(every.photos)} ({count(every.species)})",
        count(every.out_of_vocabulary),
        count(known),
        pct(every.top1),
        pct(every.topk),
        strict_text,
        note,
    ]


def headline_table(sources: Sources) -> str:
    bird = sources.tables["inat_bird"]
    rows = [
        _summary_row("`inat_bird` all", bird),
        _summary_row("`inat_bird` BIRDS-525 valid", by_source(bird, "birds525-valid"), "tight crops"),
        _summary_row("`inat_bird` CUB-100 test", by_source(bird, "cub100-test")),
        _summary_row("`inat_insect` Leeds butterflies", sources.tables["inat_insect"], "10 common species only"),
        _summary_row("`cub100_effnet_head` CUB-100 test", sources.tables["cub100_effnet_head"], "trained here"),
        _summary_row("`cub100_effnet_taxsmooth` CUB-100 test", sources.tables["cub100_effnet_taxsmooth"]),
    ]
    header = ["table", "photos (species)", "out of vocabulary", "in vocabulary", "top-1", "top-5"]
    return markdown_table([*header, "strict top-1 / top-5 (photos)", "notes"], rows)


def _doubtful(table: pd.DataFrame) -> str:
    noted = table[table["note"].astype(str) != ""]
    return f"{count(len(noted))} photos of {noted['true_name'].nunique()} species"


def errors_text(table: pd.DataFrame, model: str) -> str:
    """Where the top-1 leaves the truth, on the strict in-vocabulary photos."""
    view = strict(table, known=True)
    ranks = errors_by_rank(view).set_index("rank")
    errors = int(ranks["photos"].drop("correct").sum())
    named = {"no prediction": '"no bird"', "unknown": "two classes of one accepted species"}
    parts = [
        f"{named.get(rank, rank)} {count(row.photos)} ({pct(row.share_of_errors)})"
        for rank, row in ranks.drop("correct").iterrows()
        if row.photos
    ]
    worst = worst_clades(view, "family", min_photos=10)
    families = ", ".join(f"{r.clade} {r.correct}/{r.photos} = {pct(r.accuracy, 0)}" for r in worst.itertuples())
    return (
        f"Where `{model}`'s errors leave the truth (strict, in vocabulary: {count(len(view))} photos, "
        f"{count(errors)} errors): {', '.join(parts)}. Worst families (the 95 % interval's upper end lowest, "
        f"≥ 10 photos): {families}."
    )


def calibration_text(fit: TemperatureFit, model: str) -> str:
    direction = "over-confident" if fit.temperature > 1 else "under-confident"
    softmax = "over all the logits" if fit.exact else "over the 20 stored top logits only (a table from before)"
    return (
        f"Calibration of `{model}` (strict, in vocabulary; {count(fit.fit_photos)} photos fit the temperature, "
        f"{count(fit.held_out_photos)} held out, split by a hash of the photo id): T = {fit.temperature:.2f}, "
        f"so the model is {direction} on these photos; on the held-out half the ECE goes from "
        f"{num(fit.ece_before)} to {num(fit.ece_after)}, both {softmax}."
    )


def comparison_text(sources: Sources, min_photos: int = 30) -> str:
    """The CUB-100 head against the iNat bird model on the photos both tables hold and both models can name."""
    bird, head = sources.tables["inat_bird"], sources.tables["cub100_effnet_head"]
    compared = compare_models(bird, head, "family")
    weights = compared.per_clade["photos"] / max(compared.compared, 1)  # per-clade shares back to the whole
    top_bird, top_head = ((compared.per_clade[c] * weights).sum() for c in ("accuracy_a", "accuracy_b"))
    per = compared.per_clade[compared.per_clade["photos"] >= min_photos].sort_values("difference")

    def listed(rows: pd.DataFrame) -> str:
        return ", ".join(f"{r.clade} ({signed_points(r.difference)} on {r.photos})" for r in rows.itertuples())

    return (
        f"**The CUB-100 head against the iNat bird model** on the {count(compared.compared)} CUB-100 test photos "
        f"that both tables hold and both models can name ({count(compared.out_of_vocabulary)} shared photos of "
        f"species one of them has no class for left out): top-1 {pct(top_head, 2)} (head) against "
        f"{pct(top_bird, 2)}. They predict different species on {count(len(compared.disagree))} photos (names "
        f"compared through synonyms: *Anas strepera* and *Mareca strepera* are one species). Per family "
        f"(≥ {min_photos} photos; points of top-1, head minus iNat model): better on {listed(per.tail(3)[::-1])}; "
        f"worse on {listed(per.head(2))}. Differences of a few photos in a family of 30 are noise."
    )


def tables_page(sources: Sources) -> str:
    bird, head = sources.tables["inat_bird"], sources.tables["cub100_effnet_head"]
    synonyms = sources.synonyms
    evidence = synonyms["source"].str.split(" ").str[0].value_counts()
    return page(
        "The shipped evaluation tables",
        "Computed by `explorer-shipped` with the real models on the real labelled photos in `../shared/data` "
        "(photos are not redistributed; the tables in `assets/eval/` are). Top-1 / top-5 are over readable "
        "photos whose species the model has a class for (in vocabulary); photos of other species are kept in "
        "the tables, flagged, and left out of these figures. *Strict* leaves out the photos whose manifest notes "
        f"a doubtful label (`inat_bird`: {_doubtful(bird)}; the other tables have none). {OVERLAP}",
        headline_table(sources),
        "**Names that changed.** Truths are matched to classes through synonyms "
        f"(`explorer/taxa/data/synonyms.csv`: {count(len(synonyms))} older names with their accepted names and "
        f"the evidence, {', '.join(f'{n} from {k}' for k, n in evidence.items())}; built by "
        "`explorer-synonyms`), and the class lineages resolve through them too (the Coral class *Anas strepera* "
        "has the lineage of *Mareca strepera*). Every name match goes through them, the model comparison below "
        "included.",
        errors_text(bird, "inat_bird"),
        calibration_text(fit_temperature(strict(bird)), "inat_bird"),
        f"The roll-up on these photos: see [the roll-up](rollup.md). {comparison_text(sources)}",
        errors_text(head, "cub100_effnet_head"),
        calibration_text(fit_temperature(strict(head)), "cub100_effnet_head"),
    )


def _rollup_rows(table: pd.DataFrame) -> list[list[str]]:
    curve = rollup_tradeoff(table, list(ROLLUP_THRESHOLDS))
    above = ["genus", "family", "order", "class", "phylum", "kingdom"]
    return [
        [
            f"{row.threshold:.2f}",
            pct(row.right_when_answered),
            pct(row.at_species),
            pct(sum(getattr(row, f"at_{rank}") for rank in above)),
            pct(row.abstained),
        ]
        for row in curve.itertuples()
    ]


def rollup_page(sources: Sources) -> str:
    header = ["threshold", "right when it answers", "answers at species", "at a higher rank", "abstains"]
    parts = []
    for model in ("inat_bird", "cub100_effnet_head"):
        view = strict(sources.tables[model])
        oov = int((~view["in_vocab"]).sum())
        parts.append(
            f"`{model}`: {count(len(view))} readable photos without a doubtful label, {count(oov)} of them of "
            "species the model has no class for (their species answers are wrong by definition; a clade above "
            "can be right)."
        )
        parts.append(markdown_table(header, _rollup_rows(view)))
    return page(
        'The roll-up: how often is "not sure" right?',
        "When no species reaches the threshold, the answer rolls up the taxonomy: the first rank (genus, family, "
        "order, ...) at which one clade's summed probability reaches it, or no answer when none does. The "
        "tables store, per photo, each rank's largest summed probability and whether that clade holds the truth "
        "(`rollup_prob_<rank>`, `rollup_correct_<rank>`), so the trade-off is exact at every threshold "
        "(Diagnose → Roll-up trade-off draws it). The app's default threshold is 0.78. " + OVERLAP,
        *parts,
    )


def _unknown_clade_text(table: pd.DataFrame, threshold: float = 0.78) -> str:
    """How often the roll-up's clade holds the truth for photos of species the model has no class for."""
    unknown = table[table["in_vocab"] == False]  # noqa: E712  (a boolean column: the photos out of vocabulary)
    answers = rollup_answers(unknown, threshold).set_index("rank")
    above = answers.drop(["species", "none"])
    named = ", ".join(f"{rank} {r.right} of {r.photos}" for rank, r in above.iterrows() if r.photos)
    return (
        f"**The clade for an unknown species.** On all {count(len(unknown))} `inat_bird` photos of the "
        f"{unknown['true_name'].nunique()} CUB species it has no class for, at the {threshold} threshold: a clade "
        f"above species is named for {count(above['photos'].sum())} and holds the truth for "
        f"{count(above['right'].sum())} ({pct(above['right'].sum() / max(above['photos'].sum(), 1))}): {named}. "
        f"{answers.loc['species', 'photos']} had a single species at ≥ {threshold:.0%} (a confident wrong "
        f"species) and {answers.loc['none', 'photos']} reached no clade."
    )


def _scope_row(model: str, rule: dict) -> list[str]:
    """The chosen score's figures on the rule's held-out half (from the rule file explorer-scope wrote)."""
    figures = rule["figures"]
    held = figures["candidates"][figures["chosen"]]["held_out_half"]
    inside, outside = held["in_scope_photos"], held["out_of_scope_photos"]
    accepted = round(held["out_of_scope_accepted"] * outside)
    max_logit = figures["candidates"]["max_logit"]["held_out_half"]
    return [
        f"`{model}`",
        figures["chosen"],
        num(held["auroc"], 4),
        f"{pct(held['in_scope_kept'])} ({count(round(held['in_scope_kept'] * inside))} of {count(inside)})",
        f"{pct(held['out_of_scope_accepted'])} ({accepted} of {count(outside)})",
        f"{pct(max_logit['out_of_scope_accepted'])} (AUROC {num(max_logit['auroc'], 4)})",
    ]


def _sets(sets: dict) -> str:
    return ", ".join(f"{name} {count(n)}" for name, n in sets.items())


def _open_set_text(sources: Sources) -> str:
    rule = sources.scope_rules["inat_bird"]["figures"]["open_set"]
    effect = scope_effect(sources.tables["inat_bird"])
    return (
        "**Unknown species in scope** (open set): a photo in scope whose species the model has no class for. "
        "The known-species threshold on the largest species logit keeps 95 % of the choosing half's "
        f"in-vocabulary photos. For `inat_bird`, on the held-out half (the rule file): AUROC "
        f"{num(rule['auroc'])} between {count(rule['known_photos'])} photos of species it knows and "
        f"{count(rule['unknown_photos'])} CUB photos of species it has no class for; at the threshold "
        f"{pct(rule['known_kept'])} of known-species photos are kept and {pct(rule['unknown_flagged'])} of "
        f"unknown-species photos are flagged. Over both halves, from the table's `novelty_score` column (what "
        f"Diagnose shows with the default filters off): AUROC {num(effect.open_set_auroc)}, "
        f"{count(effect.known_kept)} of {count(effect.known_photos)} known kept, {count(effect.unknown_flagged)} "
        f"of {count(effect.unknown_photos)} unknown flagged; {count(effect.kept)} of {count(effect.photos)} "
        f"photos judged in scope. So the flag is a hint, not a verdict.\n\n"
        "For `cub100_effnet_head` no open-set figure is given: its unknown species would be the BIRDS-525 photos "
        "of species outside its 100, and those photos are in no shipped table (its table holds the CUB-100 test "
        "photos only, all of species it knows), so a figure could not be recomputed from the shipped files."
    )


def scope_page(sources: Sources) -> str:
    rules = sources.scope_rules
    header = ["model", "score chosen", "AUROC", "in-scope photos kept", "out-of-scope photos accepted"]
    rows = [_scope_row(model, rule) for model, rule in rules.items()]
    photos = "; ".join(
        f"`{m}`: in scope {_sets(f['in_scope_sets'])}; out of scope {_sets(f['out_of_scope_sets'])}"
        for m, f in ((m, r["figures"]) for m, r in rules.items())
    )
    return page(
        "Is this a bird at all? The scope check",
        "A species model's softmax shares out probability among its own classes only, so on its own it cannot "
        'say "not a bird". Every species model has a **scope rule** (`checkpoints/scope/<model>.json`, made by '
        "`explorer-scope`). Candidates: the model's largest species logit (max-logit), the ImageNet "
        "EfficientNet-Lite0's summed probability of the subject's classes (\"the gate\"), and the two "
        "standardised and summed. A stable hash of the photo id puts each photo in the *choosing* half or the "
        "*held-out* half; on the choosing half each candidate's threshold keeps 97 % of the in-scope photos and "
        "the candidate that lets the fewest out-of-scope photos through is chosen. The figures below are on the "
        f"**held-out half only**. Photos (both halves): {photos}.",
        markdown_table([*header, "max-logit alone: accepted"], rows),
        "The out-of-scope photos are few (about 100 per half for the bird models) and mostly butterflies; the "
        "insect model's in-scope photos are few butterflies of 10 species, so its figure says little about "
        "beetles, bees or moths. Overlap with the ImageNet model's training photos is unknown (the scikit-image "
        "photos are classic test images and may be in ImageNet).",
        _open_set_text(sources),
        _unknown_clade_text(sources.tables["inat_bird"]),
    )
