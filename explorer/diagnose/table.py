"""Building the evaluation table from a manifest and a model's logits (pure: no model call here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from explorer.diagnose.calibration import exact_calibration_columns
from explorer.diagnose.schema import (
    ALT_SEPARATOR,
    GEO_PRIOR_COLUMN,
    LOGIT_COLUMNS,
    PHOTO_HASH,
    ROLLUP_RANKS,
    STORED_LOGITS,
    TOP_K,
    calibration_half,
    validate_table,
)
from explorer.geo.combine import BoundPrior, combine_many
from explorer.identify.scope_check import ScopeRule, scope_columns
from explorer.models.classifier import Classifier
from explorer.photos.identity import content_hash
from explorer.photos.manifests import relative_path
from explorer.photos.places import check_date
from explorer.taxa.synonymy import Synonyms, load_synonyms
from explorer.taxa.taxonomy import RANKS, Lineage, Taxonomy, divergence_rank, lowest_common_ancestor, split_binomial


def truth_lineages(names: list[str], taxonomy: Taxonomy | None, scope: dict | None) -> list[Lineage]:
    """Lineage per true name (cached per distinct name)."""
    cache: dict[str, Lineage] = {}
    for name in set(names):
        if taxonomy is not None:  # the model's scope first; a truth outside it (a plant, say) still resolves
            lineage = taxonomy.lineage_for(name, scope)
            cache[name] = lineage if lineage.resolved_rank or not scope else taxonomy.lineage_for(name, None)
        else:
            genus, binomial = split_binomial(name)
            cache[name] = Lineage(ranks={"genus": genus, "species": binomial})
    return [cache[n] for n in names]


def match_truth(
    classifier: Classifier, names: list[str], lineages: list[Lineage], synonyms: Synonyms | None = None
) -> np.ndarray:
    """Output index of each true name through accepted names (a synonym matches: CUB's *Mareca strepera* is the
    Coral class *Anas strepera*), else the same iNat taxon id; -1 if none."""
    synonyms = synonyms if synonyms is not None else load_synonyms()
    labels = [lab for lab in classifier.labels if not lab.is_background]
    by_name = {synonyms.canonical(lab.scientific_name): lab.class_index for lab in reversed(labels)}
    by_id = {lab.lineage.taxon_id: lab.class_index for lab in labels if lab.lineage.taxon_id}
    out = []
    for name, lineage in zip(names, lineages):
        index = by_name.get(synonyms.canonical(name), -1)
        out.append(index if index >= 0 or not lineage.taxon_id else by_id.get(lineage.taxon_id, -1))
    return np.array(out, dtype=np.int64)


def _true_indices(classifier: Classifier, manifest: pd.DataFrame, names: list[str], truth: list[Lineage]):
    """The manifest's ``true_class_index`` when its labels were matched beforehand (models.label_matching: by class
    index or English name too), else each true name matched through synonyms."""
    if "true_class_index" in manifest:
        return manifest["true_class_index"].to_numpy(np.int64)
    return match_truth(classifier, names, truth)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _rollup_columns(classifier: Classifier, probs: np.ndarray, truth: list[Lineage]) -> dict[str, np.ndarray]:
    """For each rank: the largest clade's summed probability and whether that clade holds the truth."""
    out = {}
    for rank in ROLLUP_RANKS:
        ids, names = classifier.tree.group_ids[rank], classifier.tree.group_names[rank]
        membership = np.zeros((len(ids), max(len(names), 1)), dtype=np.float32)  # (N, G) one-hot
        known = ids >= 0
        membership[np.flatnonzero(known), ids[known]] = 1.0
        sums = probs @ membership  # (n, G)
        best = sums.argmax(axis=1)
        out[f"rollup_prob_{rank}"] = sums[np.arange(len(best)), best].astype(np.float64)
        best_names = [names[b] if names else None for b in best]
        out[f"rollup_correct_{rank}"] = np.array(
            [t.at(rank) is not None and t.at(rank) == b for t, b in zip(truth, best_names)]
        )
    return out


def build_eval_table(
    classifier: Classifier,
    manifest: pd.DataFrame,
    logits: np.ndarray,
    statuses: list[str],
    taxonomy: Taxonomy | None = None,
    data_root: Path | None = None,
    prior: BoundPrior | dict[str, BoundPrior] | None = None,
    scope: ScopeRule | None = None,
    gate_logits: np.ndarray | None = None,
) -> pd.DataFrame:
    """The evaluation table from a manifest and the model's logits (pure: no model call). With a geo-prior
    (a BoundPrior for this classifier) and lat/lon columns in the manifest, the GEO_SCHEMA columns too; with the
    model's scope rule (and the ImageNet gate's logits when the rule needs them), the SCOPE_SCHEMA columns. Several
    priors ({name: BoundPrior}, the default first): the first fills the geo_* columns (its name in ``geo_prior``),
    each other one its own ``<name>__geo_*`` columns (see explorer.diagnose.geo_effect.geo_view)."""
    if len(manifest) != len(logits):
        raise ValueError(f"{len(manifest)} manifest rows but {len(logits)} logit rows")
    names = manifest["scientific_name"].astype(str).tolist()
    truth = truth_lineages(names, taxonomy, classifier.card.taxon_scope or None)
    true_index = _true_indices(classifier, manifest, names, truth)
    probs = _softmax(logits.astype(np.float64))  # (n, N)
    order = np.argsort(-probs, axis=1, kind="stable")  # (n, N) classes, most likely first
    frame = pd.DataFrame(
        {
            **_photo_columns(classifier, manifest, statuses, data_root),
            **_truth_columns(names, manifest, truth, true_index),
            **_prediction_columns(classifier, probs, order, true_index),
        }
    )
    pred_lineages = [classifier.labels[i].lineage for i in order[:, 0]]
    frame["divergence_rank"] = [
        _divergence(t, p, bg) for t, p, bg in zip(truth, pred_lineages, frame["pred_is_background"])
    ]
    lcas = [lowest_common_ancestor(t, p) for t, p in zip(truth, pred_lineages)]
    frame["lca_rank"] = [lca[0] if lca else None for lca in lcas]
    frame["lca_name"] = [lca[1] if lca else None for lca in lcas]
    for column, values in {
        **_rollup_columns(classifier, probs, truth),
        **_logit_columns(logits, order, true_index),
    }.items():
        frame[column] = values
    frame["calibration_half"] = calibration_half(frame["photo_id"])
    _add_prior_columns(frame, manifest, probs, true_index, prior, classifier.labels)
    bad = frame["status"] != "ok"
    geo_correct = [c for c in frame.columns if c.endswith("geo_correct_1")]
    if scope is not None:
        _add_scope_columns(frame, scope, logits, classifier.background_index, gate_logits, bad)
    frame.loc[bad, ["correct_1", "correct_k", *geo_correct]] = False
    return validate_table(frame)


def _add_scope_columns(frame, rule: ScopeRule, logits, background, gate_logits, bad) -> None:
    for column, values in scope_columns(rule, logits, background, gate_logits).items():
        frame[column] = values
    frame.loc[bad, ["scope_score", "novelty_score"]] = np.nan
    frame.loc[bad, "in_scope"] = False


def _photo_columns(classifier: Classifier, manifest: pd.DataFrame, statuses: list[str], data_root) -> dict:
    return {
        "photo_id": (manifest["source"].astype(str) + ":" + manifest["path"].astype(str)).tolist(),
        PHOTO_HASH: [content_hash(p) for p in manifest["abs_path"]],
        "path": [relative_path(p, data_root) for p in manifest["abs_path"]],
        "source": manifest["source"].astype(str).tolist(),
        "note": manifest["note"].fillna("").astype(str).tolist(),
        "status": statuses,
        "model": classifier.name,
        "weights_sha256": classifier.weights_sha256,
    }


def _truth_columns(names: list[str], manifest: pd.DataFrame, truth: list[Lineage], true_index: np.ndarray) -> dict:
    return {
        "true_name": names,
        "true_common_name": manifest["common_name"].fillna("").astype(str).tolist(),
        "true_class_index": true_index,
        "in_vocab": true_index >= 0,
        "true_resolved_rank": [t.resolved_rank for t in truth],
        **{f"true_{r}": [t.at(r) for t in truth] for r in RANKS},
    }


def _prediction_columns(classifier: Classifier, probs: np.ndarray, order: np.ndarray, true_index: np.ndarray) -> dict:
    labels, top, pred = classifier.labels, order[:, :TOP_K], order[:, 0]
    rows = np.arange(len(pred))
    return {
        "pred_class_index": pred,
        "pred_name": [labels[i].scientific_name for i in pred],
        "pred_common_name": [labels[i].common_name for i in pred],
        "pred_is_background": [labels[i].is_background for i in pred],
        **{f"pred_{r}": [labels[i].lineage.at(r) for i in pred] for r in RANKS},
        "confidence": probs[rows, pred],
        "true_prob": np.where(true_index >= 0, probs[rows, np.maximum(true_index, 0)], np.nan),
        "topk_class_index": [list(map(int, t)) for t in top],
        "topk_name": [[labels[i].scientific_name for i in t] for t in top],
        "topk_prob": [list(map(float, probs[r, t])) for r, t in enumerate(top)],
        "correct_1": pred == true_index,
        "correct_k": (top == true_index[:, None]).any(axis=1) & (true_index >= 0),
    }


def _logit_columns(logits: np.ndarray, order: np.ndarray, true_index: np.ndarray) -> dict[str, np.ndarray]:
    """The top STORED_LOGITS logits, largest first (-inf past the class count), and the true class's logit."""
    top_logits = np.take_along_axis(logits, order[:, :STORED_LOGITS], axis=1)  # (n, <=20)
    columns = {c: top_logits[:, i] if i < top_logits.shape[1] else -np.inf for i, c in enumerate(LOGIT_COLUMNS)}
    rows = np.arange(len(logits))
    columns["true_logit"] = np.where(true_index >= 0, logits[rows, np.maximum(true_index, 0)], np.nan)
    exact = exact_calibration_columns(logits)  # a temperature fit over ALL the logits (calibration.py)
    return columns | {name: values.astype(np.float32) for name, values in exact.items()}


def _add_prior_columns(frame, manifest, probs, true_index, prior, labels) -> None:
    priors = {prior.name: prior} if isinstance(prior, BoundPrior) else dict(prior or {})
    if priors and {"lat", "lon"} <= set(manifest.columns):
        for i, one in enumerate(priors.values()):
            _add_geo_columns(frame, manifest, probs, true_index, one, labels, "" if i else None)


def _add_geo_columns(frame, manifest, probs, true_index, prior, labels, prefix: str | None = None) -> None:
    """Re-rank every photo that has a place with the geo-prior (same combination as the app). ``prefix`` None: the
    table's own geo_* columns and place; "": another prior's columns, ``<prior name>__geo_*``."""
    lat = pd.to_numeric(manifest["lat"], errors="coerce").to_numpy(dtype=float)
    lon = pd.to_numeric(manifest["lon"], errors="coerce").to_numpy(dtype=float)
    dates = manifest["date"].fillna("").astype(str) if "date" in manifest else pd.Series([""] * len(frame))
    day = np.array([check_date(d).timetuple().tm_yday if d else np.nan for d in dates], dtype=float)
    scores = prior.scores_many(lat, lon, day)
    combined = combine_many(probs, scores, prior.alignment, prior.known, **prior.rule)
    geo_pred = combined.argmax(axis=1)
    rows = np.arange(len(frame))
    if prefix is None:
        frame["lat"], frame["lon"], frame["obs_date"] = lat, lon, dates.tolist()
        frame["location_source"] = (
            manifest["location_source"].fillna("").astype(str).tolist() if "location_source" in manifest else "manifest"
        )
        frame[GEO_PRIOR_COLUMN] = prior.name
    at = "" if prefix is None else f"{prior.name}{ALT_SEPARATOR}"
    frame[f"{at}geo_pred_class_index"] = geo_pred
    frame[f"{at}geo_pred_name"] = [labels[i].scientific_name for i in geo_pred]
    frame[f"{at}geo_confidence"] = combined[rows, geo_pred]
    frame[f"{at}geo_true_prob"] = np.where(true_index >= 0, combined[rows, np.maximum(true_index, 0)], np.nan)
    frame[f"{at}geo_correct_1"] = geo_pred == true_index


def _divergence(truth: Lineage, predicted: Lineage, background: bool) -> str:
    if background:
        return "no prediction"  # the model said "nothing here"
    rank = divergence_rank(truth, predicted)
    if rank == "correct" and truth.at("species") != predicted.at("species"):
        return "unknown"
    return rank
