"""Range maps: the geo-prior's presence scores over a global land grid, drawn with folium (arrays in, Map out)."""

from __future__ import annotations

import base64
import html
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from explorer.geo.birdnet import WEEKS, middle_day


@dataclass(frozen=True)
class LandGrid:
    """Centres of the land cells of a regular global grid, and the prior's trunk features there.

    features: (cells, hidden) computed once per prior; a species' map is then one matrix-vector product.
    """

    step: float
    lat: np.ndarray  # (cells,)
    lon: np.ndarray  # (cells,)
    rows: np.ndarray  # (cells,) row in the (180/step, 360/step) raster, north up
    cols: np.ndarray
    features: np.ndarray  # (cells, hidden) float32


def land_cells(step: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(lat, lon, row, col) of land cell centres, from the land mask in the global-land-mask package."""
    from global_land_mask import globe

    lats = 90 - step / 2 - step * np.arange(int(180 / step))  # north to south
    lons = -180 + step / 2 + step * np.arange(int(360 / step))
    grid_lon, grid_lat = np.meshgrid(lons, lats)
    land = globe.is_land(grid_lat, grid_lon)
    rows, cols = np.nonzero(land)
    return grid_lat[land], grid_lon[land], rows, cols


@torch.no_grad()
def build_land_grid(model, step: float = 0.5, batch: int = 65536, day_of_year: float | None = None) -> LandGrid:
    """The land grid with the range model's features (``model.features``; no date, or one day for every cell): the
    species-independent part, done once per prior and week."""
    lat, lon, rows, cols = land_cells(step)
    day = None if day_of_year is None else np.full(len(lat), float(day_of_year))
    parts = [
        model.features(lat[i : i + batch], lon[i : i + batch], None if day is None else day[i : i + batch]).numpy()
        for i in range(0, len(lat), batch)
    ]
    return LandGrid(step, lat, lon, rows, cols, np.concatenate(parts).astype(np.float32))


def range_scores(model, grid: LandGrid, taxon: int) -> np.ndarray:
    """(cells,) presence scores of one taxon on the grid: sigmoid(features @ w + b)."""
    weight = model.head.weight[taxon].detach().numpy()
    bias = float(model.head.bias[taxon].detach())
    return 1.0 / (1.0 + np.exp(-(grid.features @ weight + bias)))


def score_raster(grid: LandGrid, scores: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 RGBA image of the scores (transparent where the score is below 0.05 or at sea)."""
    import matplotlib

    height, width = int(180 / grid.step), int(360 / grid.step)
    image = np.zeros((height, width, 4), dtype=np.uint8)
    colours = (matplotlib.colormaps["viridis"](scores)[:, :3] * 255).astype(np.uint8)
    image[grid.rows, grid.cols, :3] = colours
    image[grid.rows, grid.cols, 3] = np.where(scores >= 0.05, (80 + 150 * scores).astype(np.uint8), 0)
    return image


LEAFLET_DIR = Path(__file__).resolve().parent / "leaflet"  # Leaflet 1.9.4 (BSD-2), from npm; package data
RECENT_MAPS = 16  # map documents kept per prior (bounded: about 4 MB)
RECENT_WEEKS = 2  # week grids kept per prior besides the whole-year one (each ~90 MB of features)
MAX_POINTS = 1500  # occurrence points drawn per species (a random, seeded sample beyond that)


@lru_cache(maxsize=1)
def _leaflet_inline() -> str:
    """Leaflet's JS and CSS as inline tags, its images as data URIs, and a two-line stand-in for the jQuery call
    folium's popups make: maps work with no network at all."""
    css = (LEAFLET_DIR / "leaflet.css").read_text()
    for name in ("layers.png", "layers-2x.png"):
        css = css.replace(f"url(images/{name})", f"url({_data_uri(LEAFLET_DIR / 'images' / name)})")
    js = (LEAFLET_DIR / "leaflet.js").read_text()
    icons = {
        "iconUrl": "marker-icon.png",
        "iconRetinaUrl": "marker-icon-2x.png",
        "shadowUrl": "marker-shadow.png",
    }
    setup = "L.Icon.Default.imagePath = '';\n" + "".join(
        f"L.Icon.Default.prototype.options.{key} = '{_data_uri(LEAFLET_DIR / 'images' / file)}';\n"
        for key, file in icons.items()
    )
    jquery_stand_in = (
        "window.$ = window.$ || function (markup) { var t = document.createElement('template'); "
        "t.innerHTML = String(markup).trim(); return [t.content.firstChild]; };"
    )
    return f"<style>{css}</style>\n<script>{js}\n{setup}{jquery_stand_in}</script>"


@lru_cache(maxsize=8)
def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def _projected_png(image: np.ndarray) -> str:
    """An RGBA raster of the whole globe, projected to Web Mercator, as a PNG data URI."""
    from folium.utilities import image_to_url, mercator_transform

    projected = mercator_transform(image, (-90, 90), origin="upper")  # floats: image_to_url would stretch them
    return image_to_url(np.clip(np.round(projected), 0, 255).astype(np.uint8), origin="upper")


@lru_cache(maxsize=4)
def _land_overlay(step: float) -> str:
    """Light-grey land on transparent sea, the offline base map (built once per grid step)."""
    _, _, rows, cols = land_cells(step)
    image = np.zeros((int(180 / step), int(360 / step), 4), dtype=np.uint8)
    image[rows, cols] = (205, 205, 200, 255)
    return _projected_png(image)


def range_bounds(grid: LandGrid, scores: np.ndarray, share: float = 0.5) -> list[list[float]] | None:
    """[[south, west], [north, east]] around the cells scoring at least ``share`` of the best score (and at
    least 0.05, what the map draws), padded by a cell; None when nothing is drawn."""
    scores = np.asarray(scores, dtype=float)
    if not len(scores) or scores.max() < 0.05:
        return None
    keep = scores >= max(0.05, share * scores.max())
    pad = grid.step
    south, north = float(grid.lat[keep].min()) - pad, float(grid.lat[keep].max()) + pad
    west, east = float(grid.lon[keep].min()) - pad, float(grid.lon[keep].max()) + pad
    return [[max(south, -85.0), max(west, -180.0)], [min(north, 85.0), min(east, 180.0)]]


def range_map(
    grid: LandGrid,
    scores: np.ndarray,
    title: str,
    lat: float | None = None,
    lon: float | None = None,
    caveat: str = "",
    points: tuple[np.ndarray, np.ndarray] | None = None,
    points_label: str = "training records",
):
    """A folium map of a range with the observation pinned and (optionally) occurrence points as a layer that
    starts hidden. Every name that reaches HTML is escaped. Base map: the land grid itself (offline); online
    OpenStreetMap tiles are an optional layer, off by default (they would send the view to OSM's servers)."""
    import folium

    center = [lat, lon] if lat is not None and lon is not None else [20.0, 0.0]
    fmap = folium.Map(
        location=center, zoom_start=3 if lat is not None else 1, tiles=None, world_copy_jump=True, min_zoom=1
    )
    fmap.options["minZoom"] = 1  # folium passes min_zoom to tile layers only
    # open on the range (a narrow window would otherwise show the Atlantic), once the map has a size
    bounds = range_bounds(grid, scores) if lat is None or lon is None else None
    fmap.get_root().html.add_child(folium.Element(_refit_script(fmap.get_name(), bounds, center, lat)))
    world = [[-90, -180], [90, 180]]
    folium.raster_layers.ImageOverlay(_land_overlay(grid.step), bounds=world, name="land", control=False).add_to(fmap)
    folium.TileLayer("OpenStreetMap", name="OpenStreetMap tiles (needs internet)", overlay=True, show=False).add_to(
        fmap
    )
    folium.raster_layers.ImageOverlay(
        _projected_png(score_raster(grid, scores)), bounds=world, name="predicted presence", opacity=0.85
    ).add_to(fmap)
    if points is not None and len(points[0]):
        _add_points(fmap, points, points_label)
    if lat is not None and lon is not None:
        popup = f"<b>Observation</b><br>{lat:.4f}, {lon:.4f}<br>{html.escape(title)}"
        folium.Marker(
            [lat, lon], popup=folium.Popup(popup, max_width=300), tooltip=html.escape(f"observation: {title}")
        ).add_to(fmap)
    folium.LayerControl(collapsed=True).add_to(fmap)
    has_points = points is not None and len(points[0]) > 0
    fmap.get_root().html.add_child(folium.Element(_legend(title, caveat, points_label if has_points else "")))
    return fmap


def _refit_script(name: str, bounds, center, lat) -> str:
    """Set the map's view (the range's bounds, or the place) once its box has a size, and again whenever it gets
    one after having none: a map laid out in a frame that is not shown yet starts at size 0, where Leaflet's
    fitBounds gives a grey map at the wrong zoom. Checked every 0.5 s for 10 minutes; ``__viewSet`` says done."""
    if bounds:
        view = f"m.fitBounds({json.dumps(bounds)}, {{maxZoom: 6, animate: false}})"
    else:
        view = f"m.setView({json.dumps(center)}, {3 if lat is not None else 1}, {{animate: false}})"
    return (
        "<script>(function () { var tries = 0, timer = setInterval(function () {"
        f" var m = window.{name}; if (++tries > 1200) clearInterval(timer); if (!m) return;"
        " var box = m.getContainer(); if (!box.clientWidth || !box.clientHeight) { m.__sizeless = true; return; }"
        f" if (m.__sizeless || !m.__viewSet) {{ m.__sizeless = false; m.invalidateSize(); {view};"
        " m.__viewSet = true; }"
        " }, 500); })();</script>"
    )


def _add_points(fmap, points: tuple[np.ndarray, np.ndarray], label: str) -> None:
    """Occurrence points as a GeoJSON layer that starts hidden (a seeded sample of MAX_POINTS beyond that)."""
    import folium

    plat, plon = points
    if len(plat) > MAX_POINTS:
        keep = np.random.default_rng(0).choice(len(plat), MAX_POINTS, replace=False)
        plat, plon = plat[keep], plon[keep]
    features = [
        {
            "type": "Feature",
            "properties": {},
            "geometry": {"type": "Point", "coordinates": [round(float(x), 4), round(float(y), 4)]},
        }
        for y, x in zip(plat, plon)
    ]
    folium.GeoJson(
        {"type": "FeatureCollection", "features": features},
        name=html.escape(f"{label} ({len(points[0]):,})"),
        marker=folium.CircleMarker(radius=2, color="#d62728", weight=1, fill=True, fill_opacity=0.7),
        show=False,
    ).add_to(fmap)


def _legend(title: str, caveat: str, points_label: str = "") -> str:
    return (
        "<style>.leaflet-container {background: #e8f0f6}</style>"
        "<div id='map-legend' style='position:fixed;bottom:8px;left:8px;z-index:999;background:white;"
        f"padding:3px 7px;font:12px sans-serif;max-width:75%;opacity:0.92'><b>{html.escape(title)}</b><br>"
        "predicted presence: dark = low, yellow = high (below 0.05 not drawn); layers (top right): "
        f"{html.escape(points_label) + ', ' if points_label else ''}online tiles"
        f"{'<br>' + html.escape(caveat) if caveat else ''}</div>"
    )


def standalone_html(fmap) -> str:
    """The map as one HTML document with Leaflet inlined (folium's CDN links removed): no network needed."""
    fmap.default_js, fmap.default_css = [], []
    document = fmap.get_root().render()
    head = document.index("<head>") + len("<head>")
    return document[:head] + _leaflet_inline() + document[head:]


def map_iframe(document: str, height: int = 440) -> str:
    """Embed a map document in a page: a sandboxed srcdoc iframe (scripts run, but cannot reach the page)."""
    return (
        f'<iframe class="range-map" sandbox="allow-scripts" style="width:100%;height:{height}px;border:0" '
        f'srcdoc="{html.escape(document, quote=True)}"></iframe>'
    )


def week_label(week: int | None) -> str:
    """ "week 20 (mid May)" for BirdNET's 48-week calendar (4 weeks a month); "the whole year" for None."""
    if week is None:
        return "the whole year"
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    part = ("early", "early", "late", "late")[(week - 1) % 4]
    return f"week {week} ({part} {months[(week - 1) // 4]})"


class RangeMapper:
    """Range maps for one geo-prior: the land grid's features (for the whole year, and for the last few weeks
    asked) and the held-in occurrence records are built on first use (or by warm(), from a background thread at
    start-up) and kept; thread-safe."""

    def __init__(self, prior, load_points: Callable[[], dict] | None = None, step: float = 0.5):
        """``load_points``: () -> {taxon index: (lat, lon) arrays} of records to offer as a layer (called once)."""
        self.prior, self.load_points, self.step = prior, load_points, step
        self._lock = threading.Lock()
        self._grids: OrderedDict[int | None, LandGrid] = OrderedDict()  # None: the whole year
        self._points: dict[int, tuple[np.ndarray, np.ndarray]] | None = None
        self._recent: OrderedDict[tuple, str] = OrderedDict()  # the last RECENT_MAPS documents (~250 kB each)

    def warm(self) -> RangeMapper:
        self.grid(None)
        with self._lock:
            if self._points is None:
                self._points = self.load_points() if self.load_points else {}
        return self

    def grid(self, week: int | None) -> LandGrid:
        """The land grid's features for a week of BirdNET's 48-week calendar (None: no date), built once and kept
        (the whole year always, the last RECENT_WEEKS weeks besides)."""
        if week is not None and not 1 <= int(week) <= WEEKS:
            raise ValueError(f"week {week} is outside 1..{WEEKS}")
        with self._lock:
            if week in self._grids:
                self._grids.move_to_end(week)
                return self._grids[week]
            day = None if week is None else middle_day(int(week))
            grid = build_land_grid(self.prior.model, self.step, day_of_year=day)
            self._grids[week] = grid
            weekly = [w for w in self._grids if w is not None]
            for old in weekly[: max(0, len(weekly) - RECENT_WEEKS)]:
                del self._grids[old]
            return grid

    def scores(self, taxon: int, week: int | None = None) -> np.ndarray:
        """(cells,) the taxon's presence on the land grid at that week (None: no date)."""
        return range_scores(self.prior.model, self.grid(week), taxon)

    def html(
        self, taxon: int, title: str, lat: float | None = None, lon: float | None = None, week: int | None = None
    ) -> str:
        """A standalone map document for the prior's taxon index at a week (None: no date). The last few are kept:
        moving a slider re-runs identify, and the same map should not be drawn again."""
        key = (taxon, title, lat, lon, week)
        with self._lock:
            if key in self._recent:
                self._recent.move_to_end(key)
                return self._recent[key]
        self.warm()
        grid = self.grid(week)
        scores = range_scores(self.prior.model, grid, taxon)
        caveat = (
            "No training records of this taxon: the map is the prior's guess." if not self.prior.known[taxon] else ""
        )
        if self.prior.credit:
            caveat = " ".join(filter(None, [caveat, f"Prior: {self.prior.credit}."]))
        points = self._points.get(taxon)
        title = f"{title}, {week_label(week)}"
        document = standalone_html(range_map(grid, scores, title, lat, lon, caveat, points, "held-in eBird records"))
        with self._lock:
            self._recent[key] = document
            while len(self._recent) > RECENT_MAPS:
                self._recent.popitem(last=False)
        return document
