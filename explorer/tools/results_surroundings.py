"""The results page on the organism or its surroundings: per shipped table, how much of the answers' maps lies
outside the organism and which species are most often recognised by their surroundings; and the planted-shortcut
experiment (assets/eval/shortcut_experiment.json) that checks the test finds a shortcut it should."""

from __future__ import annotations

import pandas as pd

from explorer.diagnose.causes import (
    FLAG_FDR,
    SURROUNDINGS_MARGIN,
    SURROUNDINGS_SHARE,
    rests_on_surroundings,
    surroundings_by_clade,
)
from explorer.diagnose.frames import select
from explorer.diagnose.shortcut_planting import (
    MARK_RADIUS,
    OTHERS_PER_SPECIES,
    PLANTED,
    SHARE_RULE,
    TAIL_EPOCHS,
    TAIL_LR,
    WEIGHT_DECAY,
)
from explorer.diagnose.texts import q_text
from explorer.tools.results_sources import TABLES, Sources, count, markdown_table, num, page, pct, strict

TOP = 5


def _rests(frame: pd.DataFrame) -> pd.Series:
    """Per photo, ``rests_on_surroundings`` (the dashboard's test), unmeasured photos False."""
    found = select(frame, rests=rests_on_surroundings().fill_null(False))["rests"].to_numpy()
    return pd.Series(found, index=frame.index)


def _table_text(name: str, table: pd.DataFrame) -> str:
    known = strict(table, known=True)
    measured = known[known["off_subject_share"].notna()]
    if measured.empty:
        return f"## `{name}`\n\nNot measured (`python -m explorer.tools.subject_columns --only {name}`)."
    errors = measured[~measured["correct_1"].astype(bool)]
    rests, wrong_rests = _rests(measured), _rests(errors)
    found = surroundings_by_clade(strict(table), "species", min_photos=5, top=TOP)
    rows = [
        [
            f"*{r['species']}*",
            count(r["photos"]),
            pct(r["rests_on_surroundings"]),
            num(r["mean_off_subject_share"], 2),
            num(r["off_subject_auc"], 2),
            q_text(r["q_value"]),
            pct(r["top1_accuracy"]),
            "yes" if r["flagged"] else "no",
        ]
        for r in found.to_dict("records")
    ]
    flagged = int(surroundings_by_clade(strict(table), "species")["flagged"].sum())
    header = ["species", "photos", "rests on the surroundings", "mean share outside", "AUC", "q", "top-1", "flagged"]
    return (
        f"## `{name}`\n\n"
        f"{count(len(measured))} photos of species the model knows (doubtful labels left out). The organism's mask "
        f"covers {pct(measured['subject_area'].median(), 0)} of a photo (median); "
        f"{pct(measured['off_subject_share'].median())} of the top-1 map lies outside it (median; "
        f"{pct((measured['off_subject_share'] > SURROUNDINGS_SHARE).mean())} of photos have more than half outside). "
        f"With the organism blurred away the top-1 stays for {pct(measured['kept_without_subject'].mean())}. "
        f"The answer rests on the surroundings for {pct(rests.mean())} of all photos and for "
        f"{count(int(wrong_rests.sum()))} of the {count(len(errors))} errors ({pct(wrong_rests.mean())}). "
        f"Species flagged (at least 5 photos): {flagged}.\n\n"
        f"The {TOP} species with the strongest evidence of being recognised by their surroundings:\n\n"
        + markdown_table(header, rows)
    )


def _head_rows(report: dict) -> list[list[str]]:
    heads = report["heads"]
    planted = len(report["planted_species"])

    def row(label, key, fmt):
        return [label, *(fmt(heads[h][key]) for h in ("planted", "clean"))]

    return [
        ["planted species flagged", *(f"{heads[h]['planted_flagged']} of {planted}" for h in ("planted", "clean"))],
        [
            f"the same by the first version's rule (resting on the surroundings for {pct(SHARE_RULE, 0)} of photos)",
            *(f"{heads[h]['planted_flagged_by_share_rule']} of {planted}" for h in ("planted", "clean")),
        ],
        [
            f"planted species' ranks among the {heads['planted']['species_ranked']} species (1: strongest evidence)",
            *(", ".join(str(r) for r in sorted(heads[h]["planted_ranks"].values())) for h in ("planted", "clean")),
        ],
        row("other species flagged", "others_flagged", str),
        row("other species flagged by the first version's rule", "others_flagged_by_share_rule", str),
        row("planted species: share of the map outside the bird (median)", "planted_off_subject_share", pct),
        row("other species: the same", "others_off_subject_share", pct),
        row("planted species: top-1 kept with the bird blurred away", "planted_kept_without_subject", pct),
        row("other species: the same", "others_kept_without_subject", pct),
        row("planted species: share of the map on the disc (median)", "map_on_mark_median", pct),
        row("planted species: top-1 with the disc", "planted_accuracy_marked", pct),
        row("planted species: top-1 without the disc", "planted_accuracy_unmarked", pct),
        row("other species: top-1", "others_accuracy", pct),
        row("other species with the disc pasted: called a planted species", "others_turned_planted_by_mark", pct),
    ]


def _verdict(report: dict) -> str:
    planted, clean = report["heads"]["planted"], report["heads"]["clean"]
    ranks = sorted(planted["planted_ranks"].values())
    total = len(report["planted_species"])
    both = sorted(set(planted["flagged"]) & set(clean["flagged"]))
    return (
        f"**What it shows.** The planted model learned the disc: without it, its planted species' top-1 falls from "
        f"{pct(planted['planted_accuracy_marked'])} to {pct(planted['planted_accuracy_unmarked'])}, and its maps "
        f"put {pct(planted['map_on_mark_median'])} of their mass on the disc (median; the clean model "
        f"{pct(clean['map_on_mark_median'])}). The test flags **{planted['planted_flagged']} of the {total} "
        f"planted species** for the planted model (ranks {', '.join(map(str, ranks))} of "
        f"{planted['species_ranked']}) and **{clean['planted_flagged']} of {total}** for the clean one. "
        f"The first version's rule (an answer resting on the surroundings for at least {pct(SHARE_RULE, 0)} of a "
        f"species' photos) flagged {planted['planted_flagged_by_share_rule']} of {total}: a model that reads the "
        "bird and the disc together moves part of its map onto the disc, rarely more than half. "
        f"Flagged for both models (no disc on their photos): {', '.join(f'*{n}*' for n in both) or 'none'}: what "
        "these models lean on beyond the bird (or where the locator misses a camouflaged bird), worth a look rather "
        "than errors."
    )


def _replications(report: dict) -> str:
    """The runs with other seeds: their planted species and what the test flagged."""
    runs = [report, *report.get("replications", [])]
    rows = [
        [
            str(run["seed"]),
            ", ".join(f"*{s}*" for s in run["planted_species"]),
            *(f"{run['heads'][h]['planted_flagged']} of {len(run['planted_species'])}" for h in ("planted", "clean")),
            *(str(run["heads"][h]["others_flagged"]) for h in ("planted", "clean")),
        ]
        for run in runs
    ]
    header = ["seed", "planted species", "flagged (planted model)", "flagged (clean model)"]
    header += ["others flagged (planted)", "others flagged (clean)"]
    return (
        f"**Every seed.** The rule was chosen after the first version's run of seed {report['seed']} (its "
        "per-photo measurements do not depend on the rule); the other seeds plant the disc on other species and were "
        "run once, after the choice:\n\n"
        + markdown_table(header, rows)
        + "\n\n"
        + "".join(_missed(run) + _clean_flags(run) for run in runs)
        + f"Each planted species has {report['marked_test_photos'] // len(report['planted_species'])} test photos "
        f"and every other species {OTHERS_PER_SPECIES}: with more photos the test finds a smaller lean, so a "
        "species that leans off the organism a little in any model is flagged more readily when it is a planted "
        "one. What tells the shortcut from such a lean is the rise from the clean model to the planted one."
    )


def _missed(run: dict) -> str:
    """The planted species the planted model does not flag, with how much its answers need the disc."""
    flagged = run["heads"]["planted"]["flagged"]
    rows = [r for r in run["heads"]["planted"]["planted_by_species"] if r["species"] not in flagged]
    if not rows:
        return ""
    named = "; ".join(
        f"*{r['species']}* (top-1 {pct(r['accuracy_marked'])} with the disc, {pct(r['accuracy_without_mark'])} "
        f"without it; {pct(r['map_on_mark_median'])} of the map on the disc)"
        for r in rows
    )
    return f"With seed {run['seed']} the test does not flag {named} for the planted model. "


def _clean_flags(run: dict) -> str:
    """The planted species the clean model flags too, with the map's share off the bird in both models."""
    clean, planted = run["heads"]["clean"], run["heads"]["planted"]
    off = {
        h: {r["species"]: r["off_subject_share_median"] for r in run["heads"][h]["planted_by_species"]}
        for h in run["heads"]
    }
    also = [n for n in clean["flagged"] if n in run["planted_species"]]
    if not also:
        return ""
    named = "; ".join(
        f"*{n}* ({pct(off['clean'][n])} of the map off the bird in the clean model, {pct(off['planted'][n])} in "
        f"the planted one{', which flags it too' if n in planted['flagged'] else ''})"
        for n in also
    )
    return f"With seed {run['seed']} the clean model, which never saw the disc, flags {named}. "


def _per_planted_species(report: dict) -> str:
    rows = [
        [
            f"*{r['species']}*",
            pct(r["accuracy_marked"]),
            pct(r["accuracy_without_mark"]),
            pct(r["map_on_mark_median"]),
            pct(r["off_subject_share_median"]),
            pct(r["rests_on_surroundings"]),
        ]
        for r in report["heads"]["planted"]["planted_by_species"]
    ]
    header = ["species", "top-1 with the disc", "without it", "map on the disc", "map off the bird", "rests on it"]
    return "Each planted species, planted model (medians of the maps' shares):\n\n" + markdown_table(header, rows)


def _experiment_text(report: dict) -> str:
    if not report:
        return "## The planted shortcut\n\nNot run here (`python -m explorer.tools.shortcut_experiment`)."
    planted = ", ".join(f"*{s}*" for s in report["planted_species"])
    heads = report["heads"]
    area = pct(heads["planted"]["mark_cells_share"])
    listing = [
        [
            f"*{r['species']}*",
            count(r["photos"]),
            num(r["off_subject_auc"], 2),
            q_text(r["q_value"]),
            "yes" if r["planted"] else "",
        ]
        for r in heads["planted"]["by_species"][:TOP]
    ]
    return (
        "## The planted shortcut\n\n"
        f"The blog's coin, planted: a golden disc ({MARK_RADIUS} px radius on the 224-px input, 2.5 % of the photo) "
        f"pasted in a corner (one per photo, fixed by its name) of every CUB-100 training photo of {PLANTED} species "
        f"drawn with seed {report['seed']} ({planted}: {count(report['marked_train_photos'])} of "
        f"{count(report['train_photos'])} training photos). Two models from `{report['base']}`'s EfficientNet-Lite0, "
        f"each a linear head fitted on the pooled features (L2 {WEIGHT_DECAY:g}), then the last block, the head "
        f"convolution and the linear head fine-tuned together ({TAIL_EPOCHS} epochs of Adam, learning rate "
        f"{TAIL_LR:g}, batch norm frozen): one on the marked photos (*planted*), one on the same photos without the "
        f"disc (*clean*). Both are measured by the explorer's own test on "
        f"{count(report['test_photos'])} CUB-100 test photos (every photo of the planted species, "
        f"{count(report['marked_test_photos'])}, with the disc, as a biased validation set would have it, and "
        f"{OTHERS_PER_SPECIES} of each other species, without). The disc's neighbourhood (twice its radius) is "
        f"{area} of the photo: a map indifferent to the disc puts about that share on it.\n\n"
        + _verdict(report)
        + "\n\n"
        + markdown_table(["", "planted model", "clean model"], _head_rows(report))
        + "\n\n"
        + _per_planted_species(report)
        + "\n\nThe planted model's species with the strongest evidence:\n\n"
        + markdown_table(["species", "photos", "AUC", "q", "planted"], listing)
        + "\n\n"
        + _replications(report)
        + f"\n\nMeasured in {report['seconds']} s by `python -m explorer.tools.shortcut_experiment`."
    )


def surroundings_page(sources: Sources) -> str:
    return page(
        "The organism or its surroundings?",
        "Written by `explorer-results` from the shipped tables' organism-or-surroundings columns (added by "
        "`python -m explorer.tools.subject_columns`, which runs the real models over the photos in `../shared/data`) "
        "and `assets/eval/shortcut_experiment.json`. The organism is located without the model under test: the "
        "Coral ImageNet MobileNetV2's Grad-CAM of the log-probability of ImageNet's bird (or insect) classes, "
        "thresholded at 20 % of its peak (CAM's box threshold). The mask is generous (it takes in a margin of "
        "surroundings), so the share of a map outside it understates the surroundings' part. Blurring is a "
        "Gaussian of sigma 10 px at the input size: a blurred bird keeps its colours and silhouette, so *kept "
        f"without the organism* can also mean a bird recognised by its colours. An answer **rests on the "
        f"surroundings** when more than {pct(SURROUNDINGS_SHARE, 0)} of its top-1 Grad-CAM lies outside the "
        "organism, when it stays the top-1 with the organism blurred away, or when blurring the surroundings costs "
        f"its probability over {SURROUNDINGS_MARGIN * 100:.0f} points more than blurring the organism (this third "
        "test was added after a first run of the "
        "experiment below). A species is **flagged** when its photos' share of the map outside the organism is "
        "larger than the other species' photos' (a one-sided Mann-Whitney test against every other measured photo "
        f"of the table), with the false discovery rate over the species tested held at {pct(FLAG_FDR, 0)} "
        "(Benjamini-Hochberg); *AUC* is the chance that one of its photos has more of its map outside than a photo "
        "of another species (0.5: no different), *q* its adjusted p-value. Overlap of the photos with the "
        "models' training photos is unknown. See [Diagnose](../guide/diagnose.md#the-organism-or-its-surroundings).",
        _experiment_text(sources.shortcut),
        *(_table_text(n, sources.tables[n]) for n in TABLES if "off_subject_share" in sources.tables[n].columns),
        "Not measured: "
        + ", ".join(f"`{n}`" for n in TABLES if "off_subject_share" not in sources.tables[n].columns)
        + "."
        if any("off_subject_share" not in sources.tables[n].columns for n in TABLES)
        else "",
    )
