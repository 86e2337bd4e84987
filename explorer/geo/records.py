"""Occurrence records: reading them, and rebuilding the split a prior was trained on (for range-map layers and
for giving evaluation photos a plausible, unseen place)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.geo.combine import BoundPrior
from explorer.taxa.synonymy import load_synonyms

log = logging.getLogger(__name__)


def load_occurrences(paths: list[Path], taxa: list[str]) -> pd.DataFrame:
    """Records (lat, lon, day_of_year, taxon_index, site) of the given taxa; invalid rows are dropped and counted."""
    frame = pd.concat(
        [pd.read_csv(p, usecols=["scientific_name", "lat", "lon", "date"]) for p in paths], ignore_index=True
    )
    index = {name: i for i, name in enumerate(taxa)}
    frame["taxon_index"] = frame["scientific_name"].map(index)
    dates = pd.to_datetime(frame["date"], errors="coerce")
    frame["day_of_year"] = dates.dt.day_of_year.astype(float)
    valid = frame["taxon_index"].notna() & frame["lat"].between(-90, 90) & frame["lon"].between(-180, 180)
    dropped = int((~valid).sum())
    frame = frame[valid].copy()
    frame["taxon_index"] = frame["taxon_index"].astype(int)
    frame["site"] = frame["lat"].round(1).astype(str) + "," + frame["lon"].round(1).astype(str)
    log.info(
        "%d records of %d taxa kept, %d dropped (unknown taxon or impossible coordinates)",
        len(frame),
        frame["taxon_index"].nunique(),
        dropped,
    )
    return frame.reset_index(drop=True)


def split_by_cell(records: pd.DataFrame, held_out: float = 0.2, cell_degrees: float = 1.0, seed: int = 0) -> np.ndarray:
    """True for held-out records: whole 1-degree cells are held out, so a test point never sits beside a
    training record from the same spot (random rows would leak the location)."""
    cells = (
        np.floor(records["lat"] / cell_degrees).astype(int).astype(str)
        + ":"
        + np.floor(records["lon"] / cell_degrees).astype(int).astype(str)
    )
    unique = np.array(sorted(cells.unique()))
    chosen = np.random.default_rng(seed).random(len(unique)) < held_out
    return cells.isin(set(unique[chosen])).to_numpy()


def training_records(prior: BoundPrior, data_root: Path | None) -> tuple[pd.DataFrame, np.ndarray] | None:
    """(records, held-out mask) as the prior was trained on them, or None when its occurrence files are not
    under data_root (a prior trained elsewhere, or no shared data)."""
    files = prior.data.get("occurrences") or []
    if not files or data_root is None:
        return None
    paths = [Path(data_root) / f for f in files]
    if not all(p.is_file() for p in paths):
        return None
    records = load_occurrences(paths, prior.taxa)
    held = split_by_cell(
        records, prior.data.get("held_out", 0.2), prior.data.get("cell_degrees", 1.0), prior.data.get("seed", 0)
    )
    return records, held


def held_out_places(names: list[str], taxa: list[str], records: pd.DataFrame, held: np.ndarray, seed: int = 0):
    """For each true name, one held-out record of that taxon chosen at random (seeded): where a photo of the
    species could plausibly have been taken, at a spot the prior never trained on. DataFrame lat, lon, date
    ('' for none), location_source; NaN lat/lon where the taxon has no held-out record. Names match the prior's
    taxa through synonyms (a CUB photo of *Mareca strepera* gets a record of the prior's *Anas strepera*)."""
    test = records[held]
    by_taxon = {t: g for t, g in test.groupby("taxon_index")}
    positions = load_synonyms().lookup(taxa, names)
    rng = np.random.default_rng(seed)
    rows = []
    for position in positions:
        group = by_taxon.get(position)
        if group is None:
            rows.append((np.nan, np.nan, "", "none: no held-out record of the true species"))
            continue
        pick = group.iloc[int(rng.integers(len(group)))]
        date = "" if np.isnan(pick["day_of_year"]) else str(pd.Timestamp(pick["date"]).date())
        rows.append((float(pick["lat"]), float(pick["lon"]), date, "held-out eBird record of the true species"))
    return pd.DataFrame(rows, columns=["lat", "lon", "date", "location_source"])


def held_in_points(prior: BoundPrior, data_root: Path | None) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{taxon index: (lat, lon)} of the records a prior trained on, one point per ~100 m spot; empty when its
    occurrence files are not under data_root."""
    found = training_records(prior, data_root)
    if found is None:
        return {}
    records, held = found
    train = records[~held]
    spots = train.assign(lat=train["lat"].round(3), lon=train["lon"].round(3))
    spots = spots.drop_duplicates(["taxon_index", "lat", "lon"])  # one point per spot (~100 m)
    return {int(t): (g["lat"].to_numpy(), g["lon"].to_numpy()) for t, g in spots.groupby("taxon_index", sort=False)}
