"""The dashboard's light components (explorer/ui/fast_plot.py, light_table.py, thumb_gallery.py): what they send,
and in a real Chromium that they draw it, escape names, sort, report clicks, and redraw a chart in place."""

from __future__ import annotations

import json

import gradio as gr
import numpy as np
import pandas as pd
import pytest
from conftest import CHROMIUM, FLAGS
from PIL import Image

EVIL = "<img src=x onerror=window.__pwned=1>"


def test_table_cells_are_text_with_missing_values_empty():
    from explorer.ui.light_table import table_cells

    frame = pd.DataFrame({"clade": ["Paridae", None], "photos": [12, 9], "accuracy": [0.5, np.nan]})
    assert table_cells(frame) == {
        "columns": ["clade", "photos", "accuracy"],
        "rows": [["Paridae", "12", "0.5"], ["", "9", ""]],
        "note": "",
    }
    assert table_cells(None) is None


def test_a_long_class_table_lists_the_worst_and_says_how_many_more():
    """The per-class table of 7 classes capped at 3: the first 3 rows as sorted (worst F1 first), and a note under
    the table with the count; at or under the cap, the table as it is, without a note."""
    from explorer.ui.class_report_section import listed
    from explorer.ui.light_table import table_cells

    scores = pd.DataFrame({"class": list("abcdefg"), "f1": [0.0, 0.1, 0.2, 0.5, 0.6, 0.9, 1.0]})
    shown = table_cells(listed(scores, "species", limit=3))
    assert shown["rows"] == [["a", "0.0"], ["b", "0.1"], ["c", "0.2"]]
    assert shown["note"].startswith("The 3 worst of 7 species classes in view")
    assert table_cells(listed(scores, "species", limit=7))["note"] == "" and "note" not in scores.attrs


def test_gallery_sends_addresses_and_captions_only():
    from explorer.ui.thumb_gallery import ThumbGallery

    with gr.Blocks():
        gallery = ThumbGallery(label="x")
    sent = gallery.postprocess([("/tmp/a b/c.jpg", "Parus major → Poecile"), ("/tmp/d.jpg", 3)])
    assert sent == [
        {"src": "gradio_api/file=/tmp/a%20b/c.jpg", "caption": "Parus major → Poecile"},
        {"src": "gradio_api/file=/tmp/d.jpg", "caption": "3"},
    ]
    assert gallery.postprocess(None) == []


def test_each_light_component_converts_a_value_once_for_the_fingerprint_and_the_send():
    """The dashboard converts a value to fingerprint it (explorer.ui.changed); Gradio's postprocess of the same object
    then gets the remembered form, and another object is converted anew."""
    from explorer.ui import light_table
    from explorer.ui.light_table import LightTable

    with gr.Blocks():
        table = LightTable(label="t")
    calls = []
    original = light_table.table_cells
    light_table.table_cells = lambda frame: calls.append(1) or original(frame)
    try:
        frame = pd.DataFrame({"clade": ["Paridae"], "photos": [12]})
        first, again = table.postprocess(frame), table.postprocess(frame)
        other = table.postprocess(pd.DataFrame({"clade": ["Laridae"], "photos": [3]}))
    finally:
        light_table.table_cells = original
    assert first is again and first == {"columns": ["clade", "photos"], "rows": [["Paridae", "12"]], "note": ""}
    assert other["rows"] == [["Laridae", "3"]] and len(calls) == 2  # the same frame converted once


def test_figure_json_passes_dicts_and_figures():
    import plotly.graph_objects as go

    from explorer.ui.fast_plot import figure_json

    assert figure_json(None) is None
    assert json.loads(figure_json({"data": [{"type": "bar", "y": [1, 2]}]})) == {"data": [{"type": "bar", "y": [1, 2]}]}
    assert json.loads(figure_json(go.Figure({"data": [{"type": "bar", "y": [3]}]})))["data"][0]["y"] == [3]


LONG_TITLE = "Where the top-1 prediction leaves the truth, by taxonomic rank"  # 62 characters


def _light_demo():
    from explorer.photos.thumbnails import _written
    from explorer.ui.fast_plot import FastPlot
    from explorer.ui.light_table import LightTable
    from explorer.ui.thumb_gallery import ThumbGallery

    tile = _written("test-light-grey", lambda: Image.new("RGB", (8, 8), (90, 90, 90)))
    frame = pd.DataFrame({"clade": [EVIL, "Paridae", "Corvidae"], "photos": [9, 10, 100]})
    with gr.Blocks() as demo:
        step = gr.Number(0, elem_id="step")
        plot = FastPlot(label="bars", elem_id="plot")
        table = LightTable(label="clades", elem_id="table")
        gallery = ThumbGallery(label="photos", elem_id="gallery")
        picked = gr.Textbox(elem_id="picked")

        def draw(n):
            layout = {"height": 300, "title": {"text": LONG_TITLE}, "margin": {"t": 50}}
            figure = {"data": [{"type": "bar", "x": ["a", "b"], "y": [1, 1 + n]}], "layout": layout}
            return figure, frame, [(tile, EVIL), (tile, "Parus major")]

        step.change(draw, step, [plot, table, gallery])
        demo.load(draw, step, [plot, table, gallery])

        def on_row(evt: gr.SelectData):
            return json.dumps([evt.index, evt.row_value])

        def on_tile(evt: gr.SelectData):
            return json.dumps([evt.index, evt.value])

        table.select(on_row, None, picked)
        gallery.select(on_tile, None, picked)
    return demo


@pytest.mark.browser
def test_light_components_in_chromium():
    from playwright.sync_api import sync_playwright

    demo = _light_demo()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 900, "height": 1400})
            requests = []
            page.on("request", lambda r: requests.append(r.url) if "/queue/join" in r.url else None)
            page.goto(url)
            page.locator("#plot .js-plotly-plot").wait_for(timeout=30_000)
            page.locator("#table tbody tr").nth(2).wait_for(timeout=30_000)
            # names are text, never HTML: nothing ran, and the name reads as typed
            assert page.evaluate("() => window.__pwned === undefined")
            assert page.locator("#table tbody tr").first.inner_text().split("\t")[0] == EVIL
            assert page.locator("#gallery .caption-label").first.inner_text() == EVIL
            # sorting by photos: numbers as numbers (100 > 10 > 9), then the other way
            page.locator("#table th", has_text="photos").click()
            assert page.locator("#table tbody td[data-col='1']").all_inner_texts() == ["100", "10", "9"]
            page.locator("#table th", has_text="photos").click()
            assert page.locator("#table tbody td[data-col='1']").all_inner_texts() == ["9", "10", "100"]
            # a click on a sorted row names the row as sent: Corvidae was sent third
            page.locator("#table tbody tr", has_text="Corvidae").click()
            page.wait_for_function("document.querySelector('#picked textarea').value.includes('Corvidae')")
            index, row = json.loads(page.locator("#picked textarea").input_value())
            assert index == [2, 0] and row == ["Corvidae", "100"]
            page.locator("#gallery .thumbnail-item").nth(1).click()
            page.wait_for_function("document.querySelector('#picked textarea').value.includes('Parus')")
            assert json.loads(page.locator("#picked textarea").input_value()) == [1, "Parus major"]
            # a new figure is drawn into the same chart (Plotly.react), not a new one
            page.evaluate("() => { document.querySelector('#plot .js-plotly-plot').__mark = 1; }")
            before = len(requests)
            page.locator("#step input").fill("5")
            page.locator("#step input").press("Enter")
            page.wait_for_function(
                "() => { const gd = document.querySelector('#plot .js-plotly-plot');"
                " return gd && gd.data && gd.data[0].y[1] === 6; }",
                timeout=30_000,
            )
            assert page.evaluate("() => document.querySelector('#plot .js-plotly-plot').__mark") == 1
            assert len(requests) - before == 1  # one change, one request
            # on a phone the chart is drawn again with its legend under it, not over the plot
            wide = page.evaluate("() => document.querySelector('#plot .js-plotly-plot').layout")
            assert wide.get("legend") is None and wide["title"]["text"] == LONG_TITLE and wide["margin"]["t"] == 50
            page.set_viewport_size({"width": 400, "height": 1400})
            page.wait_for_function(
                "() => { const gd = document.querySelector('#plot .js-plotly-plot');"
                " return gd.layout.legend && gd.layout.legend.orientation === 'h'; }",
                timeout=10_000,
            )
            # and its long title on lines that fit, each word whole, with room made above the plot for them
            narrow = page.evaluate("() => document.querySelector('#plot .js-plotly-plot').layout")
            width = page.evaluate("() => document.querySelector('#plot .fast-plot').clientWidth")
            lines = narrow["title"]["text"].split("<br>")
            assert len(lines) >= 2 and " ".join(lines) == LONG_TITLE and max(map(len, lines)) <= max(16, width // 9)
            assert narrow["margin"]["t"] == 50 + 22 * (len(lines) - 1) and narrow["height"] == 300 + 22 * (
                len(lines) - 1
            )
            assert narrow["legend"]["yref"] == "container"  # at the figure's foot, below the axis title
            assert len(requests) - before == 1  # redrawn in the page, no request
            browser.close()
    finally:
        demo.close()


def test_a_long_table_sends_its_first_rows_or_its_best_and_worst_with_a_note():
    from explorer.ui.light_table import best_and_worst, table_cells

    frame = pd.DataFrame({"clade": [f"c{i}" for i in range(9)], "accuracy": [0.9 - 0.1 * i for i in range(9)]})
    first = table_cells(frame, max_rows=4)
    assert [r[0] for r in first["rows"]] == ["c0", "c1", "c2", "c3"]
    assert first["note"] == "The first 4 of 9 rows; narrow the filters to list the others."
    ends = best_and_worst(frame, "family clades", limit=4)
    assert ends["clade"].tolist() == ["c0", "c1", "c7", "c8"]
    assert ends.attrs["note"].startswith("The 2 best and the 2 worst of 9 family clades; the 5 between them")
    assert table_cells(ends, max_rows=4)["note"] == ends.attrs["note"]  # its own note kept
    assert best_and_worst(frame, "x", limit=9) is frame and table_cells(frame, max_rows=9)["note"] == ""
