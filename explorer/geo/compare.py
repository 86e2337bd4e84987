"""Two range models judged on the same work: held-out eBird sites and records, for the taxa both know.

- **Site ranking MAP**: held-out records grouped into 0.1-degree sites; for each taxon recorded at one or more
  sites, the average precision of ranking the sites where it was recorded above those where it was not, by its
  presence score (no date: the whole-year input). The mean over taxa (``explorer.geo.training``'s measure).
- **Presence AUROC**: for each taxon, its held-out records (at their own dates) against background points: the
  probability that a record outscores a background point; the mean over taxa with at least ``min_records``
  held-out records. Two backgrounds: points spread uniformly over land (seeded, random days), and the
  "target-group" background, the held-out sites where the observers recorded anything (Phillips et al. 2009).
  A uniform background counts every land point as an absence, so it rewards a prior that knows only where the
  observers went and penalises a true wide range (a Peregrine scores high over most land, rightly); the
  target-group background shares the observers' bias with the records and so cancels it.

Taxa are matched through synonyms (``explorer.taxa.synonymy``), never by string equality alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from explorer.geo.range_model import presence
from explorer.geo.training import mean_average_precision, site_presence
from explorer.taxa.synonymy import load_synonyms


@dataclass(frozen=True)
class RangeJudge:
    """One range model to judge: its taxa and ``model`` (``features`` + linear ``head``)."""

    name: str
    model: object
    taxa: list[str]


def shared_taxa(reference: list[str], judges: list[RangeJudge], usable: np.ndarray | None = None) -> np.ndarray:
    """(len(judges), T) index into each judge's taxa for each reference taxon, through synonyms; -1 where unknown.
    ``usable`` (T,) bool masks reference taxa out (set to -1 for every judge)."""
    table = load_synonyms()
    index = np.array([table.lookup(j.taxa, reference) for j in judges], dtype=np.int64).reshape(len(judges), -1)
    if usable is not None:
        index[:, ~np.asarray(usable, dtype=bool)] = -1
    return index


def target_group_points(held_out: pd.DataFrame, count: int, seed: int = 0) -> pd.DataFrame:
    """``count`` background points drawn (seeded, with replacement) from the held-out sites, at their dates."""
    sites = held_out.drop_duplicates("site")
    return sites.sample(count, replace=True, random_state=seed)[["lat", "lon", "day_of_year"]].reset_index(drop=True)


def background_points(count: int, seed: int = 0) -> pd.DataFrame:
    """``count`` points uniform over the land of the globe (area-uniform latitudes), each with a random day."""
    from global_land_mask import globe

    rng = np.random.default_rng(seed)
    lats, lons = [], []
    while sum(map(len, lats)) < count:
        lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 4 * count)))
        lon = rng.uniform(-180, 180, 4 * count)
        land = globe.is_land(lat, lon) & (lat > -60)  # Antarctica: no bird records to speak of
        lats.append(lat[land])
        lons.append(lon[land])
    lat, lon = np.concatenate(lats)[:count], np.concatenate(lons)[:count]
    return pd.DataFrame({"lat": lat, "lon": lon, "day_of_year": rng.integers(1, 366, count).astype(float)})


@torch.no_grad()
def scores_for(model, lat, lon, day, taxa: np.ndarray, batch: int = 8192) -> np.ndarray:
    """(n,) presence of taxon taxa[i] at place i: one row of the head per place, not the whole (n, T) matrix."""
    out = np.empty(len(lat), dtype=np.float64)
    weight, bias = model.head.weight.detach(), model.head.bias.detach()
    for start in range(0, len(lat), batch):
        part = slice(start, start + batch)
        features = model.features(np.asarray(lat)[part], np.asarray(lon)[part], np.asarray(day)[part])
        rows = torch.as_tensor(taxa[part])
        out[part] = torch.sigmoid((features * weight[rows]).sum(dim=1) + bias[rows]).double().numpy()
    return out


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """P(a positive outscores a negative), ties counting half (Mann-Whitney U / (n_pos * n_neg))."""
    values = np.concatenate([positive, negative])
    ranks = pd.Series(values).rank(method="average").to_numpy()
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def site_map(judges: list[RangeJudge], index: np.ndarray, held_out: pd.DataFrame, num_taxa: int) -> list[dict]:
    """Site-ranking MAP of each judge over the held-out sites, on the taxa every judge knows."""
    both = (index >= 0).all(axis=0)
    sites, present = site_presence(held_out, num_taxa)
    keep = both & present.any(axis=0)
    out = []
    for judge, columns in zip(judges, index):
        scores = presence(judge.model, sites["lat"].to_numpy(), sites["lon"].to_numpy())[:, columns[keep]]
        value, counted = mean_average_precision(scores, present[:, keep])
        out.append({"prior": judge.name, "site_map": value, "taxa": counted, "sites": len(sites)})
    return out


def presence_auroc(
    judges: list[RangeJudge], index: np.ndarray, held_out: pd.DataFrame, background: pd.DataFrame, min_records: int = 5
) -> list[dict]:
    """Mean per-taxon AUROC of held-out records (at their dates) against the background points, per judge."""
    both = (index >= 0).all(axis=0)
    counts = held_out["taxon_index"].value_counts()
    taxa = [int(t) for t, n in counts.items() if n >= min_records and both[int(t)]]
    held_out = held_out[held_out["taxon_index"].isin(taxa)]
    out = []
    for judge, columns in zip(judges, index):
        positive = scores_for(
            judge.model, held_out["lat"], held_out["lon"], held_out["day_of_year"], columns[held_out["taxon_index"]]
        )
        negative = _background_scores(judge, background, columns[taxa])
        per_taxon = [
            auroc(positive[(held_out["taxon_index"] == t).to_numpy()], negative[:, i]) for i, t in enumerate(taxa)
        ]
        out.append(
            {"prior": judge.name, "auroc": float(np.mean(per_taxon)), "taxa": len(taxa), "records": len(held_out)}
        )
    return out


@torch.no_grad()
def _background_scores(judge: RangeJudge, background: pd.DataFrame, columns: np.ndarray) -> np.ndarray:
    features = judge.model.features(background["lat"], background["lon"], background["day_of_year"])
    rows = torch.as_tensor(columns)
    logits = features @ judge.model.head.weight.detach()[rows].T + judge.model.head.bias.detach()[rows]
    return torch.sigmoid(logits).double().numpy()
