"""The results pages on what the models learned and what the place changes: representation, per-rank heads,
taxonomy-aware smoothing and the geo-priors."""

from __future__ import annotations

import pandas as pd

from explorer.diagnose.geo_effect import compare_priors, geo_effect, geo_effect_by_clade, geo_view
from explorer.diagnose.metrics import errors_by_rank, summary
from explorer.diagnose.representation import fits_frame, rank_head_accuracy, sources_line
from explorer.tools.results_combination import combination_text
from explorer.tools.results_sources import Sources, count, markdown_table, num, page, pct

CUB_PHOTOS = "the CUB-100 test photos (none used in training the heads or in choosing anything)"


def representation_page(sources: Sources) -> str:
    reports = sources.representation
    frame = fits_frame(reports)
    order = {name: i for i, name in enumerate(reports)}
    frame = frame.sort_values("table", key=lambda s: s.map(order), kind="stable")
    rows = [
        [f"`{r.table}`", r.rank, count(r.photos), count(r.taxa), num(r.AMI), num(r.NMI), r._7, r._8]
        for r in frame.itertuples()
    ]
    left_out = int((frame["photos"] - frame["queries"]).sum())
    fits = {(r.table, r.rank): r for r in frame.itertuples()}
    bird, head = fits[("inat_bird", "species")], fits[("cub100_effnet_head", "species")]
    header = ["table", "rank", "photos", "taxa", "AMI", "NMI", "Recall@1 (95 % CI)", "Recall@5 (95 % CI)"]
    return page(
        "Does the model learn taxonomy? Representation figures",
        "Per-rank clustering agreement (AMI, NMI: UMAP to 50 dimensions, Ward clustering into as many clusters as "
        "there are true taxa) and leave-one-out k-NN retrieval (Recall@1, @5 with a 95 % bootstrap interval) of "
        "each shipped table's stored embeddings, written by `explorer-represent` to "
        "`assets/eval/NAME.representation.json` (how: [Diagnose](../guide/diagnose.md)).",
        markdown_table(header, rows),
        f"Which photos: {sources_line(reports)} (every photo, those with doubtful labels included). Photos alone "
        f"in their taxon cannot be retrieved and are left out of the recalls: {left_out} here. Overlap with the "
        "Coral models' training photos is unknown; the CUB-100 head was trained on the train split only, and what "
        "its ImageNet backbone saw is unknown. These are few photos of few taxa, and the tables differ in photos "
        "and taxa: compare ranks within a table, and tables only with care. What they say: the iNat-trained "
        "MobileNet's embedding clusters by species far better than the ImageNet EfficientNet's (AMI "
        f"{num(bird.AMI, 2)} vs {num(head.AMI, 2)} at species; Recall@1 {bird._7.split()[0]} vs "
        f"{head._7.split()[0]}), as a model trained on these taxa should. AMI moves with small changes of the "
        "embeddings (two runs whose embeddings differed only by float rounding moved it by up to a few "
        "hundredths): read small AMI differences as noise.",
    )


def rank_heads_page(sources: Sources) -> str:
    table = sources.tables["cub100_effnet_head"]
    accuracy = rank_head_accuracy(table)
    rows = [
        [r.rank, count(r.photos), pct(r._3), pct(r._4), pct(r._5), r._6, r._7]
        for r in accuracy.itertuples()  # _3.._7: own head, summed, top-1's clade, only own, only summed
    ]
    readable = table[table["status"] == "ok"]
    disagree = int((readable["head_genus"].astype(str) != readable["pred_genus"].astype(str)).sum())
    taxa = {rank: readable[f"true_{rank}"].nunique() for rank in ("species", "genus", "family", "order")}
    header = ["rank", "photos", "its own head", "species head summed at the rank", "top-1 species' clade"]
    return page(
        "Per-rank heads against the species head summed",
        "How the heads are trained and shown: [Models trained here](../guide/models.md). The heads' file says: "
        f"*{sources.rank_heads['source']}*.",
        f"On {CUB_PHOTOS}, `cub100_effnet_head`'s table: {count(len(readable))} photos of {taxa['species']} "
        f"species ({taxa['genus']} genera, {taxa['family']} families, {taxa['order']} orders); per rank, the "
        "photos whose true clade the rank's head has a class for:",
        markdown_table([*header, "only the own head right", "only the summed species head right"], rows),
        f"On {count(disagree)} photos the genus head and the top species' genus disagree (the flag in Identify). "
        "Where the summed species head beats a rank's own head, the species head already carries what these "
        "frozen ImageNet features hold of the taxonomy at that rank. These are few photos of few taxa: gaps of "
        "a few dozen photos are small. The Coral models get no rank heads: there are no labelled photos of their "
        "species outside their evaluation sets to train them on.",
    )


def _errors_cell(table: pd.DataFrame, rank: str) -> str:
    ranks = errors_by_rank(table).set_index("rank")
    return f"{count(ranks.loc[rank, 'photos'])} ({pct(ranks.loc[rank, 'share_of_errors'])} of errors)"


def _prior_cell(table: pd.DataFrame, prior: str) -> str:
    row = compare_priors(table).set_index("prior").loc[prior]
    return (
        f"{pct(row.top1_image)} → {pct(row.top1_with_prior)}; fixed {int(row.fixed)}, broke {int(row.broke)} "
        f"(on {count(row.photos)})"
    )


def smoothing_page(sources: Sources) -> str:
    plain, smooth = sources.tables["cub100_effnet_head"], sources.tables["cub100_effnet_taxsmooth"]
    both = (plain, smooth)
    stats = [summary(t) for t in both]
    errors = [int((~t["correct_1"]).sum()) for t in both]
    rows = [
        ["top-1 / top-5", *(f"{pct(s.top1, 2)} / {pct(s.topk, 2)}" for s in stats)],
        ["errors", *map(count, errors)],
        *(
            [f"first rank where the top-1 leaves the truth: {rank}", *(_errors_cell(t, rank) for t in both)]
            for rank in ("species", "genus", "family", "order")
        ),
        ["mean top-1 confidence", *(num(float(t["confidence"].mean())) for t in both)],
        *(
            [f"with a held-out place, `{p}` prior: top-1 image → with it", *(_prior_cell(t, p) for t in both)]
            for p in compare_priors(plain)["prior"]
        ),
    ]
    return page(
        "Taxonomy-aware label smoothing, measured",
        "How the smoothed head is trained: [Models trained here](../guide/models.md). Its card says: "
        f"*{sources.cards['cub100_effnet_taxsmooth']['source']}*.",
        f"On {CUB_PHOTOS}: {count(stats[0].photos)} photos of {stats[0].species} species, all in vocabulary.",
        markdown_table(
            ["", "plain head (`cub100_effnet_head`)", "taxonomy-smoothed (`cub100_effnet_taxsmooth`)"], rows
        ),
        "A rank's row counts the errors that first leave the truth there (species: the right genus, genus: the "
        "right family, ...). The smoothing is meant to move errors down the tree; read the rows above for whether "
        "it did. What it changes for certain is confidence: the spread targets make the head less sure, so a "
        "geo-prior, which multiplies, overrides it more often. "
        f"{count(stats[0].photos)} photos of {stats[0].species} species is a small test: differences of a few "
        "errors are noise.",
    )


def _place_rows(sources: Sources, prior: str) -> list[list[str]]:
    rows = []
    for model in ("inat_bird", "cub100_effnet_head", "cub100_effnet_taxsmooth"):
        effect = geo_effect(geo_view(sources.tables[model], prior))
        n = effect.photos_with_place
        rows.append(
            [
                f"`{model}`",
                count(n),
                pct(effect.top1_vision),
                pct(effect.top1_geo),
                f"{count(effect.changed)} ({pct(effect.changed / max(n, 1))})",
                count(effect.fixed),
                count(effect.broke),
                count(effect.wrong_to_other_wrong),
            ]
        )
    return rows


def _clade_text(table: pd.DataFrame, prior: str, rank: str = "family", n: int = 3) -> str:
    clades = geo_effect_by_clade(geo_view(table, prior), rank)
    worst = clades.sort_values(["net", "clade"]).head(n)
    best = clades.sort_values(["net", "clade"], ascending=[False, True]).head(n)

    def listed(rows: pd.DataFrame) -> str:
        return ", ".join(f"{r.clade} ({r.fixed} fixed, {r.broke} broke)" for r in rows.itertuples())

    return f"Per family (`inat_bird` table, `{prior}` prior): net worst in {listed(worst)}; best in {listed(best)}."


def _side_by_side(sources: Sources) -> str:
    comparison = sources.prior_comparison
    priors = ("inat_bird", "birdnet")
    site = {r["prior"]: r for r in comparison["site_map"]}
    uniform = {r["prior"]: r for r in comparison["auroc"]}
    target = {r["prior"]: r for r in comparison["auroc_target_group"]}
    time = comparison["time"]
    s, u = site["inat_bird"], uniform["inat_bird"]
    rows = [
        [
            f"site-ranking MAP: {s['sites']} held-out sites, {s['taxa']} taxa recorded there (no date)",
            *(num(site[p]["site_map"]) for p in priors),
        ],
        [
            f"presence AUROC: {count(u['records'])} held-out records of {u['taxa']} taxa (≥ 5 records) vs "
            "uniform land points",
            *(num(uniform[p]["auroc"]) for p in priors),
        ],
        [
            "presence AUROC: the same records vs the observers' own held-out sites (target-group background)",
            *(num(target[p]["auroc"]) for p in priors),
        ],
        ["one query (a place → every taxon)", *(f"{1000 * time[p]['query_s']:.2f} ms" for p in priors)],
        [
            "range grid, once per prior and week",
            *(f"{time[p]['grid_s']:.2f} s ({time[p]['step']}°, {count(time[p]['cells'])} land cells)" for p in priors),
        ],
        ["one species-week on a prepared grid", *(f"{1000 * time[p]['map_s']:.1f} ms" for p in priors)],
    ]
    return markdown_table(["measure (taxa both know)", "ours (`inat_bird`)", "BirdNET"], rows)


def _photo_nets(sources: Sources) -> dict[str, int]:
    """Per prior, its net fixes (fixed - broke) summed over the three bird tables' photos with a place."""
    nets: dict[str, int] = {}
    for model in ("inat_bird", "cub100_effnet_head", "cub100_effnet_taxsmooth"):
        for row in compare_priors(sources.tables[model]).itertuples():
            nets[row.prior] = nets.get(row.prior, 0) + int(row.net)
    return nets


def priors_page(sources: Sources) -> str:
    metrics, data = sources.geo_metadata["metrics"], sources.geo_metadata["data"]
    comparison, nets = sources.prior_comparison, _photo_nets(sources)
    time = comparison["time"]
    site = {r["prior"]: r["site_map"] for r in comparison["site_map"]}
    header = ["table", "photos with a place", "top-1 image only", "top-1 with the prior", "top-1 changed"]
    return page(
        "What the place changes: the geo-priors measured",
        "How the priors work and how they are chosen: [Where and when: the geo-priors](../guide/geo-priors.md).",
        f"**Our prior** (`checkpoints/geo/inat_bird.safetensors`, its figures from the checkpoint's own metadata) "
        f"was trained on {count(metrics['train_records'])} eBird records of {count(metrics['taxa_with_records'])} "
        f"taxa ({', '.join(data['occurrences'])}), holding out whole {data['cell_degrees']:g}° cells "
        f"({data['held_out']:.0%}, seed {data['seed']}: {count(metrics['held_out_records'])} records at "
        f"{metrics['held_out_sites']} sites, never random rows from a training spot). Ranking held-out sites by "
        f"each taxon's presence score: mean average precision {num(metrics['held_out_site_map'])} over "
        f"{metrics['held_out_taxa']} taxa, against {num(metrics['location_blind_map'])} for a location-blind "
        "prior that scores every site by the taxon's frequency. The records come from a handful of observers: "
        "the prior knows where these observers went, not the species' whole ranges.",
        "**What the place changes, on the photos.** The labelled photos have no recorded place. "
        "`explorer-shipped` gives each photo the place and date of one eBird record of its *true* species drawn "
        "at random (seed 0) from our prior's held-out cells; photos whose species has no held-out record get no "
        "place and are left out here (as are photos of species the model has no class for). A favourable "
        "setting (a real photo can come from anywhere in the range, or outside it), and it says nothing about "
        "date errors. Each prior combined by its fitted rule (the section below), on both halves. With our own "
        "prior:",
        markdown_table([*header, "fixed", "broke", "wrong → other wrong"], _place_rows(sources, "inat_bird")),
        "With BirdNET's range model on the same photos at the same places:",
        markdown_table([*header, "fixed", "broke", "wrong → other wrong"], _place_rows(sources, "birdnet")),
        _clade_text(sources.tables["inat_bird"], "inat_bird"),
        "## Two priors side by side: ours and BirdNET's range model",
        f"From `checkpoints/geo/prior_comparison.json` (`python benchmarks/bench_priors.py --write`), on the "
        f"{count(comparison['shared_taxa'])} taxa both priors know and our prior's "
        f"{count(comparison['held_out_records'])} held-out records. BirdNET was trained on eBird data at large "
        "and may have seen these very records, which favours it; our prior was trained on the same observers' "
        "records in the neighbouring cells, which favours ours. The times were measured on the machine that "
        "wrote the file.",
        _side_by_side(sources),
        f"**Reading these figures.** Site MAP, the measure least bent by where the observers went, favours BirdNET "
        f"({num(site['birdnet'])} against {num(site['inat_bird'])}); the file's rule (*{comparison['rule']}*) "
        f"named `{comparison['default']}`, and the fit below now chooses each model's default on its photos. On "
        "the photos, with the fitted rules, summed over the three bird tables, the net fixes (fixed − broke) are "
        + ", ".join(f"{n:+d} for `{p}`" for p, n in nets.items())
        + ": those places are our observers' held-out records, inside the footprint our prior was trained on, "
        "so the photo test measures our prior at home. A BirdNET query takes about "
        f"{time['birdnet']['query_s'] / time['inat_bird']['query_s']:.1f} times ours (a larger head; still a "
        "few milliseconds).",
        combination_text(sources),
    )
