"""The Models tab: every loaded model with its source, preprocessing, CAM layer and geo-priors, the ones that could
not load and why, and a button that looks in the card and table folders again (no restart): the menus of the other
tabs then list what it found."""

from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr

from explorer.services.overview import models_markdown
from explorer.services.reloading import reload_resources
from explorer.services.resources import Resources
from explorer.ui.dashboard_state import NO_COMPARISON
from explorer.ui.diagnose_tab import DashboardView
from explorer.ui.identify_menus import model_choices, prior_choices
from explorer.ui.identify_tab import IdentifyView

RELOAD_LABEL = "Look for new or changed models and tables"


@dataclass
class ModelsView:
    reload: gr.Button
    note: gr.Markdown
    overview: gr.Markdown


def build_models_tab(resources: Resources) -> ModelsView:
    note = gr.Markdown(
        "New or changed cards in the card folders and tables in the table folders are loaded without a restart.",
        elem_id="reload_note",
    )
    reload = gr.Button(RELOAD_LABEL, elem_id="reload", size="md")
    overview = gr.Markdown(models_markdown(resources), elem_id="models_overview")
    return ModelsView(reload, note, overview)


def wire_reload(
    resources: Resources, view: ModelsView, identify: IdentifyView, dashboard: DashboardView | None
) -> None:
    """The reload button: the folders read again, this tab redrawn, and the model, prior and table menus given
    their new choices (a chosen entry that is gone falls back to the default)."""
    menus = [identify.model, identify.prior]
    if dashboard is not None:
        menus += [dashboard.inputs.controls["table"], dashboard.inputs.controls["other"]]

    def on_reload(*chosen):
        try:
            found = reload_resources(resources)
        except (OSError, ValueError) as err:  # nothing loadable: the app keeps serving what it had
            return {view.note: f"**Could not look again:** {html.escape(str(err))}"}
        shown = {view.note: found.markdown(), view.overview: models_markdown(resources)}
        return {**shown, **dict(zip(menus, _menus(resources, chosen)))}

    view.reload.click(on_reload, menus, [view.note, view.overview, *menus], api_visibility="private")


def _menus(resources: Resources, chosen: tuple) -> list:
    """The menus' updates: new choices, and the value kept where it is still offered."""
    models, default = model_choices(resources)
    priors = prior_choices(resources)
    tables = list(resources.tables)
    wanted = [
        (models, default),
        (priors, ""),
        (tables, resources.default_model if resources.default_model in tables else (tables or [None])[0]),
        ([NO_COMPARISON, *tables], NO_COMPARISON),
    ]
    updates = []
    for (choices, fallback), value in zip(wanted, chosen):
        offered = {c[1] if isinstance(c, tuple) else c for c in choices}
        updates.append(gr.update(choices=choices, value=value if value in offered else fallback))
    return updates
