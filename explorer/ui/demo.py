"""The whole app: the tabs, the API, and the server (queue, upload cap, served paths, temporary-file sweeper)."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

import gradio as gr
from pydantic import BaseModel

from explorer.services.resources import Resources
from explorer.ui.api import build_api
from explorer.ui.changed import is_update
from explorer.ui.components import CSS, QUEUE_MAX_SIZE, head_html, model_queue_limit
from explorer.ui.dashboard_state import NEW_SESSION
from explorer.ui.diagnose_tab import DashboardView, build_diagnose_tab
from explorer.ui.identify_tab import build_identify_tab
from explorer.ui.models_tab import build_models_tab, wire_reload
from explorer.ui.temp_files import start_temp_sweeper


def build_demo(resources: Resources, warmed: threading.Event | None = None) -> gr.Blocks:
    """The Identify & explain tab, the Diagnose tab, the Models tab, and the API endpoints; ``warmed`` is set once
    the other tables' dashboards are drawn in the background (see warm_dashboard)."""
    with gr.Blocks(title="Species ID explorer") as demo:
        gr.Markdown(
            "# Species ID explorer\nWhat does a species-identification model see, and where does it go "
            "wrong? Drop, paste or pick a photo."
        )
        with gr.Tabs():
            with gr.Tab("Identify & explain", id="identify"):
                identify = build_identify_tab(resources)
            with gr.Tab("Diagnose", id="diagnose"):
                dashboard = build_diagnose_tab(resources)
            with gr.Tab("Models", id="models"):
                models = build_models_tab(resources)
        wire_reload(resources, models, identify, dashboard)
        build_api(resources)
        if dashboard is not None and not draw_initial_dashboard(dashboard):  # else drawn when the page opens
            inputs = dashboard.inputs
            demo.load(
                inputs.handler(dashboard.refresh), inputs.components, list(dashboard.outputs), api_visibility="private"
            )
    # after the layout is closed: a handler that made a component (an update) while it is open would add it to the page
    if dashboard is not None:
        opening = dashboard.inputs.opening().table
        warm_dashboard(dashboard, [t for t in resources.tables if t != opening], warmed)
    elif warmed is not None:
        warmed.set()  # nothing to warm
    return demo


def draw_initial_dashboard(dashboard: DashboardView) -> bool:
    """The opening dashboard (the default table, the default filters) drawn once now and made the components' own
    values, so every page opens with it already there: no request, no wait. False if it could not be drawn."""
    try:
        shown = dashboard.refresh(dashboard.inputs.opening(), NEW_SESSION)
    except Exception:  # the page then asks for it when it opens, and shows any error there
        logging.getLogger(__name__).exception("drawing the opening dashboard failed")
        return False
    for component, value in shown.items():
        if is_update(value):
            continue  # an update of a control (a slider's note, the clade menu), or none: the controls keep theirs
        if isinstance(component, gr.State):
            component.value = value  # copied for each session
            continue
        initial = component.postprocess(value)  # what gradio does with a value given at construction
        component.value = initial.model_dump() if isinstance(initial, BaseModel) else initial
    return True


WARMED = "dashboard warmed:"  # the log line that says so (benchmarks wait for it)


def warm_dashboard(
    dashboard: DashboardView, tables: list[str], done: threading.Event | None = None
) -> threading.Thread:
    """Draw the opening dashboard of each of ``tables`` once in a background thread at start-up, so that switching
    to one finds its thumbnails written and its queries warm rather than paying for them; ``done`` is set when
    the thread ends (the thread is returned too, to join)."""
    opening = dashboard.inputs.opening()

    def work():
        start = time.perf_counter()
        try:
            settle_matplotlib()
            for name in tables:
                try:
                    dashboard.refresh(replace(opening, table=name), NEW_SESSION)
                except Exception:  # a warm-up must never take the app down; the real request reports any error
                    logging.getLogger(__name__).exception("warming the dashboard of %s failed", name)
            logging.getLogger(__name__).info(
                "%s %d more tables in %.1f s (the opening one is drawn at start-up)",
                WARMED,
                len(tables),
                time.perf_counter() - start,
            )
        finally:
            if done is not None:
                done.set()

    thread = threading.Thread(target=work, name="warm-dashboard", daemon=True)
    thread.start()
    return thread


def settle_matplotlib() -> None:
    """Name matplotlib's backend now. Gradio reads it around every event handler (utils.MatplotlibBackendMananger),
    and while it is still the "auto" sentinel that read imports pyplot: 0.3 s on the first click after start-up."""
    try:
        import matplotlib
    except ImportError:  # gradio then skips it too
        return
    matplotlib.use("agg")


def stage_examples(resources: Resources, folder: Path) -> None:
    """Copy example photos into an app-owned folder, so only that folder (not the source) is served."""
    if not resources.examples:
        return
    folder.mkdir(parents=True, exist_ok=True)
    staged = []
    for path in resources.examples:
        target = folder / path.name
        if not target.exists() or target.stat().st_size != path.stat().st_size:
            shutil.copyfile(path, target)
        staged.append(target)
    resources.examples = staged


def launch(demo: gr.Blocks, resources: Resources) -> None:
    """Start the server on the settings' host and port with the upload cap; only staged examples are served."""
    settings = resources.settings
    allowed = sorted({str(p.parent) for p in resources.examples})
    copies = resources.tier.replicas if resources.tier is not None else settings.model_workers
    model_queue_limit(demo, copies * settings.max_batch)  # see components.MODEL_QUEUE
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_MAX_SIZE)
    start_temp_sweeper(demo, settings.temp_ttl_s)
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        share=settings.share,
        max_file_size=settings.max_upload_bytes,
        allowed_paths=allowed,
        css=CSS,
        head=head_html(settings.max_upload_bytes),
    )
