"""The results page on why errors happen: the label check measured on planted label errors and on the labels the
manifests already doubt, the labels most likely wrong, and every error's causes per table and per clade."""

from __future__ import annotations

import pandas as pd

from explorer.diagnose.causes import CAUSES, LABEL_THRESHOLD, NO_CAUSE, cause_totals, causes_by_clade, tested
from explorer.diagnose.duplicates import CANDIDATE_QUANTILE, MIN_INLIERS, duplicate_effect
from explorer.diagnose.frames import to_frame
from explorer.diagnose.label_planting import PLANTED_SEED, PLANTED_SHARE, planted_experiment
from explorer.taxa.synonymy import load_synonyms
from explorer.tools.label_columns import EMBEDDINGS_OF, table_taxonomy
from explorer.tools.results_sources import (
    SOURCE_NAMES,
    TABLES,
    Sources,
    by_source,
    count,
    markdown_table,
    num,
    page,
    pct,
)

FLAGGED = f"score ≥ {LABEL_THRESHOLD:g}"


def _witness(sources: Sources, name: str) -> str:
    store = sources.embeddings.get(name)
    if store is None:
        return "the model alone"
    return f"model + neighbours ({EMBEDDINGS_OF[name]}'s embeddings)" if name in EMBEDDINGS_OF else "model + neighbours"


def planted_text(sources: Sources) -> str:
    rows, results = [], {}
    for name in TABLES:
        table = sources.tables[name]
        found = results[name] = planted_experiment(table, sources.embeddings.get(name), table_taxonomy(table))
        rows.append(
            [
                f"`{name}`",
                _witness(sources, name),
                count(found.photos),
                count(found.planted),
                f"**{num(found.auroc)}**",
                num(found.auroc_model_alone),
                num(found.auroc_self_confidence),
                f"{pct(found.flagged_planted)} / {pct(found.flagged_clean)}",
                f"{pct(found.cl_planted)} / {pct(found.cl_clean)}",
            ]
        )
    header = [
        "table",
        "witnesses",
        "photos",
        "planted",
        "AUROC",
        "model alone",
        "1 − p(label)",
        f"{FLAGGED}: planted / others",
        "confident learning: planted / others",
    ]
    return (
        "## Planted label errors\n\n"
        f"On each shipped table, {pct(PLANTED_SHARE, 0)} of the readable photos of species the model knows get "
        f"another label, drawn uniformly among the classes the table names (seed {PLANTED_SEED}); the score is "
        "recomputed and its AUROC measures how well it ranks the planted labels above the others. *Model alone* "
        "leaves the neighbours out; *1 − p(label)* is cleanlab's self-confidence score, the usual baseline. A planted "
        "label's probability outside the stored top 5 is taken at the 5th probability (the most it can be), so "
        "these are lower bounds. *Others* includes the tables' real label errors and the model's own mistakes, "
        "so it is not a false-positive rate.\n\n" + markdown_table(header, rows) + "\n\n" + _planted_reading(results)
    )


def _planted_reading(results: dict) -> str:
    """What the planted table says, in words written from its numbers."""
    worst = min(results, key=lambda n: results[n].auroc)
    beaten = [n for n, r in results.items() if r.auroc_self_confidence > r.auroc]
    line = f"The lowest AUROC is {num(results[worst].auroc)} (`{worst}`). "
    if beaten:
        gaps = ", ".join(f"`{n}` by {num(results[n].auroc_self_confidence - results[n].auroc)}" for n in beaten)
        line += (
            f"The probability of the label alone does better on {gaps}: random labels are mostly wrong at order, "
            "which a strong model's probability already shows, and the neighbours' vote adds noise there. "
        )
    helped = {n: r.auroc - r.auroc_model_alone for n, r in results.items()}
    best = max(helped, key=helped.get)
    return line + f"The neighbours help most on `{best}` ({num(helped[best])} of AUROC over the model alone)."


def doubtful_text(sources: Sources) -> str:
    table = by_source(sources.tables["inat_bird"], "birds525-valid")
    noted = table[table["note"].astype(str) != ""]
    rows = []
    for note, group in noted.groupby(noted["note"].astype(str), sort=True):
        known = group[group["label_issue_score"].notna()]
        rows.append(
            [
                ", ".join(sorted(set(_folders(group)))),
                ", ".join(sorted({f"*{n}*" for n in group["true_name"].astype(str)})),
                note.replace("|", "/"),
                count(len(group)),
                count(len(known)),
                num(known["label_issue_score"].mean(), 2) if len(known) else "n/a",
                f"{int((known['label_issue_score'] >= LABEL_THRESHOLD).sum())} of {len(known)}",
                f"{int(known['label_cl_flag'].sum())} of {len(known)}",
            ]
        )
    header = [
        "class (folder)",
        "label",
        "the manifest's note",
        "photos",
        "scored",
        "mean score",
        FLAGGED,
        "confident learning",
    ]
    return (
        "## The labels BIRDS-525's manifest doubts\n\n"
        f"`birds525-valid`'s manifest notes a doubt on {count(len(noted))} photos of {_folders(noted).nunique()} "
        f"classes (folders), labelled with {noted['true_name'].astype(str).nunique()} scientific names. What "
        "`inat_bird`'s label check says of them (photos of a species the model has no class for are not scored):\n\n"
        + markdown_table(header, rows)
        + f"\n\nHighest: {_highest(noted)}. A note that only corrects how Kaggle spelled a name (the photos "
        "are right) should score low; a note that doubts what the photos show should score high."
    )


def _folders(photos) -> pd.Series:
    """Each photo's class folder (the folder that holds it)."""
    return photos["path"].astype(str).str.rsplit("/", n=2).str[-2]


def _highest(noted) -> str:
    means = noted.groupby(noted["note"].astype(str))["label_issue_score"].mean()
    return f"*{means.idxmax()}* (mean {num(means.max(), 2)})"


def top_issues_text(sources: Sources, name: str, top: int = 10) -> str:
    table = sources.tables[name]
    ranked = table[table["label_issue_score"].notna()].sort_values(
        ["label_issue_score", "photo_id"], ascending=[False, True], kind="stable"
    )
    rows = [
        [
            f"`{r.path}`",
            f"*{r.true_name}*",
            f"*{r.pred_name}* ({pct(r.confidence, 0)})",
            num(r.label_issue_score, 2),
            r.label_issue_rank or "—",
            "yes" if r.label_cl_flag else "no",
            _checked(sources, r.path),
        ]
        for r in ranked.head(top).itertuples()
    ]
    header = ["photo", "label", "model's top-1", "score", "wrong up to", "confident learning", "by eye"]
    return (
        f"## The {top} labels `{name}` doubts most\n\n"
        f"Of {count(len(ranked))} scored photos, {count(int((ranked['label_issue_score'] >= LABEL_THRESHOLD).sum()))} "
        f"have {FLAGGED}. {_verdicts(sources, ranked.head(top)['path'])}\n\n" + markdown_table(header, rows)
    )


def _checked(sources: Sources, path: str) -> str:
    verdict = sources.label_checks.get(str(path))
    return "not checked" if verdict is None else f"**{verdict[0]}**: {verdict[1]}"


def _verdicts(sources: Sources, paths) -> str:
    said = [sources.label_checks[str(p)][0] for p in paths if str(p) in sources.label_checks]
    return (
        f"Looked at by eye (`assets/eval/label_checks.csv`; field marks, not an expert's word): {said.count('wrong')} "
        f"of these {len(list(paths))} are wrong labels, {said.count('right')} right, {said.count('unclear')} unclear, "
        f"{len(list(paths)) - len(said)} not checked."
    )


def agreed_text(sources: Sources, first: str = "cub100_effnet_head", second: str = "inat_bird", top: int = 12) -> str:
    """The photos two models' label checks both doubt (matched by photo_hash): two witnesses trained apart."""
    a, b = (
        sources.tables[n][["photo_hash", "path", "true_name", "label_issue_score", "pred_name"]]
        for n in (first, second)
    )
    both = a.merge(b.drop(columns=["path", "true_name"]), on="photo_hash", suffixes=("_a", "_b"))
    both = both.dropna(subset=["label_issue_score_a", "label_issue_score_b"])
    both["lower"] = both[["label_issue_score_a", "label_issue_score_b"]].min(axis=1)
    flagged = int((both["lower"] >= LABEL_THRESHOLD).sum())
    ranked = both.sort_values(["lower", "path"], ascending=[False, True], kind="stable").head(top)
    rows = [
        [
            f"`{r.path}`",
            f"*{r.true_name}*",
            f"*{r.pred_name_a}*",
            f"*{r.pred_name_b}*",
            num(r.lower, 2),
            _checked(sources, r.path),
        ]
        for r in ranked.itertuples()
    ]
    header = ["photo", "label", f"`{first}` says", f"`{second}` says", "lower score", "by eye"]
    return (
        f"## Photos both `{first}` and `{second}` doubt\n\n"
        f"A model that finds a photo hard doubts its label too, so one model's list mixes wrong labels with hard "
        f"photos. Two models trained apart are two witnesses: of the {count(len(both))} photos both score, "
        f"{count(flagged)} have {FLAGGED} in both. Ranked by the lower of the two scores. "
        f"{_verdicts(sources, ranked['path'])}\n\n" + markdown_table(header, rows)
    )


def causes_text(sources: Sources) -> str:
    rows = []
    for name in TABLES:
        totals = cause_totals(to_frame(sources.tables[name]))
        by = dict(zip(totals["cause"], totals["errors"]))
        rows.append(
            [f"`{name}`", *(count(by[c.label]) if c.label in by else "not tested" for c in CAUSES), count(by[NO_CAUSE])]
        )
    tests = "\n".join(f"- **{c.label}**: {c.test}." for c in CAUSES)
    bird = to_frame(sources.tables["inat_bird"])
    clades = causes_by_clade(bird, "order", top=8)
    clade_rows = [[f"*{r[0]}*", *(count(v) for v in r[1:])] for r in clades.itertuples(index=False)]
    return (
        "## A cause for every error\n\n"
        "Every readable photo whose image-alone top-1 is wrong (and, under *the place broke it*, every photo the "
        "place made wrong) is run through each test the table can answer; a photo may have several causes, or "
        f"none (*{NO_CAUSE}*). The tests:\n\n{tests}\n\n"
        + markdown_table(["table", *(c.label for c in CAUSES), NO_CAUSE], rows)
        + "\n\n`inat_bird`'s orders with the most errors (a photo with two causes counts under both):\n\n"
        + markdown_table([str(c) for c in clades.columns], clade_rows)
        + f"\n\n`inat_bird` tests {len(tested(bird))} of the {len(CAUSES)} causes. The counts here are over every "
        "photo of the table; [The organism or its surroundings?](surroundings.md) counts over the photos of known "
        "species without a doubtful label, so its numbers for *rests on the surroundings* are smaller."
    )


def _same_name(a: str, b: str) -> bool:
    synonyms = load_synonyms()
    return synonyms.canonical(str(a)) == synonyms.canonical(str(b))


def duplicates_text(sources: Sources) -> str:
    """The near-duplicates each table's check found, and each photo set's top-1 with and without the repeats."""
    rows, listed = [], {}
    for name in TABLES:
        found = sources.duplicates.get(name)
        if found is None:
            rows.append([f"`{name}`", "not checked", "", "", ""])
            continue
        table = sources.tables[name]
        for source in sorted(table["source"].astype(str).unique()):
            effect = duplicate_effect(table, found, source)
            rows.append(
                [
                    f"`{name}`",
                    SOURCE_NAMES.get(source, source),
                    f"{effect.duplicates} of {count(effect.photos)}",
                    pct(effect.accuracy),
                    pct(effect.accuracy_without),
                ]
            )
        for pair in found.itertuples():
            listed.setdefault((pair.photo_a, pair.photo_b), (pair, []))[1].append(name)
    pairs = [
        [
            f"`{p.photo_a}`",
            f"`{p.photo_b}`",
            "across sets" if p.source_a != p.source_b else "within a set",
            "same" if _same_name(p.label_a, p.label_b) else f"*{p.label_a}* / *{p.label_b}*",
            p.how + (f" ({int(p.inliers)} keypoints)" if p.inliers >= 0 else ""),
            ", ".join(f"`{n}`" for n in names),
        ]
        for p, names in listed.values()
    ]
    return (
        "## Near-duplicates\n\n"
        "The same photo twice inflates a test set's top-1, and the same photo in two sets is a leak. Each photo "
        f"and its nearest neighbour in the model's embedding are checked when their cosine is in the table's top "
        f"{pct(1 - CANDIDATE_QUANTILE, 0)} (each model's cosines spread differently), and so is every pair with "
        f"the same bytes; a pair is a duplicate when at least {MIN_INLIERS} ORB keypoints agree on one "
        "crop-and-resize (`python -m explorer.tools.duplicate_photos`, written beside each table). Which candidates a "
        "table checks depends on its model, so the tables find different pairs.\n\n"
        + markdown_table(["photo A", "photo B", "where", "labels", "the test", "found in"], pairs)
        + "\n\nTop-1 over the readable photos of species the model knows, with the repeats (the second photo "
        "of each pair) and without:\n\n"
        + markdown_table(["table", "photo set", "repeats", "top-1", "top-1 without them"], rows)
    )


def causes_page(sources: Sources) -> str:
    return page(
        "Why errors happen",
        "Written by `explorer-results` from the shipped tables, their `label_*` columns and the embeddings "
        "beside them (`python -m explorer.tools.label_columns` adds the columns to a table in place; "
        "`explorer-evaluate` writes them). `label_issue_score` (0..1) is one minus the support the label gets at "
        "species, genus, family and order from two witnesses: the model's probability of the label's clade "
        "against that clade's usual level on the table, and the share of the photo's 10 nearest neighbours in the "
        "model's embedding that carry the same clade. See [Diagnose](../guide/diagnose.md#why-each-error-happened).",
        planted_text(sources),
        doubtful_text(sources),
        top_issues_text(sources, "cub100_effnet_head"),
        top_issues_text(sources, "inat_bird"),
        agreed_text(sources),
        duplicates_text(sources),
        causes_text(sources),
    )
