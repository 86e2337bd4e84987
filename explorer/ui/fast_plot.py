"""A plotly chart that is updated in place. Gradio's ``gr.Plot`` keys its front end on the figure, so every new
value builds a new plotly chart from scratch (the page's main thread then spends ~0.1-0.3 s per chart laying it out
again). ``FastPlot`` is a ``gr.HTML`` whose template is one fixed ``<div>``: a new figure reaches it as a JSON string
and is drawn with ``Plotly.react``, which diffs it against the chart already there. An unchanged figure is not drawn
again at all.

plotly.js itself is the copy that ships inside the plotly Python package (``package_data/plotly.min.js``), served
by Gradio as a static file and loaded once by the page: no network beyond the app's own server."""

from __future__ import annotations

import html
import json
from pathlib import Path

import gradio as gr
import plotly

from explorer.ui.light_html import sent_once, template_html

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
gr.set_static_paths([PLOTLY_JS])  # this one file, served as it is
# Loaded once, by the first chart the page mounts. (Loading it with the page instead was measured: it made the first
# dashboard slower, as the 4.6 MB are parsed on the main thread just when the page becomes usable.)
PLOTLY_SCRIPT = f'<script src="/gradio_api/file={PLOTLY_JS}"></script>'

# Runs once per chart when the page mounts it (``element``, ``props`` and ``watch`` come from gr.HTML). The chart
# is redrawn when its value changes, if it is on screen or within 300 px of it; one further away (below the fold, in
# a closed accordion, in another tab) is drawn when it comes near, so a filter change draws only what can be seen.
# A chart drawn at one width is resized when its box changes width. Until it is drawn its box keeps a chart's
# height, so that the charts below the fold do not all seem near on the first layout.
ON_LOAD = """
const box = element.querySelector('.fast-plot');
const config = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ['sendDataToCloud']};
const NARROW = 500;
let shown = null, near = false, width = 0, narrow = false;
function draw() {
  const value = props.value;
  if (value === shown) return;
  if (!value) { shown = value; window.Plotly.purge(box); box.style.display = 'none'; return; }
  const figure = JSON.parse(value);
  box.style.display = '';
  box.style.minHeight = ((figure.layout || {}).height || 400) + 'px';  // its place kept while not drawn
  if (!near) return;  // out of sight: drawn when scrolled near
  shown = value;
  const layout = figure.layout || {};
  narrow = box.clientWidth < NARROW;
  if (narrow) {  // a phone: the legend under the chart, not over it, and a long title on two lines or more
    const below = {orientation: 'h', x: 0, xanchor: 'left', yref: 'container', y: 0, yanchor: 'bottom'};
    layout.legend = Object.assign({}, layout.legend, below);
    const title = typeof layout.title === 'string' ? {text: layout.title} : layout.title;
    if (title && title.text) {
      const text = wrapped(title.text, box.clientWidth), more = text.split('<br>').length - 1;
      const top = ((layout.margin || {}).t ?? 80) + 22 * more;  // room for the lines added
      layout.title = Object.assign({}, title, {text});
      layout.margin = Object.assign({}, layout.margin, {t: top});
      if (layout.height) layout.height += 22 * more;
    }
  }
  window.Plotly.react(box, figure.data || [], layout, config);
  width = box.clientWidth;
}
function wrapped(text, pixels) {  // words kept whole, about 9 px a character at plotly's title size
  const most = Math.max(16, Math.floor(pixels / 9)), lines = [];
  for (const part of text.split('<br>')) {
    let line = '';
    for (const word of part.split(' ')) {
      if (line && (line + ' ' + word).length > most) { lines.push(line); line = word; }
      else line = line ? line + ' ' + word : word;
    }
    lines.push(line);
  }
  return lines.join('<br>');
}
function whenLoaded(then) { if (window.Plotly) then(); else setTimeout(() => whenLoaded(then), 50); }
watch('value', () => whenLoaded(draw));
new IntersectionObserver(entries => {
  near = entries[entries.length - 1].isIntersecting;
  whenLoaded(draw);
}, {rootMargin: '300px 0px'}).observe(element);
new ResizeObserver(() => {
  if (!box.clientWidth || box.clientWidth === width || !shown) return;
  width = box.clientWidth;
  if ((width < NARROW) !== narrow) { shown = null; draw(); } else window.Plotly.Plots.resize(box);
}).observe(box);
"""

TEMPLATE = '<div class="fast-plot-label">{label}</div><div class="fast-plot" style="min-height: 360px"></div>'
# gr.HTML's block leaves min_width out: side by side in a row, one under the other on a phone (the page's css=)
BLOCK_CSS = " .fast-plot-block {min-width: min(320px, 100%) !important; flex: 1 1 320px !important}"
CSS = ".fast-plot-label {font-size: var(--block-label-text-size); color: var(--block-label-text-color); margin: 4px}"


def figure_json(figure) -> str | None:
    """The figure as plotly.js reads it (None stays None: nothing is drawn)."""
    if figure is None:
        return None
    if isinstance(figure, str):
        return figure
    if isinstance(figure, dict):
        return json.dumps(figure)
    return figure.to_json(validate=False)


class FastPlot(gr.HTML):
    """A plotly figure (``go.Figure``, a dict, or its JSON) drawn and redrawn in place with ``Plotly.react``."""

    is_template = True  # gr.HTML's front end
    remembers_postprocess = True  # see light_html.sent_once

    def __init__(self, value=None, *, label: str = "", elem_id: str | None = None, min_width: int = 320, **kwargs):
        template = TEMPLATE.format(label=html.escape(label))
        super().__init__(
            value=figure_json(value),
            head=PLOTLY_SCRIPT,
            elem_id=elem_id,
            min_width=min_width,
            elem_classes=["fast-plot-block"],  # see BLOCK_CSS
            **template_html(template, CSS, ON_LOAD, **kwargs),
        )

    def postprocess(self, value):
        return sent_once(self, value, figure_json)
