"""Range maps: the geo-prior's presence scores over a global land grid, drawn with folium (arrays in, Map out)."""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import torch

from explorer.geo import GeoPrior, encode


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
def build_land_grid(model: GeoPrior, step: float = 0.5, batch: int = 65536) -> LandGrid:
    """The land grid with the prior's trunk features (no date): the species-independent part, done once."""
    lat, lon, rows, cols = land_cells(step)
    parts = [model.trunk(encode(lat[i : i + batch], lon[i : i + batch])).numpy() for i in range(0, len(lat), batch)]
    return LandGrid(step, lat, lon, rows, cols, np.concatenate(parts).astype(np.float32))


def range_scores(model: GeoPrior, grid: LandGrid, taxon: int) -> np.ndarray:
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


def range_map(
    grid: LandGrid, scores: np.ndarray, title: str, lat: float | None = None, lon: float | None = None, caveat: str = ""
):
    """A folium map of a range with the observation pinned; every name that reaches HTML is escaped."""
    import folium

    center = [lat, lon] if lat is not None and lon is not None else [20.0, 0.0]
    fmap = folium.Map(location=center, zoom_start=3 if lat is not None else 2, tiles=None, world_copy_jump=True)
    folium.TileLayer("OpenStreetMap", name="base map (online tiles; blank offline)").add_to(fmap)
    folium.raster_layers.ImageOverlay(
        score_raster(grid, scores),
        bounds=[[-90, -180], [90, 180]],
        mercator_project=True,
        name=f"predicted presence: {html.escape(title)}",
        opacity=0.8,
    ).add_to(fmap)
    if lat is not None and lon is not None:
        popup = f"<b>Observation</b><br>{lat:.4f}, {lon:.4f}<br>{html.escape(title)}"
        folium.Marker(
            [lat, lon], popup=folium.Popup(popup, max_width=300), tooltip=html.escape(f"observation: {title}")
        ).add_to(fmap)
    folium.LayerControl().add_to(fmap)
    if caveat:
        fmap.get_root().html.add_child(
            folium.Element(
                f"<div style='position:fixed;bottom:8px;left:8px;z-index:999;"
                f"background:white;padding:2px 6px;font-size:11px'>"
                f"{html.escape(caveat)}</div>"
            )
        )
    return fmap
