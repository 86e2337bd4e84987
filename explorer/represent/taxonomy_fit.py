"""Does the model learn taxonomy? Measured on its embeddings of labelled photos, per rank, with the documents'
protocols: clustering agreement (UMAP to 50 dimensions, Ward agglomerative clustering with as many clusters as
true taxa, adjusted and normalised mutual information against the truth) and leave-one-out k-NN retrieval
(Recall@k: one of the k nearest other photos, by cosine, is of the same taxon), with a bootstrap interval.

The offline tool ``explorer-represent`` writes the figures and a 2-D map of the photos to
``NAME.representation.json`` beside the table; the dashboard only reads them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from explorer.models.features import normalise_rows

RANKS_MEASURED = ("order", "family", "genus", "species")
REDUCED_DIM = 50
BOOTSTRAP = 1000
SEED = 0
SUFFIX = ".representation.json"


@dataclass(frozen=True)
class RankFit:
    """One rank's figures. Recall counts only photos whose taxon has another photo to find."""

    rank: str
    photos: int  # photos with a known taxon at this rank
    taxa: int
    ami: float
    nmi: float
    queries: int  # photos whose taxon has at least one other photo
    recall_1: float
    recall_1_low: float
    recall_1_high: float
    recall_5: float
    recall_5_low: float
    recall_5_high: float


def representation_path(table_path: Path) -> Path:
    table_path = Path(table_path)
    return table_path.with_name(table_path.stem + SUFFIX)


def cluster_agreement(points: np.ndarray, labels) -> tuple[float, float]:
    """(AMI, NMI) of Ward clustering into as many clusters as there are labels, against the labels."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

    labels = np.asarray(labels)
    taxa = len(np.unique(labels))
    if taxa < 2 or taxa >= len(labels):  # one cluster, or one photo per taxon: nothing to measure
        return float("nan"), float("nan")
    found = AgglomerativeClustering(n_clusters=taxa, linkage="ward").fit_predict(points)
    return float(adjusted_mutual_info_score(labels, found)), float(normalized_mutual_info_score(labels, found))


def neighbour_order(vectors: np.ndarray, k: int) -> np.ndarray:
    """(n, k) positions of each row's k most cosine-similar other rows, nearest first (ties: lower position)."""
    unit = normalise_rows(np.asarray(vectors, dtype=np.float32))
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    k = min(k, len(unit) - 1)
    order = np.argsort(-sims, axis=1, kind="stable")
    return order[:, :k]


def knn_hits(vectors: np.ndarray, labels, ks=(1, 5)) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """({k: hit}, counted): hit[i] = one of row i's k nearest others shares its label; counted[i] = its label has
    another row at all (a photo alone in its taxon cannot be retrieved, so it is left out)."""
    labels = np.asarray(labels)
    if len(labels) < 2:
        return {k: np.zeros(len(labels), bool) for k in ks}, np.zeros(len(labels), bool)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    counted = counts[inverse] > 1
    same = labels[neighbour_order(vectors, max(ks))] == labels[:, None]
    return {k: same[:, :k].any(axis=1) for k in ks}, counted


def bootstrap_interval(hits: np.ndarray, rounds: int = BOOTSTRAP, seed: int = SEED) -> tuple[float, float]:
    """95 % percentile interval of the mean of 0/1 hits, resampling photos."""
    hits = np.asarray(hits, dtype=np.float64)
    if len(hits) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = hits[rng.integers(0, len(hits), size=(rounds, len(hits)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def reduce(vectors: np.ndarray, dim: int = REDUCED_DIM, seed: int = SEED) -> np.ndarray:
    """UMAP (cosine) to ``dim`` dimensions; vectors already that small, or too few photos, are kept as they are."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape[1] <= dim or len(vectors) <= dim + 2:
        return vectors
    import umap

    return umap.UMAP(n_components=dim, metric="cosine", random_state=seed, n_jobs=1).fit_transform(vectors)


def layout_2d(vectors: np.ndarray, seed: int = SEED) -> np.ndarray:
    """(n, 2) UMAP map (cosine) of the photos, for the dashboard."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if len(vectors) < 4:
        return np.zeros((len(vectors), 2), dtype=np.float32)
    import umap

    neighbours = min(15, len(vectors) - 1)
    return umap.UMAP(
        n_components=2, metric="cosine", random_state=seed, n_jobs=1, n_neighbors=neighbours
    ).fit_transform(vectors)


def rank_fit(vectors: np.ndarray, reduced: np.ndarray, labels, rank: str) -> RankFit:
    """The figures for one rank over photos whose taxon at that rank is known (labels None or '' are dropped)."""
    labels = np.asarray([str(v) if v is not None and v == v and str(v) else "" for v in labels], dtype=object)
    known = labels != ""
    vectors, reduced, labels = vectors[known], reduced[known], labels[known]
    ami, nmi = cluster_agreement(reduced, labels)
    hit, counted = knn_hits(vectors, labels)
    recall = {}
    for k, found in hit.items():
        hits = found[counted]
        low, high = bootstrap_interval(hits)
        recall[k] = (float(hits.mean()) if len(hits) else float("nan"), low, high, int(counted.sum()))
    return RankFit(
        rank, int(len(labels)), int(len(np.unique(labels))), ami, nmi, recall[1][3], *recall[1][:3], *recall[5][:3]
    )


def write_representation(path: Path, report: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, allow_nan=True) + "\n", encoding="utf-8")
    return path


def load_representation(path: Path) -> dict:
    """A stored report; ValueError when it is not one."""
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        report["ranks"] = [RankFit(**r) for r in report["ranks"]]
        report["map"] = {k: np.asarray(v) for k, v in report["map"].items()}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{Path(path).name} is not a representation report: {err}") from err
    return report


def report_dict(model: str, weights_sha256: str, sources: dict, fits: list[RankFit], photo_ids, xy) -> dict:
    xy = np.round(np.asarray(xy, dtype=np.float64), 3)
    return {
        "model": model,
        "weights_sha256": weights_sha256,
        "sources": {str(k): int(v) for k, v in sources.items()},
        "protocol": f"UMAP (cosine, seed {SEED}) to {REDUCED_DIM}-d, Ward clustering, AMI/NMI; leave-one-out "
        f"cosine k-NN on the pooled features; {BOOTSTRAP} bootstrap resamples of the photos",
        "ranks": [asdict(f) for f in fits],
        "map": {"photo_id": [str(p) for p in photo_ids], "x": xy[:, 0].tolist(), "y": xy[:, 1].tolist()},
    }
