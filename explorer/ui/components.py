"""Components and settings shared by the tabs: photo and file inputs that hand over the upload's path, the
model queue, the page's CSS."""

from __future__ import annotations

import logging

import gradio as gr

from explorer.diagnose.frames import ROW
from explorer.services.inspection import inspect_error, inspect_row
from explorer.ui.fast_plot import BLOCK_CSS as FAST_PLOT_CSS

# Every event that runs the classifier shares the model queue. The models themselves run one call (or one batch) at
# a time per model worker (services.workers: --model-workers N copies, cores / N torch threads each); up to
# --max-batch identifications of one model are gathered into one forward pass (services.batching), so the queue lets
# workers x max-batch events in at once (set at launch by `model_queue_limit`): the photos are read while the model
# runs, and the calls that arrive during a batch make the next. Other events (the dashboard, range maps) have their
# own slot each (Gradio's default_concurrency_limit, set to 1 in launch).
MODEL_QUEUE = {"concurrency_id": "model", "concurrency_limit": 1}
log = logging.getLogger(__name__)
QUEUE_MAX_SIZE = 256  # waiting requests beyond this are refused at once ("queue is full"), not left to time out
# Enter in a slider's number box applies the value (Gradio applies it on blur only)
ENTER_APPLIES = (
    "document.addEventListener('keydown', e => { if (e.key === 'Enter' && e.target.matches"
    "(\"input[type='number']\")) e.target.blur(); }, true);"
)
# A photo over the upload cap: Gradio refuses it with a toast in a corner; say it under the photo too, with the limit.
# A HEIC / HEIF file the browser does not label an image (no HEIF codec on the system): the photo box would drop it
# without a word, so it is handed on labelled image/heic (the server reads it). Any other file that is not an image:
# said under the photo.
UPLOAD_LIMIT_NOTE = """(() => { const LIMIT = %d; const HEIF = /\\.(heic|heif)$/i;
  function note(files) {
    const photo = document.getElementById('photo'); if (!photo || !files || !files.length) return;
    const big = Array.from(files).find(f => f.size > LIMIT);
    const odd = Array.from(files).find(f => !(f.type || '').startsWith('image/'));
    let box = document.getElementById('photo_limit_note');
    if (!big && !odd) { if (box) box.remove(); return; }
    if (!box) { box = document.createElement('div'); box.id = 'photo_limit_note'; box.setAttribute('role', 'alert');
      photo.insertAdjacentElement('afterend', box); }
    if (big) { box.textContent = big.name + ' is ' + (big.size / 1048576).toFixed(1) + ' MB: photos up to ' +
      (LIMIT / 1048576).toFixed(0) + ' MB are accepted. Export a smaller copy (e.g. 4000 px on the long side).';
      return; }
    box.textContent = odd.name + (odd.type ? ' is not an image file (' + odd.type + ')' :
      ' is not labelled an image by this browser') + ', so the photo box did not take it. Photos: JPEG, PNG, ' +
      'WebP, AVIF, BMP, GIF, TIFF, HEIC/HEIF.';
  }
  function relabelled(files) {  // null when no file needs it
    if (!files || !Array.from(files).some(f => !f.type && HEIF.test(f.name))) return null;
    const dt = new DataTransfer();
    Array.from(files).forEach(f => dt.items.add(!f.type && HEIF.test(f.name) ?
      new File([f], f.name, {type: 'image/heic', lastModified: f.lastModified}) : f));
    return dt;
  }
  document.addEventListener('change', e => {
    if (!(e.target.matches && e.target.matches('#photo input[type=file]'))) return;
    const dt = relabelled(e.target.files);
    if (dt) { e.stopImmediatePropagation(); e.target.files = dt.files;
      e.target.dispatchEvent(new Event('change', {bubbles: true})); return; }
    note(e.target.files); }, true);
  document.addEventListener('drop', e => {
    if (!(e.target.closest && e.target.closest('#photo') && e.dataTransfer)) return;
    const dt = relabelled(e.dataTransfer.files);
    if (dt) { e.stopImmediatePropagation(); e.preventDefault();
      e.target.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true})); return; }
    note(e.dataTransfer.files); }, true);
  document.addEventListener('paste', e => { if (e.clipboardData) note(e.clipboardData.files); }, true);
})();"""

# A click on a point of the map writes its position into a hidden text box, whose input event asks the server for
# the inspector through its change event (gr.Plot has no select event for plotly)
MAP_CLICK = """(() => { function bind() {
  document.querySelectorAll('#dash_map .js-plotly-plot').forEach(gd => {
    if (gd.__pickBound || !gd.on) return; gd.__pickBound = true;
    gd.on('plotly_click', ev => { const pt = ev.points && ev.points[0]; if (!pt) return;
      const box = document.querySelector('#dash_map_pick textarea, #dash_map_pick input'); if (!box) return;
      box.value = pt.customdata + ':' + Date.now(); box.dispatchEvent(new Event('input', {bubbles: true})); });
  }); }
  setInterval(bind, 500); })();"""


# Toasts sit outside the app's container, which Gradio scopes the css= rules to: this rule goes in the head
HEAD_STYLE = "<style>@media (max-width: 700px) { .toast-wrap {top: auto !important; bottom: 12px} }</style>"


def head_html(max_upload_bytes: int) -> str:
    """The page's own scripts (``launch(head=...)``)."""
    scripts = f"<script>{ENTER_APPLIES}\n{UPLOAD_LIMIT_NOTE % int(max_upload_bytes)}\n{MAP_CLICK}</script>"
    return scripts + HEAD_STYLE


FOUR_WIDE = ", ".join(
    f"#{name} .grid-container"
    for name in ("inspector", "map_inspector", "similar_inspector", "similar", "suggestion_examples")
)
CSS = (
    "table.predictions td, table.predictions th {padding: 2px 8px; vertical-align: top}"
    " #photo_limit_note {color: #b91c1c; font-weight: 600; padding: 4px 8px}"
    " #topk dd.confidence {display: none}"  # rounded to whole percents; the name carries the exact figure
    " #cams .caption-label, #inspector .caption-label, #dash_gallery .caption-label, #dash_geo_gallery .caption-label,"
    " #similar .caption-label, #suggestion_examples .caption-label, #similar_inspector .caption-label"
    " {white-space: normal; max-width: 100%; display: -webkit-box; -webkit-line-clamp: 2; -webkit-box-orient: vertical}"
    " #lineages, #inspector_text {max-width: 100%; overflow-x: auto !important}"  # Gradio sets overflow inline
    # narrow screens: the photo, then the results, then the rest of the form; toasts at the bottom
    " @media (max-width: 700px) { #identify_row, #inspector_row {flex-direction: column}"
    " #form_col, #results_col {display: contents}"
    " #form_col > * {order: 3} #form_col > #photo, #form_col > #photo_limit_note, #form_col > #more_photos,"
    " #form_col > #examples {order: 1}"
    " #results_col > * {order: 2} }"
    # four-wide galleries (their 100 px tiles overflowed a 400 px screen): two per row, room for a two-line label
    f" @media (max-width: 500px) {{ {FOUR_WIDE} {{--grid-cols: 2 !important; padding-top: 2.75rem !important}}"
    " #inspector, #inspector .grid-wrap, #map_inspector, #map_inspector .grid-wrap {height: auto !important} }"
    + FAST_PLOT_CSS
)


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


class UploadPaths(gr.File):
    """gr.File that hands over the uploaded files' paths (a list), as UploadPath does one; build it with
    ``file_count="multiple"`` (an __init__ of our own would hide gr.File's arguments from the page's config)."""

    is_template = True  # use gr.File's front end

    def preprocess(self, payload):
        files = getattr(payload, "root", None)
        if files is None:
            return [] if payload is None else super().preprocess(payload)
        return [str(f.path) for f in files if getattr(f, "path", None)]


class LenientSlider(gr.Slider):
    """gr.Slider that hands over a typed value outside its range instead of failing the whole event (which put
    red error badges over every output); the handler clamps it and says so beside the slider."""

    is_template = True  # use gr.Slider's front end

    def preprocess(self, payload):
        try:
            return float(payload)
        except (TypeError, ValueError):
            return self.minimum


def model_queue_limit(demo: gr.Blocks, workers: int) -> int:
    """Let ``workers`` model calls run at once (every event on the model queue); returns how many events use it."""
    events = [fn for fn in demo.fns.values() if fn.concurrency_id == MODEL_QUEUE["concurrency_id"]]
    for fn in events:
        fn.concurrency_limit = workers
    return len(events)


def clamp(value, low: float, high: float, whole: bool = False) -> tuple[float, str]:
    """(value within [low, high], a message when it had to be moved)."""
    number = round(float(value)) if whole else float(value)
    kept = min(max(number, low), high)
    if kept == number and (not whole or number == float(value)):
        return kept, ""
    shown = f"{low:g}..{high:g}" + (" (whole numbers)" if whole else "")
    return kept, f"{float(value):g} is outside {shown}: using {kept:g}."


def refused(message: str, title: str = "Error") -> gr.Error:
    """A user's mistake: said on the page (or to the API's caller) and logged in one line, not as a traceback (the
    server log's tracebacks are for the server's own failures)."""
    log.info("refused: %s", message)
    return gr.Error(message, title=title, print_exception=False)


def make_inspector(resources, place_changed: bool = False):
    """The select handler of a gallery or table of evaluation rows: the clicked row in the inspector (its
    lineages and Grad-CAMs, computed now); ``place_changed``: rows the geo-prior changed (see inspect_error). The
    rows are a list of row dicts, or a dashboard's references to them (see row_refs)."""

    def on_select(rows, evt: gr.SelectData):
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        refs = rows.get("rows", []) if isinstance(rows, dict) else rows
        if not refs or index is None or not 0 <= int(index) < len(refs):
            return "", []
        try:
            if isinstance(rows, dict):
                found = inspect_row(resources, rows["table"], refs[index], rows["prior"], place_changed)
            else:
                found = inspect_error(resources, refs[index], place_changed)
        except (KeyError, ValueError) as err:
            raise refused(str(err).strip("'\"")) from err
        return found.html, found.images

    return on_select


def row_refs(name: str, rows, prior: str | None = None) -> dict:
    """What a dashboard gallery or table keeps of its rows: the table, the geo-prior whose answers they show, and
    each row's position in the table (``ROW``), so that a click fetches its one row (Resources.row) instead of
    every filter change copying hundreds of whole rows into the session."""
    return {"table": name, "prior": prior, "rows": [] if rows is None or ROW not in rows else rows[ROW].tolist()}
