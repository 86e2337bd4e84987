"""A light table for the dashboard. ``gr.Dataframe`` is an editable spreadsheet: for every new value the page
rebuilds its cells through Svelte, which was a large part of what a filter change cost the browser. These tables
are read-only, so ``LightTable`` sends the cells as text and the page shows a plain ``<table>``: a click on a
column header sorts by it (numbers as numbers; again: the other way), and a click on a row is the table's ``select``
event, with ``evt.index`` = [row, column] of the row as sent (whatever the sort) and ``evt.row_value`` its cells,
as gr.Dataframe's."""

from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from explorer.ui.light_html import sent_once, template_html

MAX_ROWS = 200  # rows a table sends at most (the rest counted in a note)
# Handlebars escapes {{this}}: a clade or species name is shown as text, never read as HTML
TEMPLATE = (
    '<div class="lt-label">{label}</div>'
    "{{{{#if value.rows.length}}}}<div class='lt-wrap' style='max-height: {height}px'><table class='light-table'>"
    "<thead><tr>{{{{#each value.columns}}}}<th data-col='{{{{@index}}}}' title='sort'>{{{{this}}}}</th>"
    "{{{{/each}}}}</tr></thead><tbody>{{{{#each value.rows}}}}<tr data-index='{{{{@index}}}}'>{{{{#each this}}}}"
    "<td data-col='{{{{@index}}}}'>{{{{this}}}}</td>{{{{/each}}}}</tr>{{{{/each}}}}</tbody></table></div>"
    "{{{{else}}}}<div class='lt-empty'>{{{{#if value}}}}No rows.{{{{/if}}}}</div>{{{{/if}}}}"
    "{{{{#if value.note}}}}<div class='lt-note'>{{{{value.note}}}}</div>{{{{/if}}}}"
)
CSS = """
.lt-label {font-size: var(--block-label-text-size); color: var(--block-label-text-color); margin: 4px}
.lt-wrap {overflow: auto; border: 1px solid var(--border-color-primary); border-radius: 6px}
.light-table {border-collapse: collapse; width: 100%; font-size: var(--text-sm); font-family: var(--font-mono)}
.light-table th {position: sticky; top: 0; background: var(--background-fill-secondary); cursor: pointer;
  text-align: left; padding: 6px 8px; white-space: nowrap; user-select: none}
.light-table th[data-sorted="asc"]::after {content: " ▲"}
.light-table th[data-sorted="desc"]::after {content: " ▼"}
.light-table td {padding: 4px 8px; border-top: 1px solid var(--border-color-primary); white-space: nowrap}
.light-table tbody tr {cursor: pointer} .light-table tbody tr:hover {background: var(--background-fill-secondary)}
.light-table tbody tr.lt-picked {background: var(--color-accent-soft)}
.lt-empty {color: var(--body-text-color-subdued); padding: 4px 8px}
.lt-note {color: var(--body-text-color-subdued); font-size: var(--text-sm); padding: 4px 8px}
"""
# Sorting moves the rows in the page only; each row keeps the position it was sent at (data-index), which is what
# a click reports. A new value is sorted again by the same column.
ON_LOAD = """
let sorted = null;
function cell(row, col) {
  const text = row.children[col] ? row.children[col].textContent : '';
  const number = text === '' ? NaN : Number(text);
  return Number.isNaN(number) ? text : number;
}
function sortBy(col, direction) {
  const body = element.querySelector('.light-table tbody');
  const head = element.querySelectorAll('.light-table th');
  if (!body) return;
  const rows = Array.from(body.children);
  rows.sort((a, b) => {
    const x = cell(a, col), y = cell(b, col);
    const order = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
    return direction === 'asc' ? order : -order;
  });
  rows.forEach(row => body.appendChild(row));
  head.forEach(th => th.removeAttribute('data-sorted'));
  if (head[col]) head[col].setAttribute('data-sorted', direction);
  sorted = {col, direction};
}
element.addEventListener('click', event => {
  const th = event.target.closest('.light-table th');
  if (th) {
    const col = Number(th.dataset.col);
    sortBy(col, sorted && sorted.col === col && sorted.direction === 'desc' ? 'asc' : 'desc');
    return;
  }
  const row = event.target.closest('.light-table tbody tr');
  if (!row) return;
  element.querySelectorAll('tr.lt-picked').forEach(r => r.classList.remove('lt-picked'));
  row.classList.add('lt-picked');
  const td = event.target.closest('td');
  const col = td ? Number(td.dataset.col) : 0;
  const cells = Array.from(row.children).map(c => c.textContent);
  trigger('select', {index: [Number(row.dataset.index), col], value: cells[col], row_value: cells});
});
watch('value', () => requestAnimationFrame(() => {
  element.querySelectorAll('tr.lt-picked').forEach(r => r.classList.remove('lt-picked'));
  if (sorted) sortBy(sorted.col, sorted.direction);
}));
"""


def table_cells(frame: pd.DataFrame | None, max_rows: int = MAX_ROWS) -> dict | None:
    """The frame as the page shows it: column names and each row's cells as text (a missing value: empty), and
    ``frame.attrs["note"]``, a line under the table (e.g. that only some rows are listed). At most ``max_rows``
    rows (a table of a thousand rows cost the page ~0.5 s per redraw): the first ones, and a note that says so."""
    if frame is None:
        return None
    note = str(frame.attrs.get("note", ""))
    if len(frame) > max_rows:
        note = note or f"The first {max_rows:,} of {len(frame):,} rows; narrow the filters to list the others."
        frame = frame.iloc[:max_rows]
    shown = frame.astype(object).where(frame.notna(), "")
    rows = [[str(v) for v in row] for row in shown.to_numpy()]
    return {"columns": [str(c) for c in frame.columns], "rows": rows, "note": note}


def best_and_worst(frame: pd.DataFrame, what: str, limit: int = MAX_ROWS) -> pd.DataFrame:
    """A table sorted best first, cut to its ``limit // 2`` first and last rows when longer, with a note naming
    ``what`` was left out between them (the rows keep their positions in the table as cut)."""
    if len(frame) <= limit:
        return frame
    half = limit // 2
    shown = pd.concat([frame.iloc[:half], frame.iloc[-half:]]).reset_index(drop=True)
    shown.attrs["note"] = (
        f"The {half:,} best and the {half:,} worst of {len(frame):,} {what}; the {len(frame) - 2 * half:,} between "
        "them are not listed (narrow the filters to list them). A header sorts the rows listed."
    )
    return shown


class LightTable(gr.HTML):
    """A read-only table of a DataFrame, sortable by clicking its headers, with a ``select`` event per row."""

    is_template = True  # gr.HTML's front end
    remembers_postprocess = True  # see light_html.sent_once

    def __init__(self, *, label: str = "", elem_id: str | None = None, max_height: int = 300, **kwargs):
        template = TEMPLATE.format(label=html.escape(label), height=int(max_height))
        super().__init__(value=None, elem_id=elem_id, **template_html(template, CSS, ON_LOAD, **kwargs))

    def postprocess(self, value):
        return sent_once(self, value, table_cells)
