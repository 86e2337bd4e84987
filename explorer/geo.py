"""A geo-prior in the spirit of SINR (Cole et al. 2023): where (and when) is each taxon present?

Location (and optionally day of year) is wrapped with sin/cos, a small residual MLP maps it to a shared
256-d representation (the "trunk"), and one sigmoid per taxon says how likely the taxon is present there.
It is trained on presence-only records with SINR's "assume negative (full)" loss: the recorded taxon is a
positive at its location, every other taxon a pseudo-negative there, and every taxon a pseudo-negative at a
random location. The trunk does not depend on the taxon, so a range map over many cells is one matrix
product once the trunk's features for those cells are known.

    python -m explorer.geo train --occurrences CSV [--occurrences CSV ...] --taxa checkpoints/inat_bird.json \\
        --out checkpoints/geo/inat_bird.safetensors
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

log = logging.getLogger(__name__)


# ---- inputs: validation and encoding ------------------------------------------------------------------------


def check_location(lat, lon) -> tuple[float, float]:
    """(lat, lon) as floats, or ValueError saying what is wrong."""
    try:
        lat, lon = float(lat), float(lon)
    except (TypeError, ValueError) as err:
        raise ValueError(f"latitude and longitude must be numbers, got {lat!r} and {lon!r}") from err
    if math.isnan(lat) or math.isnan(lon) or math.isinf(lat) or math.isinf(lon):
        raise ValueError("latitude and longitude must be finite numbers (got NaN or infinity)")
    if not -90.0 <= lat <= 90.0:
        raise ValueError(f"latitude {lat} is outside -90..90")
    if not -180.0 <= lon <= 180.0:
        raise ValueError(f"longitude {lon} is outside -180..180")
    return lat, lon


def check_date(value, today: dt.date | None = None) -> dt.date:
    """A date from 'YYYY-MM-DD' (or a date/datetime); ValueError for text that does not parse or a future day."""
    if isinstance(value, dt.datetime):
        day = value.date()
    elif isinstance(value, dt.date):
        day = value
    else:
        try:
            day = dt.date.fromisoformat(str(value).strip()[:10])
        except ValueError as err:
            raise ValueError(f"date {value!r} is not a date in the form YYYY-MM-DD") from err
    today = today or dt.date.today()
    if day > today:
        raise ValueError(f"date {day.isoformat()} is in the future (today is {today.isoformat()})")
    return day


def encode(lat: np.ndarray, lon: np.ndarray, day_of_year: np.ndarray | None = None) -> torch.Tensor:
    """(N, 7) float32: sin/cos of lon and lat (SINR's wrap), sin/cos of the day of year, and a has-date flag.

    A missing day (None, or NaN entries) encodes as zeros with the flag off, so one model serves both.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    x, y = np.pi * lon / 180.0, np.pi * lat / 180.0  # lon wraps around; lat spans [-pi/2, pi/2]
    parts = [np.sin(x), np.cos(x), np.sin(y), np.cos(y)]
    if day_of_year is None:
        day_of_year = np.full(lat.shape, np.nan)
    day = np.asarray(day_of_year, dtype=np.float64)
    has = ~np.isnan(day)
    angle = 2 * np.pi * np.where(has, day, 0.0) / 365.25
    parts += [np.where(has, np.sin(angle), 0.0), np.where(has, np.cos(angle), 0.0), has.astype(np.float64)]
    return torch.from_numpy(np.stack(parts, axis=-1).astype(np.float32))


INPUT_DIM = 7


# ---- the model ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeoPriorConfig:
    hidden: int = 256
    layers: int = 4
    dropout: float = 0.3
    positive_weight: float = 2048.0  # SINR's lambda: a presence counts like this many pseudo-absences
    epochs: int = 12
    batch_size: int = 2048
    lr: float = 5e-4
    date_dropout: float = 0.5  # share of training records shown without their date
    seed: int = 0


class ResidualLayer(nn.Module):
    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.block = nn.Sequential(
            nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, width), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class GeoPrior(nn.Module):
    """encode(...) (N, 7) -> trunk (N, hidden) -> per-taxon logits (N, T)."""

    def __init__(self, num_taxa: int, config: GeoPriorConfig):
        super().__init__()
        self.config = config
        layers = [nn.Linear(INPUT_DIM, config.hidden), nn.ReLU()]
        layers += [ResidualLayer(config.hidden, config.dropout) for _ in range(config.layers)]
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(config.hidden, num_taxa)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (N, 7) -> (N, T) logits
        return self.head(self.trunk(features))


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


# ---- data ---------------------------------------------------------------------------------------------------


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


# ---- training and evaluation --------------------------------------------------------------------------------


def train_geo_prior(
    records: pd.DataFrame, num_taxa: int, config: GeoPriorConfig = GeoPriorConfig(), progress: bool = True
) -> GeoPrior:
    """Fit a GeoPrior on presence records (CPU, minutes); deterministic for a seed."""
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


@torch.no_grad()
def presence(model: GeoPrior, lat, lon, day_of_year=None) -> np.ndarray:
    """(N, T) presence scores in [0, 1]."""
    return torch.sigmoid(model(encode(lat, lon, day_of_year))).numpy()


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


# ---- checkpoints --------------------------------------------------------------------------------------------


def save_geo_prior(
    model: GeoPrior,
    taxa: list[str],
    path: Path,
    metrics: dict | None = None,
    known: list[bool] | None = None,
    data: dict | None = None,
) -> Path:
    """safetensors weights with the config, the taxon list, which taxa had training records, the metrics, and
    the training data (occurrence files relative to the data root, the held-out share, cell size and seed) so
    that the held-in / held-out split can be rebuilt."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "config": json.dumps(asdict(model.config)),
        "taxa": json.dumps(taxa),
        "metrics": json.dumps(metrics or {}),
        "known": json.dumps(known if known is not None else [True] * len(taxa)),
        "data": json.dumps(data or {}),
    }
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=metadata)
    return path


def load_geo_prior(path: Path) -> tuple[GeoPrior, list[str], dict]:
    """(model in eval mode, taxon names, metrics) from a checkpoint written by save_geo_prior; metrics["known"]
    says which taxa had training records."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "config" not in metadata or "taxa" not in metadata:
        raise ValueError(f"{path} is not a geo-prior checkpoint (no config/taxa in its metadata)")
    config = GeoPriorConfig(**json.loads(metadata["config"]))
    taxa = json.loads(metadata["taxa"])
    model = GeoPrior(len(taxa), config)
    model.load_state_dict(load_file(str(path)))
    metrics = json.loads(metadata.get("metrics", "{}"))
    metrics["known"] = json.loads(metadata.get("known", json.dumps([True] * len(taxa))))
    metrics["data"] = json.loads(metadata.get("data", "{}"))
    return model.eval(), taxa, metrics


def taxa_from_card(card_path: Path, settings) -> list[str]:
    """The scientific names of a model card's classes (its background class excluded), or of a label file's
    lines ('Scientific name (Common name)' or plain names; a 'background' line is left out)."""
    from explorer.config import load_model_card
    from explorer.model import find_file, read_labels

    if Path(card_path).suffix.lower() != ".json":
        return [n for n, _ in read_labels(Path(card_path), "coral") if n != "background"]
    card = load_model_card(card_path)
    names = [n for n, _ in read_labels(find_file(card.labels_file, settings, card), card.labels_format)]
    return [n for n in names if n != card.background_label]


def _relative_to(path: Path, root: Path | None) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve())) if root else str(path)
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> None:
    import app

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a geo-prior on presence records")
    train.add_argument("--occurrences", type=Path, action="append", required=True)
    train.add_argument(
        "--taxa", type=Path, required=True, help="a model card (its classes are the taxa) or a label file"
    )
    train.add_argument("--out", type=Path, required=True)
    train.add_argument("--epochs", type=int, default=GeoPriorConfig.epochs)
    train.add_argument("--held-out", type=float, default=0.2, help="share of 1-degree cells held out")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    settings = app.parse_settings([])
    taxa = taxa_from_card(args.taxa, settings)
    records = load_occurrences(args.occurrences, taxa)
    held = split_by_cell(records, args.held_out)
    config = GeoPriorConfig(epochs=args.epochs)
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
        "occurrences": [_relative_to(p, settings.data_root) for p in args.occurrences],
        "held_out": args.held_out,
        "cell_degrees": 1.0,
        "seed": 0,
    }
    save_geo_prior(model, taxa, args.out, metrics, [bool(k) for k in known], data)
    print(json.dumps(metrics, indent=2))


# ---- combining with the classifier --------------------------------------------------------------------------

GEO_FLOOR = 0.01  # a presence score never falls below this: an out-of-range sighting is demoted, not erased
OUT_OF_RANGE = 0.05  # below this presence score a taxon is "out of known range"


@dataclass(frozen=True)
class Combined:
    """Vision and geo scores aligned on the classifier's classes, and their renormalised product.

    geo: (N,) presence score per class, NaN where the prior does not know the taxon (or no location was given).
    combined: (N,) probabilities; classes with NaN geo keep a neutral factor (the mean geo factor of the known
    taxa at that place), so that knowing nothing neither helps nor hurts them.
    """

    vision: np.ndarray
    geo: np.ndarray
    combined: np.ndarray


def align_taxa(class_names: list[str], prior_taxa: list[str]) -> np.ndarray:
    """(N,) index into the prior's taxa for each classifier class, -1 where the prior does not know it."""
    index = {name: i for i, name in enumerate(prior_taxa)}
    return np.array([index.get(name, -1) for name in class_names], dtype=np.int64)


def combine(
    vision: np.ndarray,
    geo_scores: np.ndarray | None,
    alignment: np.ndarray,
    known: np.ndarray,
    floor: float = GEO_FLOOR,
) -> Combined:
    """Multiply vision probabilities by floored presence scores and renormalise.

    Args:
        vision: (N,) classifier probabilities.
        geo_scores: (T,) prior presence scores at the place (None: no location, nothing changes).
        alignment: (N,) prior index per class (-1 unknown), from align_taxa.
        known: (T,) bool, the prior saw records of the taxon (a taxon with none has no range to speak of).
    """
    vision = np.asarray(vision, dtype=np.float64)
    geo = np.full(vision.shape, np.nan)
    if geo_scores is None:
        return Combined(vision, geo, vision.copy())
    usable = _usable(alignment, known)
    geo[usable] = geo_scores[alignment[usable]]
    return Combined(vision, geo, combine_many(vision[None], np.asarray(geo_scores)[None], alignment, known, floor)[0])


def _usable(alignment: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(N,) the class has a taxon in the prior that had training records."""
    usable = alignment >= 0
    usable[usable] = known[alignment[usable]]
    return usable


def combine_many(
    vision: np.ndarray, geo_scores: np.ndarray, alignment: np.ndarray, known: np.ndarray, floor: float = GEO_FLOOR
) -> np.ndarray:
    """combine() for a batch: (n, N) probabilities and (n, T) presence scores -> (n, N) combined probabilities.
    Rows whose scores are all NaN (no place) are returned unchanged."""
    vision = np.asarray(vision, dtype=np.float64)
    usable = _usable(alignment, known)
    if not usable.any():
        return vision.copy()
    factor = np.maximum(geo_scores[:, alignment[usable]], floor)  # (n, usable)
    neutral = factor.mean(axis=1, keepdims=True)  # taxa the prior does not know: neither helped nor hurt
    full = np.repeat(neutral, vision.shape[1], axis=1)
    full[:, usable] = factor
    product = vision * full
    total = product.sum(axis=1, keepdims=True)
    out = np.where(total > 0, product / np.where(total > 0, total, 1.0), vision)
    no_place = np.isnan(geo_scores).all(axis=1)
    out[no_place] = vision[no_place]
    return out


# ---- a prior bound to one classifier ------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where (and when) a photo was taken, validated."""

    lat: float
    lon: float
    date: dt.date | None = None

    @property
    def day_of_year(self) -> float:
        return float(self.date.timetuple().tm_yday) if self.date else float("nan")


def make_place(lat=None, lon=None, date=None, today: dt.date | None = None) -> Place | None:
    """A Place from optional user input; None when no location is given. Clear ValueErrors otherwise."""
    blank = lambda v: v is None or (isinstance(v, str) and not v.strip())  # noqa: E731
    if blank(lat) and blank(lon):
        if not blank(date):
            check_date(date, today)  # still say so if it is malformed; a date alone is otherwise unused
        return None
    if blank(lat) or blank(lon):
        raise ValueError("give both latitude and longitude, or neither")
    lat, lon = check_location(lat, lon)
    return Place(lat, lon, None if blank(date) else check_date(date, today))


@dataclass
class BoundPrior:
    """A geo-prior aligned to one classifier's classes."""

    model: GeoPrior
    taxa: list[str]
    alignment: np.ndarray  # (N,) prior index per classifier class, -1 unknown
    known: np.ndarray  # (T,) the taxon had training records
    metrics: dict
    path: Path | None = None
    data: dict = field(default_factory=dict)  # training data, see save_geo_prior

    def scores(self, place: Place) -> np.ndarray:
        """(T,) presence scores at the place (and date, when given)."""
        return presence(self.model, np.array([place.lat]), np.array([place.lon]), np.array([place.day_of_year]))[0]

    def scores_many(self, lat: np.ndarray, lon: np.ndarray, day_of_year: np.ndarray) -> np.ndarray:
        """(n, T) presence scores; NaN rows where lat or lon is NaN (no place)."""
        lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
        out = np.full((len(lat), len(self.taxa)), np.nan)
        has = ~(np.isnan(lat) | np.isnan(lon))
        if has.any():
            out[has] = presence(self.model, lat[has], lon[has], np.asarray(day_of_year, dtype=float)[has])
        return out


def bind_prior(path: Path, class_names: list[str]) -> BoundPrior:
    model, taxa, metrics = load_geo_prior(path)
    known = np.asarray(metrics.pop("known"), dtype=bool)
    data = metrics.pop("data", {})
    return BoundPrior(model, taxa, align_taxa(class_names, taxa), known, metrics, Path(path), data)


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
    ('' for none), location_source; NaN lat/lon where the taxon has no held-out record."""
    test = records[held]
    by_taxon = {t: g for t, g in test.groupby("taxon_index")}
    index = {name: i for i, name in enumerate(taxa)}
    rng = np.random.default_rng(seed)
    rows = []
    for name in names:
        group = by_taxon.get(index.get(name, -1))
        if group is None:
            rows.append((np.nan, np.nan, "", "none: no held-out record of the true species"))
            continue
        pick = group.iloc[int(rng.integers(len(group)))]
        date = "" if np.isnan(pick["day_of_year"]) else str(pd.Timestamp(pick["date"]).date())
        rows.append((float(pick["lat"]), float(pick["lon"]), date, "held-out eBird record of the true species"))
    return pd.DataFrame(rows, columns=["lat", "lon", "date", "location_source"])


if __name__ == "__main__":
    main()
