"""The results page on the maps: each CAM method's faithfulness for each shipped model (explorer-faithfulness's
reports beside the tables), against a map of random noise."""

from __future__ import annotations

from explorer.diagnose.map_faithfulness import BETTER, COUNTED, MEASURES, RANDOM_MAP, faithfulness_frame
from explorer.tools.results_sources import TABLES, Sources, count, markdown_table, num, page

LABELS = {
    "road_morf": "ROAD MoRF",
    "road_lerf": "ROAD LeRF",
    "road_combined": "ROAD combined",
    "deletion": "deletion",
    "insertion": "insertion",
    "complexity": "Complexity",
    "coherency": "Coherency",
    "arcc": "ARCC",
}


def _model_text(name: str, report: dict) -> str:
    frame = faithfulness_frame(report)
    shown = [k for k in MEASURES if k in frame.columns]
    counted = len([k for k in COUNTED if k in frame.columns])
    rows = [
        [
            f"**{r['method']}**" if r["method"] != RANDOM_MAP else r["method"],
            *(f"{num(r[k])} ± {num(r[f'{k} ±'])}" for k in shown),
            "" if r["method"] == RANDOM_MAP else f"{int(r['beats the random map on'])} of {counted}",
        ]
        for r in frame.to_dict("records")
    ]
    methods = frame[frame["method"] != RANDOM_MAP]
    best = methods.sort_values("road_combined", ascending=False, kind="stable").iloc[0]
    fewest = methods.sort_values("beats the random map on", kind="stable").iloc[0]
    header = ["method", *(f"{LABELS[k]} ({BETTER[k]} is better)" for k in shown), "beats the random map on"]
    older = (
        f" This report predates ARCC (`explorer-faithfulness --model {name}` measures it too)."
        if "arcc" not in shown
        else ""
    )
    return (
        f"## `{name}`\n\n"
        f"{count(report['photos'])} photos (seed {report['seed']}), each map explaining the model's top-1; "
        f"measured in {report['seconds']:.0f} s. Highest ROAD combined: **{best['method']}** "
        f"({num(best['road_combined'])}); beats the random map on the fewest measures: **{fewest['method']}** "
        f"({int(fewest['beats the random map on'])} of {counted}).{older}\n\n" + markdown_table(header, rows)
    )


def faithfulness_page(sources: Sources) -> str:
    measured = [n for n in TABLES if n in sources.faithfulness]
    missing = [n for n in TABLES if n not in sources.faithfulness]
    return page(
        "Can you trust the maps?",
        "Written by `explorer-results` from `assets/eval/NAME.faithfulness.json`, which `explorer-faithfulness "
        "--model NAME` measures on a sample of the table's photos (the real model, the photos in `../shared/data`). "
        "ROAD is pytorch-grad-cam's metric (the pixels above, MoRF, or below, LeRF, the map's 20th, 40th, 60th "
        "and 80th percentiles filled in by its noisy linear imputation; the change in the top-1's probability, "
        "averaged); deletion and insertion are the areas under the top-1's probability as the map's pixels are "
        "blurred away or put back, most relevant first, in 10 steps. ± is the half-width of a 95 % interval over "
        "the photos; *beats the random map* counts the measures on which the method's interval is clear of a "
        "noise map's mean. **What they favour**: ROAD rewards smooth, blob-like maps (a removed blob cannot be "
        "filled in from its neighbours, a sharp map's scattered pixels can); deletion and insertion depend on the "
        "blur that stands for a removed pixel. They say whether the answer depends on what a map shows, not "
        "whether the map is right. **ARCC** (pytorch-grad-cam's, Rong et al.'s successor measure) combines ROAD "
        "combined with **Complexity** (the map's mean value: a sparse map is lower) and **Coherency** (the map "
        "recomputed on the photo multiplied by the map, correlated with the map: (r + 1) / 2), as 3 / (1 / coherency "
        "+ 1 / (1 − complexity) + 1 / clip(2 ROAD combined, 0, 1)); it too favours compact blobs. *Beats the random "
        "map* counts every measure but Complexity, which describes a map rather than tests it. "
        "See [Diagnose](../guide/diagnose.md#can-you-trust-the-map).",
        *(_model_text(n, sources.faithfulness[n]) for n in measured),
        ("Not measured: " + ", ".join(f"`{n}`" for n in missing) + ".") if missing else "",
    )
