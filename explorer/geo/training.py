"""Training a geo-prior on presence-only records with SINR's "assume negative (full)" loss, and judging it on
held-out sites (whole 1-degree cells held out, so a test point never sits beside a training record)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from explorer.geo.range_model import GeoPrior, GeoPriorConfig, encode, presence, save_geo_prior
from explorer.geo.records import load_occurrences, split_by_cell
from explorer.photos.manifests import relative_path

log = logging.getLogger(__name__)


def an_full_loss(model: GeoPrior, features: torch.Tensor, targets: torch.Tensor, weight: float) -> torch.Tensor:
    """SINR's assume-negative-full loss for a batch of presences (features (B, 7), targets (B,) taxon index)."""
    batch = features.shape[0]
    random_locations = _random_features(batch, features.device)
    logits = model(torch.cat([features, random_locations]))  # (2B, T)
    at_records, at_random = logits[:batch], logits[batch:]
    log_present = nn.functional.logsigmoid(at_records)
    log_absent = nn.functional.logsigmoid(-at_records)
    rows = torch.arange(batch, device=features.device)
    positive = weight * log_present[rows, targets]
    others = log_absent.sum(dim=1) - log_absent[rows, targets]
    background = nn.functional.logsigmoid(-at_random).sum(dim=1)
    return -(positive + others + background).mean() / logits.shape[1]


def _random_features(count: int, device) -> torch.Tensor:
    """Features of uniformly random points on the sphere, with no date."""
    lon = np.random.uniform(-180, 180, count)
    lat = np.degrees(np.arcsin(np.random.uniform(-1, 1, count)))
    return encode(lat, lon).to(device)


def train_geo_prior(
    records: pd.DataFrame, num_taxa: int, config: GeoPriorConfig | None = None, progress: bool = True
) -> GeoPrior:
    """Fit a GeoPrior on presence records (CPU, minutes); deterministic for a seed."""
    config = config or GeoPriorConfig()
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    model = GeoPrior(num_taxa, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
    lat, lon = records["lat"].to_numpy(), records["lon"].to_numpy()
    day = records["day_of_year"].to_numpy()
    targets = torch.from_numpy(records["taxon_index"].to_numpy().copy()).long()
    model.train()
    for epoch in tqdm(range(config.epochs), desc="geo-prior", disable=not progress, unit="epoch"):
        order = np.random.permutation(len(records))
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            shown_day = np.where(np.random.random(len(rows)) < config.date_dropout, np.nan, day[rows])
            loss = an_full_loss(model, encode(lat[rows], lon[rows], shown_day), targets[rows], config.positive_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
        log.info("epoch %d: last batch loss %.4f", epoch + 1, loss.item())
    return model.eval()


def site_presence(records: pd.DataFrame, num_taxa: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Sites (rounded 0.1-degree spots, at their mean position) and a (sites, taxa) bool matrix of which taxa
    were recorded there: the presence/absence view of presence-only records that a range model is judged on."""
    sites = records.groupby("site").agg(lat=("lat", "mean"), lon=("lon", "mean")).reset_index()
    position = {site: i for i, site in enumerate(sites["site"])}
    matrix = np.zeros((len(sites), num_taxa), dtype=bool)
    matrix[records["site"].map(position).to_numpy(), records["taxon_index"].to_numpy()] = True
    return sites, matrix


def mean_average_precision(scores: np.ndarray, present: np.ndarray) -> tuple[float, int]:
    """Mean over taxa present at >= 1 site of the average precision of ranking the sites where the taxon was
    recorded above those where it was not, by the taxon's presence score. (scores, present): (sites, taxa)."""
    aps = []
    for taxon in np.flatnonzero(present.any(axis=0)):
        order = np.argsort(-scores[:, taxon], kind="stable")
        hits = present[order, taxon]
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        aps.append(float(precision[hits].mean()))
    return (float(np.mean(aps)) if aps else float("nan")), len(aps)


def train_and_evaluate(
    occurrences: list[Path],
    taxa: list[str],
    out: Path,
    config: GeoPriorConfig | None = None,
    held_out: float = 0.2,
    data_root: Path | None = None,
) -> dict:
    """Train on the records outside the held-out cells, judge on the held-out sites (against a location-blind
    prior) and save a checkpoint that carries its metrics and its training data; returns the metrics."""
    config = config or GeoPriorConfig()
    records = load_occurrences(occurrences, taxa)
    held = split_by_cell(records, held_out)
    model = train_geo_prior(records[~held], len(taxa), config)
    sites, present = site_presence(records[held], len(taxa))
    value, counted = mean_average_precision(presence(model, sites["lat"], sites["lon"]), present)
    # what a location-blind prior gets: every site scored by the taxon's share of the training records
    frequency = np.bincount(records.loc[~held, "taxon_index"], minlength=len(taxa)).astype(float)
    baseline, _ = mean_average_precision(np.tile(frequency, (len(sites), 1)), present)
    metrics = {
        "held_out_site_map": value,
        "location_blind_map": baseline,
        "held_out_taxa": counted,
        "held_out_sites": len(sites),
        "held_out_records": int(held.sum()),
        "train_records": int((~held).sum()),
        "taxa_with_records": int(records["taxon_index"].nunique()),
    }
    known = np.bincount(records.loc[~held, "taxon_index"], minlength=len(taxa)) > 0
    data = {
        "occurrences": [relative_path(p, data_root) for p in occurrences],
        "held_out": held_out,
        "cell_degrees": 1.0,
        "seed": 0,
    }
    save_geo_prior(model, taxa, out, metrics, [bool(k) for k in known], data)
    return metrics
