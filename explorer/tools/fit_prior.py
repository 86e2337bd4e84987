"""explorer-fit-prior: how should the place weigh on the image? For a model's photos with a place (its evaluation
table's), each geo-prior's combination rule is fitted on one half (the table's calibration_half) and reported on
the other, against the rule in use and an oracle bound; written into checkpoints/geo/combination.json, which the
results pages read.

    explorer-fit-prior --model inat_bird [--table assets/eval/inat_bird.parquet] [--out FILE]

One forward pass per placed photo (about three minutes for 3,000 photos on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.diagnose.schema import save_table
from explorer.geo.combination_fit import Rule, cell_of, fit_rule, oracle_top1, outcome, top1, vagrant_grid
from explorer.geo.combine import BIRDNET, GEO_FLOOR, LOCATION_FILTER_THRESHOLD, BoundPrior
from explorer.geo.fitted import apply_entry
from explorer.geo.records import training_records
from explorer.models.batches import run_logits
from explorer.photos.places import check_date
from explorer.photos.thumbnails import photo_path
from explorer.services.resources import load_priors_for
from explorer.settings import PROJECT_ROOT, add_model_arguments, settings_from_args
from explorer.tools.cli import one_line_errors
from explorer.tools.model_table import add_table_arguments, model_table

COMBINATION_FILE = PROJECT_ROOT / "checkpoints" / "geo" / "combination.json"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="explorer-fit-prior",
        description=(__doc__ or "").split("\n\n")[0].split(": ", 1)[1].replace("how", "How", 1),
    )
    add_table_arguments(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=COMBINATION_FILE,
        help="the file to update (default: the shipped checkpoints/geo/combination.json)",
    )
    parser.add_argument(
        "--update-table",
        action="store_true",
        help="also rewrite the table's geo columns with the fitted rules (what the Diagnose tab shows)",
    )
    add_model_arguments(parser)
    return parser


def placed_photos(table: pd.DataFrame, data_root) -> tuple[pd.DataFrame, list[str], dict]:
    """The readable photos of known species that have a place and are on this machine, their files, and what was
    left out."""
    usable = table[(table["status"] == "ok") & table["in_vocab"].astype(bool)]
    placed = usable[pd.to_numeric(usable["lat"], errors="coerce").notna()]
    files = {i: photo_path(data_root, str(p)) for i, p in zip(placed.index, placed["path"])}
    missing = [i for i, f in files.items() if f is None]
    placed = placed.drop(index=missing)
    excluded = {
        "unreadable, or a species the model does not know": int(len(table) - len(usable)),
        "no place (no held-out record of the species)": int(len(usable) - len(files)),
        "photo not on this machine": len(missing),
    }
    return placed, [str(files[i]) for i in placed.index], excluded


def vision_of(classifier, files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (n, N) float64, readable (n,) bool)."""
    logits, statuses = run_logits(classifier, files, progress=False)
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return probs, np.array([s == "ok" for s in statuses], dtype=bool)


def plain_rule(prior: BoundPrior) -> Rule:
    """The rule before any fit: vision x presence floored at 0.01 (ours), BirdNET's species list at 0.03."""
    return Rule(1.0, GEO_FLOOR, LOCATION_FILTER_THRESHOLD if prior.name == BIRDNET else None)


def _with_rule(prior: BoundPrior, rule: Rule) -> BoundPrior:
    return replace(prior, exponent=rule.exponent, floor=rule.floor, threshold=rule.threshold, vagrant=None, fitted="")


def prior_report(prior: BoundPrior, vision, scores, truth, fitting) -> dict:
    """The rule in use and the fitted one, on both halves."""
    held = ~fitting
    alone = np.argmax(vision, axis=1)
    current = plain_rule(prior)
    args = (prior.alignment, prior.known)
    rule, fitted_fit = fit_rule(vision[fitting], scores[fitting], *args, truth[fitting])
    vagrants = []
    if rule is not None:
        rule, vagrants = vagrant_grid(vision, scores, *args, truth, rule, fitting)
        fitted_fit = outcome(top1(vision[fitting], scores[fitting], *args, rule), alone[fitting], truth[fitting])
    return {
        "vagrants": vagrants,
        "current": current.as_json(),
        "current_fit": outcome(top1(vision[fitting], scores[fitting], *args, current), alone[fitting], truth[fitting]),
        "current_held_out": outcome(top1(vision[held], scores[held], *args, current), alone[held], truth[held]),
        "fitted": rule.as_json() if rule else None,
        "fitted_fit": fitted_fit,
        "fitted_held_out": outcome(top1(vision[held], scores[held], *args, rule), alone[held], truth[held]),
    }


def oracle_report(priors: dict, vision, placed: pd.DataFrame, truth, held, data_root) -> dict | None:
    """The oracle on the held-out half, from the records of the first prior that has them on this machine."""
    for prior in priors.values():
        found = training_records(prior, data_root)
        if found is None:
            continue
        records = found[0]
        cells = cell_of(records["lat"].to_numpy(), records["lon"].to_numpy())
        recorded: dict[tuple, set] = {}
        for (a, b), taxon in zip(map(tuple, cells), records["taxon_index"].to_numpy()):
            recorded.setdefault((a, b), set()).add(int(taxon))
        photo_cells = cell_of(placed["lat"].to_numpy(dtype=float), placed["lon"].to_numpy(dtype=float))
        seen = [recorded.get(tuple(c), set()) for c in photo_cells[held]]
        picks = oracle_top1(vision[held], seen, prior.alignment)
        return {
            "records_of": prior.name,
            "records": int(len(records)),
            **outcome(picks, np.argmax(vision[held], 1), truth[held]),
        }
    return None


def choose_default(report: dict) -> tuple[str, str]:
    """(the default prior's name or "none", why): the prior whose fitted rule nets the most fixes on the fitting
    half, kept only if it does not break more than it fixes on the held-out half."""
    nets = {n: r["fitted_fit"]["fixed"] - r["fitted_fit"]["broke"] for n, r in report["priors"].items() if r["fitted"]}
    if not nets:
        return "none", "no prior's rule fixed more than it broke on the fitting half"
    best = max(nets, key=lambda n: (nets[n], n))
    held = report["priors"][best]["fitted_held_out"]
    if held["broke"] > held["fixed"]:
        return "none", f"{best}, the best on the fitting half, broke more than it fixed on the held-out half"
    held_text = f"on the held-out half {held['fixed']} fixed, {held['broke']} broke"
    return best, f"the most net fixes on the fitting half ({nets[best]:+d}); {held_text}"


def fit_model(classifier, priors: dict, table: pd.DataFrame, data_root) -> dict:
    start = time.perf_counter()
    placed, files, excluded = placed_photos(table, data_root)
    vision, readable = vision_of(classifier, files)
    placed, vision = placed[readable], vision[readable]
    excluded["unreadable now"] = int((~readable).sum())
    truth = placed["true_class_index"].to_numpy(dtype=int)
    fitting = placed["calibration_half"].astype(bool).to_numpy()
    lat, lon = placed["lat"].to_numpy(dtype=float), placed["lon"].to_numpy(dtype=float)
    day = np.array([check_date(d).timetuple().tm_yday if d else np.nan for d in placed["obs_date"].fillna("")])
    alone = np.argmax(vision, axis=1)
    report = {
        "model": classifier.name,
        "weights_sha256": classifier.weights_sha256,
        "split": "calibration_half (True: fitting, False: held out)",
        "photos": int(len(placed)),
        "fit_photos": int(fitting.sum()),
        "held_out_photos": int((~fitting).sum()),
        "excluded": excluded,
        "image_alone_held_out": outcome(alone[~fitting], alone[~fitting], truth[~fitting]),
        "priors": {n: prior_report(p, vision, p.scores_many(lat, lon, day), truth, fitting) for n, p in priors.items()},
        "oracle_held_out": oracle_report(priors, vision, placed, truth, ~fitting, data_root),
    }
    report["default"], report["default_why"] = choose_default(report)
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report, placed, vision


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = settings_from_args(args)
    path, table, classifier = model_table(args, settings)  # another model's table is refused
    if "lat" not in table.columns:
        raise ValueError(f"{path} has no places (make it with explorer-shipped, or a manifest with lat and lon)")
    priors = load_priors_for(settings, classifier)
    if not priors:
        raise ValueError(f"{args.model} has no geo-prior: nothing to fit")
    report, placed, vision = fit_model(classifier, priors, table, settings.data_root)
    if report["photos"] == 0:
        raise ValueError(f"no photo of {path} with a place is on this machine (--data-root?)")
    out = Path(args.out)
    whole = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    whole[args.model] = report
    out.write_text(json.dumps(dict(sorted(whole.items())), indent=1) + "\n", encoding="utf-8")
    if args.update_table:  # the table's geo columns as the app now combines (the Diagnose tab, the results pages)
        plain = {name: _with_rule(p, plain_rule(p)) for name, p in priors.items()}
        adopted = apply_entry(plain, report)
        save_table(update_geo_columns(table, placed, vision, adopted, classifier.labels), Path(path))
    held = report["image_alone_held_out"]
    print(f"{report['photos']} placed photos ({report['held_out_photos']} held out): image alone {held['top1']:.1%}")
    for name, r in report["priors"].items():
        cur, fit = r["current_held_out"], r["fitted_held_out"]
        rule = r["fitted"]["text"] if r["fitted"] else "the image alone"
        print(
            f"  {name}: in use {cur['fixed']} fixed / {cur['broke']} broke; "
            f"fitted ({rule}) {fit['fixed']} / {fit['broke']}"
        )
    print(f"default: {report['default']} ({report['default_why']}) -> {out}", file=sys.stdout)


GEO_COLUMNS = ("geo_pred_class_index", "geo_pred_name", "geo_confidence", "geo_true_prob", "geo_correct_1")


def update_geo_columns(table: pd.DataFrame, placed: pd.DataFrame, vision, priors: dict, labels) -> pd.DataFrame:
    """The table's geo columns recomputed for its placed photos with each prior's rule as the app now applies it
    (``priors`` as loaded: fitted rules, the default first); the table's own columns (``geo_*``) are the default
    prior's, the others ``<prior>__geo_*``. Photos without a place keep theirs (the image alone)."""
    from explorer.diagnose.schema import ALT_SEPARATOR, GEO_PRIOR_COLUMN
    from explorer.geo.combine import combine_many

    source, table = table, table.copy()
    own = next(iter(priors))
    lat, lon = placed["lat"].to_numpy(dtype=float), placed["lon"].to_numpy(dtype=float)
    day = np.array([check_date(d).timetuple().tm_yday if d else np.nan for d in placed["obs_date"].fillna("")])
    truth = placed["true_class_index"].to_numpy(dtype=int)
    rows = np.arange(len(placed))
    old_own = str(table[GEO_PRIOR_COLUMN].dropna().iloc[0]) if GEO_PRIOR_COLUMN in table and len(table) else own
    for name, prior in priors.items():
        at = "" if name == own else f"{name}{ALT_SEPARATOR}"
        was = "" if name == old_own else f"{name}{ALT_SEPARATOR}"
        for column in GEO_COLUMNS:  # first the prior's columns as they were (the unplaced photos' values)
            if f"{was}{column}" in source:
                table[f"{at}{column}"] = source[f"{was}{column}"].to_numpy()
        combined = combine_many(vision, prior.scores_many(lat, lon, day), prior.alignment, prior.known, **prior.rule)
        pred = combined.argmax(axis=1)
        values = {
            "geo_pred_class_index": pred,
            "geo_pred_name": [labels[i].scientific_name for i in pred],
            "geo_confidence": combined[rows, pred],
            "geo_true_prob": combined[rows, truth],
            "geo_correct_1": pred == truth,
        }
        for column, value in values.items():
            series = table[f"{at}{column}"].astype(object) if column == "geo_pred_name" else table[f"{at}{column}"]
            series.loc[placed.index] = value
            table[f"{at}{column}"] = series
    table[GEO_PRIOR_COLUMN] = own
    return table


if __name__ == "__main__":
    main()
