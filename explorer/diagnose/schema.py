"""The evaluation table's schema: one row per labelled photo; stored as parquet, validated on load."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.taxa.taxonomy import RANKS

TOP_K = 5
STORED_LOGITS = 20  # top logits kept per photo for temperature fitting
LOGIT_COLUMNS = tuple(f"top_logit_{i:02d}" for i in range(STORED_LOGITS))
ROLLUP_RANKS = tuple(reversed(RANKS[:-1]))  # genus, family, ..., kingdom

SCHEMA: dict[str, str] = {
    "photo_id": "stable id: source + path",
    "path": "photo path relative to the data root (or absolute when outside it)",
    "source": "which photo set",
    "note": "caveat from the manifest (e.g. a doubtful label)",
    "status": "'ok' or why the photo could not be read",
    "model": "model card name",
    "weights_sha256": "hash of the weights file",
    "true_name": "true scientific name",
    "true_common_name": "true common name",
    "true_class_index": "model output index of the truth, -1 when out of vocabulary",
    "in_vocab": "the model has a class for the truth",
    "true_resolved_rank": "deepest rank at which the truth's lineage is known",
    **{f"true_{r}": f"truth's {r}" for r in RANKS},
    "pred_class_index": "top-1 output index",
    "pred_name": "top-1 scientific name",
    "pred_common_name": "top-1 common name",
    "pred_is_background": "top-1 is the model's 'nothing here' class",
    **{f"pred_{r}": f"top-1's {r}" for r in RANKS},
    "confidence": "top-1 probability",
    "true_prob": "probability of the true class (NaN when out of vocabulary)",
    "topk_class_index": f"top-{TOP_K} output indices",
    "topk_name": f"top-{TOP_K} scientific names",
    "topk_prob": f"top-{TOP_K} probabilities",
    "correct_1": "top-1 is the true species",
    "correct_k": f"the true species is in the top-{TOP_K}",
    "divergence_rank": "first rank where top-1 leaves the truth ('correct', 'species', 'genus', ..., 'unknown')",
    "lca_rank": "rank of the lowest common ancestor of truth and top-1",
    "lca_name": "its name",
    **{f"rollup_prob_{r}": f"largest summed probability of any {r}" for r in ROLLUP_RANKS},
    **{f"rollup_correct_{r}": f"that {r} contains the truth" for r in ROLLUP_RANKS},
    **{c: "the i-th largest logit (for temperature fitting)" for c in LOGIT_COLUMNS},
    "true_logit": "logit of the true class (NaN when out of vocabulary)",
    "calibration_half": "True for the half used to fit a temperature (stable hash of photo_id)",
}
# Optional (tables from before lack them; the calibration then falls back to the top logits): for an exact
# temperature fit over ALL the logits, at each inverse temperature beta = 1/T of a fixed grid, the top-1's negative
# log-probability and its derivative in beta (calibration.exact_calibration_columns). 34 float32 per photo.
CALIBRATION_BETAS = tuple(2.0 ** (k / 4) for k in range(-8, 9))  # 1/T from 1/4 to 4; T = 1 at index 8
TOP_NLL_COLUMNS = tuple(f"top_nll_{k:02d}" for k in range(len(CALIBRATION_BETAS)))
TOP_GAP_COLUMNS = tuple(f"top_gap_{k:02d}" for k in range(len(CALIBRATION_BETAS)))
EXACT_CALIBRATION_SCHEMA: dict[str, str] = {
    **{c: f"-log p(top-1) over all logits at 1/T = {b:g}" for c, b in zip(TOP_NLL_COLUMNS, CALIBRATION_BETAS)},
    **{
        c: f"top logit - E_p[logit] at 1/T = {b:g} (the derivative's minus)"
        for c, b in zip(TOP_GAP_COLUMNS, CALIBRATION_BETAS)
    },
}
# Optional: present when the photos have a place (manifest columns lat, lon and optionally date) and the model
# has a geo-prior. The dashboard's "what the prior fixed and broke" reads these.
# Optional: present when the model's card has per-rank heads (models.rank_heads), read from the same forward pass
IDENTITY_SCHEMA: dict[str, str] = {
    "photo_hash": "the photo by content: SHA-256 of the file's bytes, first 24 hex digits (None: unreadable); "
    "tables are compared on it, whatever their folders",
}
PHOTO_HASH = "photo_hash"

HEAD_SCHEMA: dict[str, str] = {
    **{f"head_{r}": f"what the {r} head says" for r in ("order", "family", "genus", "species")},
    **{f"head_prob_{r}": "its probability" for r in ("order", "family", "genus", "species")},
    **{
        f"head_knows_{r}": f"the {r} head has a class for the truth's {r}"
        for r in ("order", "family", "genus", "species")
    },
}
# Optional: present in tables made since the label check (explorer.diagnose.label_issues)
LABEL_ISSUE_SCHEMA: dict[str, str] = {
    "label_issue_score": "how likely the given label is wrong, 0..1: one minus the mean support of the label at "
    "species, genus, family and order by the model and the photo's nearest neighbours (NaN: unknown species)",
    "label_issue_rank": "coarsest rank at which the label looks wrong ('' none; 'species': right at genus)",
    "label_class_level": "the label's usual probability on this table (its class's mean, drawn to the median)",
    "label_cl_flag": "confident learning: the photo is off the diagonal of the confident joint",
    "label_cl_guess": "the class confident learning points to: the label's own when on the diagonal, another when "
    "off it (-1: no class reaches its threshold)",
    "label_neighbours": "photo_id of the 10 nearest photos in the model's embedding",
    "label_neighbour_sims": "their cosine similarities",
}
# Optional: present when explorer.tools.subject_columns has run (explorer.diagnose.surroundings)
SUBJECT_SCHEMA: dict[str, str] = {
    "off_subject_share": "share of the top-1 Grad-CAM's mass outside the organism, 0..1 (the organism located by "
    "an ImageNet model's map of the subject's classes, at 20 % of its peak; NaN: not measured or none found)",
    "subject_area": "share of the photo the organism's mask covers (a map spread evenly scores 1 - this)",
    "p_without_subject": "probability of the top-1 with the organism blurred away (Gaussian, sigma 10 px)",
    "p_without_surroundings": "probability of the top-1 with everything but the organism blurred away",
    "kept_without_subject": "the top-1 stays the top-1 with the organism blurred away",
    "subject_locator": "the ImageNet model that located the organism",
}
GEO_SCHEMA: dict[str, str] = {
    "lat": "latitude of the photo (NaN: no place)",
    "lon": "longitude of the photo",
    "obs_date": "date of the photo, YYYY-MM-DD ('' for none)",
    "location_source": "where the place came from (e.g. a held-out record of the true species)",
    "geo_pred_class_index": "top-1 output index after the geo-prior (= pred_class_index without a place)",
    "geo_pred_name": "its scientific name",
    "geo_confidence": "its combined probability",
    "geo_true_prob": "combined probability of the true class (NaN when out of vocabulary)",
    "geo_correct_1": "top-1 after the geo-prior is the true species",
}
GEO_PRIOR_COLUMN = "geo_prior"  # the name of the prior behind the geo_* columns (tables from before: absent)
ALT_SEPARATOR = "__"  # another prior's columns: <prior name>__geo_pred_class_index, ...
CATEGORICAL = (
    "source",
    "note",
    "status",
    "model",
    "weights_sha256",
    "true_name",
    "true_common_name",
    "true_resolved_rank",
    *(f"true_{r}" for r in RANKS),
    "pred_name",
    "pred_common_name",
    *(f"pred_{r}" for r in RANKS),
    "divergence_rank",
    "lca_rank",
    "lca_name",
    "location_source",
    "geo_pred_name",
    GEO_PRIOR_COLUMN,
    "scope_kind",
    "subject_locator",
)


def validate_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Raise ValueError naming every missing column; returns the frame unchanged."""
    missing = [c for c in SCHEMA if c not in frame.columns]
    if missing:
        raise ValueError(f"evaluation table lacks column(s) {missing}; see docs/reference/evaluation-table.md")
    return frame


def calibration_half(photo_ids) -> np.ndarray:
    """A stable half of the photos (hash of the id, not row order) for fitting a temperature."""
    return np.array([hashlib.blake2b(str(p).encode(), digest_size=1).digest()[0] % 2 == 0 for p in photo_ids])


def optimise_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """Names and ranks as categories: the dashboard regroups a million rows in a fraction of a second."""
    other_priors = [c for c in frame.columns if c.endswith(ALT_SEPARATOR + "geo_pred_name")]
    return frame.astype({c: "category" for c in [*CATEGORICAL, *other_priors] if c in frame.columns})


def save_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write a table as parquet, its categories (load_table's) back as plain strings, as every table is stored."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = {c: frame[c].astype(frame[c].cat.categories.dtype) for c in frame.select_dtypes("category").columns}
    (frame.assign(**plain) if plain else frame).to_parquet(path, index=False)
    return path


def read_photo_columns(path: Path, photo_id: str, columns: list[str]) -> dict:
    """``columns`` of the row of ``photo_id`` in the table file at ``path``, read from the file alone (the
    per-photo lists the dashboard does not keep in memory); {} when the file or the photo is not there."""
    import pyarrow.parquet as pq

    try:
        found = pq.read_table(path, columns=["photo_id", *columns], filters=[("photo_id", "=", str(photo_id))])
    except (OSError, ValueError, KeyError):
        return {}
    return {c: found[c][0].as_py() for c in columns} if found.num_rows else {}


def load_table(path: Path) -> pd.DataFrame:
    """Read and validate an evaluation table (names and ranks as categories)."""
    return optimise_dtypes(validate_table(pd.read_parquet(path)))
