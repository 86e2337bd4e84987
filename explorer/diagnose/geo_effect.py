"""What a place changed: the geo-prior's fixes and breaks, from the evaluation table's optional geo columns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from explorer.diagnose.metrics import UNKNOWN
from explorer.diagnose.schema import ALT_SEPARATOR, GEO_PRIOR_COLUMN

GEO_KINDS = ("fixed", "broke", "changed")


def has_geo(table: pd.DataFrame) -> bool:
    """The table was built with places and a geo-prior (evaluate.GEO_SCHEMA columns)."""
    return {"lat", "geo_correct_1", "geo_pred_class_index"} <= set(table.columns)


GEO_FIELDS = ("geo_pred_class_index", "geo_pred_name", "geo_confidence", "geo_true_prob", "geo_correct_1")


def table_priors(table: pd.DataFrame) -> list[str]:
    """The geo-priors a table has columns for, the one behind its geo_* columns first ("geo-prior" for a table
    from before priors were named)."""
    if not has_geo(table):
        return []
    first = str(table[GEO_PRIOR_COLUMN].iloc[0]) if GEO_PRIOR_COLUMN in table and len(table) else "geo-prior"
    suffix = ALT_SEPARATOR + "geo_correct_1"
    return [first, *(c[: -len(suffix)] for c in table.columns if c.endswith(suffix))]


def geo_view(table: pd.DataFrame, prior: str | None) -> pd.DataFrame:
    """The table with ``prior``'s answers in the geo_* columns (None or the table's first prior: unchanged), so
    that every function here reads either prior. ValueError for a prior the table has no columns for."""
    priors = table_priors(table)
    if not prior or not priors or prior == priors[0]:
        return table
    if prior not in priors:
        raise ValueError(f"this table has no columns for the geo-prior {prior!r}; it has {priors}")
    columns = {field: table[f"{prior}{ALT_SEPARATOR}{field}"] for field in GEO_FIELDS}
    return table.assign(**columns, **{GEO_PRIOR_COLUMN: prior})


def compare_priors(table: pd.DataFrame) -> pd.DataFrame:
    """One row per geo-prior on the same photos with a place: top-1 image alone and with it, fixed, broke, changed."""
    rows = []
    for prior in table_priors(table):
        effect = geo_effect(geo_view(table, prior))
        rows.append(
            {
                "prior": prior,
                "photos": effect.photos_with_place,
                "top1_image": effect.top1_vision,
                "top1_with_prior": effect.top1_geo,
                "fixed": effect.fixed,
                "broke": effect.broke,
                "net": effect.fixed - effect.broke,
                "changed": effect.changed,
            }
        )
    return pd.DataFrame(
        rows, columns=["prior", "photos", "top1_image", "top1_with_prior", "fixed", "broke", "net", "changed"]
    )


def _placed(table: pd.DataFrame) -> np.ndarray:
    """Mask of readable, in-vocabulary photos that had a place: the only ones the prior could act on."""
    return (
        (table["status"] == "ok").to_numpy(bool)
        & table["in_vocab"].to_numpy(bool)
        & ~np.isnan(table["lat"].to_numpy(float))
    )


def _geo_outcomes(table: pd.DataFrame, placed: np.ndarray) -> dict[str, np.ndarray]:
    before, after = table["correct_1"].to_numpy(bool), table["geo_correct_1"].to_numpy(bool)
    changed = table["geo_pred_class_index"].to_numpy() != table["pred_class_index"].to_numpy()
    return {
        "fixed": placed & ~before & after,
        "broke": placed & before & ~after,
        "changed": placed & changed,
        "before": placed & before,
        "after": placed & after,
    }


@dataclass(frozen=True)
class GeoEffect:
    """What the geo-prior did to the top-1 of the photos that had a place."""

    photos_with_place: int
    photos_without_place: int
    top1_vision: float
    top1_geo: float
    changed: int
    fixed: int
    broke: int
    wrong_to_other_wrong: int
    location_sources: dict[str, int]


def geo_effect(table: pd.DataFrame) -> GeoEffect:
    """Top-1 with and without the prior on photos with a place, and how often it fixed / broke / changed it."""
    placed = _placed(table)
    outcome = _geo_outcomes(table, placed)
    n = int(placed.sum())
    readable = int(((table["status"] == "ok").to_numpy(bool) & table["in_vocab"].to_numpy(bool)).sum())
    sources = table["location_source"][placed].value_counts() if n else pd.Series(dtype=int)
    return GeoEffect(
        photos_with_place=n,
        photos_without_place=readable - n,
        top1_vision=float(outcome["before"].sum() / n) if n else float("nan"),
        top1_geo=float(outcome["after"].sum() / n) if n else float("nan"),
        changed=int(outcome["changed"].sum()),
        fixed=int(outcome["fixed"].sum()),
        broke=int(outcome["broke"].sum()),
        wrong_to_other_wrong=int((outcome["changed"] & ~outcome["before"] & ~outcome["after"]).sum()),
        location_sources={str(k): int(v) for k, v in sources.items() if v},
    )


def geo_effect_by_clade(table: pd.DataFrame, rank: str, min_photos: int = 1) -> pd.DataFrame:
    """Per true clade at ``rank``: photos with a place, how many the prior fixed and broke (not only the net),
    and top-1 without and with it; the clades where it did most first."""
    placed = _placed(table)
    columns = ["clade", "photos", "fixed", "broke", "net", "top1_vision", "top1_geo"]
    if not placed.any():
        return pd.DataFrame(columns=columns)
    outcome = _geo_outcomes(table, placed)
    clade = table[f"true_{rank}"]
    if not isinstance(clade.dtype, pd.CategoricalDtype):
        clade = clade.astype("category")
    codes = clade.cat.codes.to_numpy() + 1  # 0: unknown clade
    names = np.array([UNKNOWN, *map(str, clade.cat.categories)], dtype=object)
    count = lambda mask: np.bincount(codes[mask], minlength=len(names))  # noqa: E731
    photos = count(placed)
    keep = photos >= max(min_photos, 1)
    fixed, broke = count(outcome["fixed"])[keep], count(outcome["broke"])[keep]
    out = pd.DataFrame(
        {
            "clade": names[keep],
            "photos": photos[keep],
            "fixed": fixed,
            "broke": broke,
            "net": fixed - broke,
            "top1_vision": count(outcome["before"])[keep] / photos[keep],
            "top1_geo": count(outcome["after"])[keep] / photos[keep],
        }
    )
    activity = out["fixed"] + out["broke"]
    return (
        out.assign(_a=activity).sort_values(["_a", "photos"], ascending=False).drop(columns="_a").reset_index(drop=True)
    )


def geo_rows(
    table: pd.DataFrame, kind: str, rank: str | None = None, clade: str | None = None, limit: int = 200
) -> pd.DataFrame:
    """The photos behind a count: those the prior fixed, broke, or changed (optionally in one true clade)."""
    if kind not in GEO_KINDS:
        raise ValueError(f"kind must be one of {GEO_KINDS}, got {kind!r}")
    keep = _geo_outcomes(table, _placed(table))[kind]
    if rank and clade is not None:
        column = table[f"true_{rank}"]
        keep &= column.isna().to_numpy() if clade == UNKNOWN else (column == clade).to_numpy(bool)
    return table.iloc[np.flatnonzero(keep)[:limit]].reset_index(drop=True)
