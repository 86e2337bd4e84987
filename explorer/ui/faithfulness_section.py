"""The Diagnose tab's "Can you trust the maps?": each CAM method's faithfulness for each table's model, as
explorer-faithfulness measured it (NAME.faithfulness.json beside the table), with what each measure favours."""

from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from explorer.diagnose.map_faithfulness import faithfulness_frame, faithfulness_path, load_faithfulness
from explorer.services.resources import Resources, table_paths

ABOUT = (
    "Each map explains the model's own top-1 on a sample of the table's photos (`explorer-faithfulness`), and a map "
    "of random noise is measured the same way: a method earns trust where it beats the noise. **ROAD** "
    "(pytorch-grad-cam's metric): the pixels above (MoRF) or below (LeRF) a percentile of the map are filled in "
    "from their neighbours, at 20, 40, 60 and 80 %, and the probability's change is averaged; *combined* = "
    "(LeRF − MoRF) / 2, higher is better. ROAD favours smooth, blob-like maps: a blob removed is hard to fill in, "
    "a sharp map's scattered pixels are filled in from their neighbours. **Deletion** (lower is better) and "
    "**insertion** (higher is better): the area under the probability as the map's pixels, most relevant first, "
    "are blurred away or put back into a blurred photo. **ARCC** (pytorch-grad-cam's; higher is better) combines "
    "ROAD combined, **coherency** (the map recomputed on the photo times the map agrees with it) and "
    "**complexity** (the map's mean value; a sparse map is lower). "
    "± is the half-width of a 95 % interval over the photos. "
    "The inspector says, for each photo, how much its answer drops when the map's pixels are blurred."
)
SHOWN = ["model", "method", "photos", "road_combined", "road_combined ±", "road_morf", "road_lerf", "deletion"]
SHOWN += ["insertion", "arcc", "arcc ±", "coherency", "complexity", "beats the random map on"]


def faithfulness_table(resources: Resources) -> tuple[pd.DataFrame, list[str]]:
    """(every measured table's methods, one row each; the tables not measured, or measured on other weights)."""
    frames, missing = [], []
    paths = table_paths(resources.settings.eval_dirs) if resources.settings else {}
    for name, table in resources.tables.items():
        report = load_faithfulness(faithfulness_path(paths[name])) if name in paths else None
        if report is None:
            missing.append(f"`{name}`: not measured (`explorer-faithfulness --model {table['model'].iloc[0]}`)")
            continue
        if len(table) and report.get("weights_sha256") != str(table["weights_sha256"].iloc[0]):
            missing.append(f"`{name}`: measured on other weights than its table's; measure again")
            continue
        frames.append(faithfulness_frame(report).assign(model=name))
    found = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SHOWN)
    return found[[c for c in SHOWN if c in found.columns]], missing


def build_faithfulness_section(resources: Resources) -> None:
    """The section (drawn once: the reports change only when explorer-faithfulness runs and the page reloads)."""
    with gr.Accordion("Can you trust the maps? Faithfulness of each CAM method", open=False, elem_id="dash_faith"):
        gr.Markdown(ABOUT)
        found, missing = faithfulness_table(resources)
        gr.Dataframe(found if len(found) else None, label="Per model and method", elem_id="dash_faith_table")
        if missing:
            gr.Markdown("Not shown: " + "; ".join(html.escape(m, quote=False) for m in missing) + ".")
