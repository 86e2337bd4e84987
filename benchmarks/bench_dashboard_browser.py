"""The Diagnose dashboard as a person waits for it, in a real Chromium (Debian's, driven by playwright), against the
app launched the README way: from the input event to the last change the page draws.

- first dashboard: from the click on the Diagnose tab to the last DOM change of its first drawing;
- filter change: the "Photos" radio (all / correct / incorrect) clicked in turn, each change timed;
- table switch: the "Evaluation table" dropdown set to the other table, and back.

"The last change drawn" is measured in the page: the clock starts at the click's pointerdown, a MutationObserver notes
the time of every change inside the dashboard's outputs, and the change counts as done once they have been still for
``--quiet-ms`` (the quiet time itself is not counted). Baseline, side by side in this process: the same filter
change's server-side computation alone (``bench_dashboard.regroup`` on the same table), so the ratio says how much
of the wait is not the computation.

    python benchmarks/bench_dashboard_browser.py [--changes 20] [--quiet-ms 400] [--validation-sized 100000:10000]

With --validation-sized, a table of that many photos and species (validation_sized.py) is added with a synthetic map
layout, and the page then switches to it, changes its filter and opens its map, each timed the same way.

Last line: dashboard_filter_p50_s (target <= 0.4; p95 <= 0.8; table switch <= 1 s; first dashboard <= 1 s).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

BIG = "validation_sized"  # the table --validation-sized adds
# Runs in the page: act, then resolve with the ms from the act to the last DOM change of a dashboard output (an
# element inside one whose id starts with "dash_") before ``quiet`` ms of calm. Changes elsewhere (a tooltip layer, a
# toast) do not count: one such change ~1 s after the outputs were drawn would otherwise be taken for drawing.
START = """() => {
  const b = window.__bench = {t0: null, last: null};
  const mine = m => { const e = m.target.nodeType === 1 ? m.target : m.target.parentElement;
    const host = e && e.closest('[id]'); return host && host.id.startsWith('dash_'); };
  b.observer = new MutationObserver(ms => { if (b.t0 !== null && ms.some(mine)) b.last = performance.now(); });
  b.observer.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
  const start = () => { if (b.t0 === null) b.t0 = performance.now(); };
  document.addEventListener('pointerdown', start, {capture: true, once: true});
  document.addEventListener('mousedown', start, {capture: true, once: true});
}"""
# After the action: wait until the outputs have been still for ``quiet`` ms; the ms from the input event to the last
# change drawn.
DONE = """async (quiet) => {
  const b = window.__bench;
  while (b.last === null || performance.now() - b.last < quiet) {
    await new Promise(r => setTimeout(r, 20));
    if (b.t0 !== null && performance.now() - b.t0 > 60000) break;
  }
  b.observer.disconnect();
  return (b.last ?? performance.now()) - b.t0;
}"""


def timed(page, act, quiet: int) -> float:
    """ms from the user's input event (a real click, through playwright) to the last dashboard change drawn."""
    page.evaluate(START)
    act()
    return page.evaluate(DONE, quiet)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def server_side_ms(table_name: str, outcomes: list[str], repeats: int) -> float:
    """The same filter changes computed in this process (no serialising, sending or drawing)."""
    import runpy

    regroup = runpy.run_path(str(Path(__file__).with_name("bench_dashboard.py")))["regroup"]  # the same computation
    from explorer.diagnose.frames import to_frame
    from explorer.diagnose.metrics import Filters, for_dashboard
    from explorer.diagnose.schema import load_table
    from explorer.settings import PROJECT_ROOT

    table = to_frame(for_dashboard(load_table(PROJECT_ROOT / "assets" / "eval" / f"{table_name}.parquet")))
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        regroup(table, Filters(outcome=outcomes[i % len(outcomes)]))
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def wait_warm(log: Path, timeout_s: float = 180) -> None:
    """Until the app has drawn each table's dashboard once at start-up (explorer.ui.demo.warm_dashboard) and built
    its range maps' land grids (Resources.warm_maps), as it has by the time a person opens the page: the figures
    are for a started app, not for its start-up."""
    from explorer.services.resources import MAPS_WARMED
    from explorer.ui.demo import WARMED

    deadline = time.time() + timeout_s
    while not all(line in log.read_text() for line in (WARMED, MAPS_WARMED)) and time.time() < deadline:
        time.sleep(0.5)


def browser_ms(url: str, changes: int, quiet: int, big: str | None = None) -> dict:
    from playwright.sync_api import sync_playwright

    out: dict = {}
    with sync_playwright() as playwright:
        from explorer.ui.launcher import CHROMIUM_FLAGS, CHROMIUM_PATH

        browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(url)
        page.wait_for_selector("#photo")
        out["first"] = timed(page, page.get_by_role("tab", name="Diagnose").click, quiet)
        out["table"] = page.locator("#dash_table input").first.input_value()
        radios = page.locator("#dash_outcome label")
        names = [radios.nth(i).inner_text().strip() for i in range(radios.count())]
        out["filter"] = []
        for i in range(changes):
            out["filter"].append(timed(page, radios.nth((i + 1) % len(names)).click, quiet))
        out["outcomes"] = names
        out["switch"], out["switched"] = [], []
        original = out["table"]
        for target in ("cub100_effnet_head" if original != "cub100_effnet_head" else "inat_bird", original):
            page.locator("#dash_table input").first.click()
            option = page.get_by_role("option", name=target, exact=True)
            out["switch"].append(timed(page, option.click, quiet))
            out["switched"].append(f"-> {page.locator('#dash_table input').first.input_value()}")
        if big:
            out["big"] = big_table_ms(page, big, radios, max(4, changes // 2), quiet)
        browser.close()
    return out


def validation_sized_folder(folder: Path, rows: int, classes: int) -> list[str]:
    """An extra table folder holding a validation-sized table (validation_sized.py) and a synthetic map layout for
    it; the app's flags that add it."""
    import json

    import pandas as pd
    from bench_validation_set import SHIPPED, synthetic_layout
    from validation_sized import validation_sized

    table = validation_sized(pd.read_parquet(SHIPPED), rows, classes)
    tables = folder / "tables"
    tables.mkdir()
    table.to_parquet(tables / f"{BIG}.parquet")
    layout = synthetic_layout(table)["map"]
    sha = str(table["weights_sha256"].iloc[0])
    report = {"model": "inat_bird", "weights_sha256": sha, "sources": {}, "protocol": {}, "ranks": []}
    report["map"] = {k: np.asarray(v).tolist() for k, v in layout.items()}
    (tables / f"{BIG}.representation.json").write_text(json.dumps(report), encoding="utf-8")
    return ["--eval-dir", str(tables)]


def big_table_ms(page, name: str, radios, changes: int, quiet: int) -> dict:
    """Switch to the table ``name``, change its filter ``changes`` times, then open the Representation section (its
    map drawn): each timed from the input event to the last change drawn."""
    page.locator("#dash_table input").first.click()
    found = {"switch": timed(page, page.get_by_role("option", name=name, exact=True).click, quiet)}
    checked = next(i for i in range(radios.count()) if radios.nth(i).locator("input").is_checked())
    found["filter"] = [
        timed(page, radios.nth(i % radios.count()).click, quiet) for i in range(checked + 1, checked + 1 + changes)
    ]
    opener = page.locator("#dash_representation button").first
    found["map"] = timed(page, opener.click, quiet)  # the map computed, sent and its text drawn
    page.locator("#dash_map").scroll_into_view_if_needed()  # the chart itself is drawn once scrolled near
    page.wait_for_selector("#dash_map canvas", timeout=60_000)
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--quiet-ms", type=int, default=400)
    parser.add_argument(
        "--validation-sized",
        metavar="ROWS:CLASSES",
        help="also time a table of ROWS photos over CLASSES species (e.g. 100000:10000; validation_sized.py): "
        "switching to it, its filter changes and opening its map",
    )
    args = parser.parse_args(argv)
    from explorer.ui.launcher import launched_app

    with tempfile.TemporaryDirectory() as folder:
        rows, classes = map(int, args.validation_sized.split(":")) if args.validation_sized else (0, 0)
        flags = validation_sized_folder(Path(folder), rows, classes) if rows else []
        with launched_app(Path(folder) / "app.log", *flags, timeout_s=600) as (url, _process):
            wait_warm(Path(folder) / "app.log", timeout_s=600)
            found = browser_ms(url, args.changes, args.quiet_ms, BIG if rows else None)
    if rows:
        big = found["big"]
        print(
            f"{BIG} ({rows:,} photos, {classes:,} species): switch to it {big['switch'] / 1000:.2f} s; filter change "
            f"p50 {statistics.median(big['filter']) / 1000:.2f} s, p95 {quantile(big['filter'], 0.95) / 1000:.2f} s; "
            f"opening its map section {big['map'] / 1000:.2f} s (each filter change, s: "
            + ", ".join(f"{ms / 1000:.2f}" for ms in big["filter"])
            + ")"
        )
    filters = [ms / 1000 for ms in found["filter"]]
    server = server_side_ms(found["table"], ["correct", "incorrect", "all"], max(5, args.changes // 2)) / 1000
    p50, p95 = statistics.median(filters), quantile(filters, 0.95)
    print(f"table {found['table']}, {len(filters)} filter changes (Photos: {' / '.join(found['outcomes'])})")
    print(f"first_dashboard_s: {found['first'] / 1000:.2f}")
    switches = ", ".join(f"{w}: {ms / 1000:.2f}" for w, ms in zip(found["switched"], found["switch"]))
    print(f"table switch (s): {switches}")
    print(
        f"filter change: p50 {p50:.2f} s, p95 {p95:.2f} s; the computation alone {server:.3f} s "
        f"(the wait is {p50 / server:.1f}x the computation)"
    )
    print(f"dashboard_filter_p95_s: {p95:.2f}")
    print(f"dashboard_filter_p50_s: {p50:.2f}")


if __name__ == "__main__":
    main()
