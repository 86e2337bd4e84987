"""Only outputs that changed are sent: the dashboard remembers, per session, a fingerprint of what it last sent to
each output (a gr.State), and answers gr.skip() for an output whose new value is the same. A filter change that
leaves the comparison, the per-rank heads or a section's text as they were then costs neither their
postprocessing on the server nor their update in the browser. The light components (FastPlot, LightTable,
ThumbGallery) are fingerprinted in the form they send (their JSON, their cells as text), made once: they remember
it for Gradio's own postprocess of the same value (light_html.sent_once).

Every handler that writes a remembered output must go through ``only_changed`` (the dashboard's refresh and its
section handlers do), so that the fingerprint always matches what the page shows. Outputs written elsewhere too
(the geo drill-down's gallery, the map drawn when its section opens) are not remembered: they are always sent.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import gradio as gr
import pandas as pd


def fingerprint(value) -> str | None:
    """A digest of the value's pickled bytes (equal bytes: equal content; a DataFrame by its columns, types and
    cells, as two equal frames can pickle differently); None when it cannot be pickled."""
    if isinstance(value, pd.DataFrame):
        cells = pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes() if len(value) else b""
        value = ("DataFrame", list(value.columns), [str(t) for t in value.dtypes], cells)
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 (an unpicklable value is simply always sent)
        return None
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def is_update(value) -> bool:
    """An update of a component's properties (gr.update(...), or a component instance), not a value."""
    return isinstance(value, gr.components.Component) or (isinstance(value, dict) and value.get("__type__") == "update")


@dataclass(frozen=True)
class Sent:
    """What one page shows, as the server remembers it (a gr.State): each remembered output's fingerprint by its
    name (``marks``), and the note each confidence slider shows last. Never mutated: a handler sends a new one."""

    marks: Mapping[str, str | None] = field(default_factory=dict)
    min_note: str = ""
    max_note: str = ""


def only_changed(shown: dict, remembered: dict, sent: Sent, state: gr.State) -> dict:
    """``shown`` ({component: value}) with gr.skip() for each remembered output (``remembered``: {component:
    name}) whose value is the one last sent, and ``state`` set to what the page then shows (``sent`` updated)."""
    marks = dict(sent.marks)
    out = {}
    for component, value in shown.items():
        name = remembered.get(component)
        if name is None or is_update(value):
            out[component] = value
            continue
        # the light components are fingerprinted in the form they send, which they remember for Gradio's own pass
        mark = fingerprint(
            component.postprocess(value) if getattr(component, "remembers_postprocess", False) else value
        )
        if mark is not None and marks.get(name) == mark:
            out[component] = gr.skip()
        else:
            out[component] = value
            marks[name] = mark
    out[state] = replace(sent, marks=marks)
    return out


def slider_update(value: float, note: str, last_note: str):
    """The update of a range slider after the handler checked the user's value: the value kept and why when it had
    to be moved (``note``), an update clearing the note it showed last (``last_note``), else gr.skip() (the slider
    already shows what the user set)."""
    if note or last_note:
        return gr.update(value=value, info=note)  # "" clears it (gr.update drops a None)
    return gr.skip()
