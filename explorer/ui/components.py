"""Components and settings shared by the tabs: photo and file inputs that hand over the upload's path, the
model queue, the page's CSS."""

from __future__ import annotations

import gradio as gr

# Every event that runs the classifier shares one queue slot: torch already uses every core for one photo, so
# two model calls at once would only slow each other down (and multiply the memory). Other events (the
# dashboard, range maps) have their own slot each (Gradio's default_concurrency_limit, set to 1 in launch).
MODEL_QUEUE = {"concurrency_id": "model", "concurrency_limit": 1}
QUEUE_MAX_SIZE = 256  # waiting requests beyond this are refused at once ("queue is full"), not left to time out
# Enter in a slider's number box applies the value (Gradio applies it on blur only)
HEAD = (
    "<script>document.addEventListener('keydown', e => { if (e.key === 'Enter' && e.target.matches"
    "(\"input[type='number']\")) e.target.blur(); }, true);</script>"
)
CSS = "table.predictions td, table.predictions th {padding: 2px 8px; vertical-align: top} #lineages {overflow-x: auto}"


class PhotoInput(gr.Image):
    """gr.Image that hands the raw upload path to our own loader, so that a bad file gets our message
    (gr.Image would open it with PIL first and fail with a generic error)."""

    is_template = True  # use gr.Image's front end

    def preprocess(self, payload):
        if payload is None or payload.path is None:
            return super().preprocess(payload)
        return str(payload.path)


class UploadPath(gr.File):
    """gr.File that hands over the uploaded file's path. (gr.File(type="filepath") also creates an empty temporary
    file per call that it never uses or deletes: a leak in a long session.)"""

    is_template = True  # use gr.File's front end

    def preprocess(self, payload):
        if payload is None or getattr(payload, "path", None) is None:
            return super().preprocess(payload)
        return str(payload.path)


class LenientSlider(gr.Slider):
    """gr.Slider that hands over a typed value outside its range instead of failing the whole event (which put
    red error badges over every output); the handler clamps it and says so beside the slider."""

    is_template = True  # use gr.Slider's front end

    def preprocess(self, payload):
        try:
            return float(payload)
        except (TypeError, ValueError):
            return self.minimum


def clamp(value, low: float, high: float, whole: bool = False) -> tuple[float, str]:
    """(value within [low, high], a message when it had to be moved)."""
    number = round(float(value)) if whole else float(value)
    kept = min(max(number, low), high)
    if kept == number and (not whole or number == float(value)):
        return kept, ""
    shown = f"{low:g}..{high:g}" + (" (whole numbers)" if whole else "")
    return kept, f"{float(value):g} is outside {shown}: using {kept:g}."
