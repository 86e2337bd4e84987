"""Components and settings shared by the tabs: photo and file inputs that hand over the upload's path, the
model queue, the page's CSS."""

from __future__ import annotations

import gradio as gr

# Every event that runs the classifier shares one queue slot: torch already uses every core for one photo, so
# two model calls at once would only slow each other down (and multiply the memory). Other events (the
# dashboard, range maps) have their own slot each (Gradio's default_concurrency_limit, set to 1 in launch).
MODEL_QUEUE = {"concurrency_id": "model", "concurrency_limit": 1}
QUEUE_MAX_SIZE = 256  # waiting requests beyond this are refused at once ("queue is full"), not left to time out
CSS = "table.predictions td, table.predictions th {padding: 2px 8px; vertical-align: top} #lineages {overflow-x: auto}"

from gradio.events import Dependency

class PhotoInput(gr.Image):
    """gr.Image that hands the raw upload path to our own loader, so that a bad file gets our message
    (gr.Image would open it with PIL first and fail with a generic error)."""

    is_template = True  # use gr.Image's front end

    def preprocess(self, payload):
        if payload is None or payload.path is None:
            return super().preprocess(payload)
        return str(payload.path)
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component


class UploadPath(gr.File):
    """gr.File that hands over the uploaded file's path. (gr.File(type="filepath") also creates an empty temporary
    file per call that it never uses or deletes: a leak in a long session.)"""

    is_template = True  # use gr.File's front end

    def preprocess(self, payload):
        if payload is None or getattr(payload, "path", None) is None:
            return super().preprocess(payload)
        return str(payload.path)
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component