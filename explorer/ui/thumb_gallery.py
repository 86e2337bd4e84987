"""A light gallery of thumbnails for the dashboard. ``gr.Gallery`` copies every file it is sent into Gradio's cache
(resolving and hashing each one, ~0.1 s for two dozen thumbnails per filter change) and builds a heavy component
for each image; these thumbnails are already small JPEG files written once (explorer.photos.thumbnails), so this gallery
sends their addresses and captions only, and the page shows them as plain ``<img loading="lazy">`` tiles. A click
on a tile is the gallery's ``select`` event, with the tile's position as ``evt.index`` (as gr.Gallery's)."""

from __future__ import annotations

import html
from urllib.parse import quote

import gradio as gr

from explorer.photos.thumbnails import FOLDER
from explorer.ui.light_html import sent_once, template_html

gr.set_static_paths([FOLDER])  # the thumbnails' own folder, and nothing else of the temporary folder

# Handlebars escapes {{caption}}: a species name is shown as text, never read as HTML
TEMPLATE = (
    '<div class="thumb-label">{label}</div><div class="thumb-grid">'
    "{{{{#each value}}}}<button class='thumbnail-item' data-index='{{{{@index}}}}' title='{{{{caption}}}}'>"
    "<img src='{{{{src}}}}' alt='{{{{caption}}}}' loading='lazy' decoding='async'>"
    "<span class='caption-label'>{{{{caption}}}}</span></button>{{{{/each}}}}</div>"
)
CSS = """
.thumb-label {font-size: var(--block-label-text-size); color: var(--block-label-text-color); margin: 4px}
.thumb-grid {display: grid; grid-template-columns: repeat(auto-fill, minmax(110px, 1fr)); gap: 6px;
  max-height: 260px; overflow-y: auto; padding: 4px}
.thumbnail-item {display: flex; flex-direction: column; align-items: center; border: 1px solid
  var(--border-color-primary); border-radius: 6px; padding: 2px; background: var(--background-fill-secondary);
  cursor: pointer; min-width: 0}
.thumbnail-item:hover, .thumbnail-item:focus {border-color: var(--color-accent)}
.thumbnail-item img {width: 100%; height: 96px; object-fit: contain}
.caption-label {font-size: 12px; line-height: 1.2; overflow-wrap: anywhere; display: -webkit-box;
  -webkit-line-clamp: 2; -webkit-box-orient: vertical; overflow: hidden}
"""
ON_LOAD = """
element.addEventListener('click', event => {
  const tile = event.target.closest('.thumbnail-item');
  if (!tile) return;
  trigger('select', {index: Number(tile.dataset.index), value: tile.title});
});
"""


def thumb_url(file: str) -> str:
    """The address the page loads a thumbnail file from (relative, so the app can sit behind a path prefix)."""
    return "gradio_api/file=" + quote(str(file))


class ThumbGallery(gr.HTML):
    """Thumbnails with captions: the value is a list of (thumbnail file, caption), as photos.thumbnails gives."""

    is_template = True  # gr.HTML's front end
    remembers_postprocess = True  # see light_html.sent_once

    def __init__(self, *, label: str = "", elem_id: str | None = None, **kwargs):
        template = TEMPLATE.format(label=html.escape(label))
        super().__init__(value=[], elem_id=elem_id, **template_html(template, CSS, ON_LOAD, **kwargs))

    def postprocess(self, value):
        return sent_once(self, value, lambda items: [{"src": thumb_url(f), "caption": str(c)} for f, c in items or []])
