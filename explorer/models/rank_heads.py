"""Per-rank linear heads on a model's embedding (the BIOSCAN recipe: one linear classifier per taxonomic rank on
frozen features). A card names them with ``rank_heads``: a JSON file in the checkpoint folder's ``rank_heads/``
(every JSON directly in the checkpoint folder is read as a model card),

    {"weights": "NAME.safetensors", "source": "how they were trained", "input": "_fc",
     "ranks": {"order": ["Passeriformes", ...], "family": [...], "genus": [...], "species": [...]}}

whose safetensors hold ``<rank>.weight`` (classes, D) and ``<rank>.bias`` (classes,) for each rank, D being the
size of what they read: with "input" naming a module (e.g. the species head ``_fc``), that module's input, the
same features the species head reads; without it, the embedding (``explorer.models.features``: the CAM layer's pooled
output). Either is captured in the identification's own forward pass: no second pass."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEAD_RANKS = ("order", "family", "genus", "species")


@dataclass(frozen=True)
class RankHead:
    rank: str
    names: tuple[str, ...]
    weight: np.ndarray  # (classes, D) float32
    bias: np.ndarray  # (classes,) float32

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, classes) softmax of the head's logits for (n, D) embeddings."""
        logits = np.asarray(embeddings, dtype=np.float64) @ self.weight.T.astype(np.float64) + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class RankHeads:
    heads: tuple[RankHead, ...]  # deepest last
    source: str = ""
    input_module: str = ""  # the module whose input the heads read; "": the embedding (the CAM layer, pooled)

    @property
    def dim(self) -> int:
        return int(self.heads[0].weight.shape[1])

    def answers(self, embeddings: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{rank: (best class name per row, its probability)} for (n, D) embeddings."""
        out = {}
        for head in self.heads:
            probs = head.probabilities(embeddings)
            best = probs.argmax(axis=1)
            out[head.rank] = (np.asarray(head.names, dtype=object)[best], probs[np.arange(len(best)), best])
        return out


def load_rank_heads(path: Path) -> RankHeads:
    """The heads a card names; ValueError saying what does not fit."""
    from safetensors.numpy import load_file

    path = Path(path)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        tensors = load_file(str(path.with_name(spec["weights"])))
        ranks = spec["ranks"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"rank heads {path.name}: cannot read them ({err})") from err
    heads = []
    for rank, names in ranks.items():
        if rank not in HEAD_RANKS:
            raise ValueError(f"rank heads {path.name}: unknown rank {rank!r}; known: {list(HEAD_RANKS)}")
        weight, bias = tensors.get(f"{rank}.weight"), tensors.get(f"{rank}.bias")
        if weight is None or bias is None:
            raise ValueError(f"rank heads {path.name}: no {rank}.weight / {rank}.bias in {spec['weights']}")
        if weight.ndim != 2 or weight.shape[0] != len(names) or bias.shape != (len(names),):
            raise ValueError(
                f"rank heads {path.name}: {rank} has {len(names)} names but weights {tuple(weight.shape)} "
                f"and bias {tuple(bias.shape)}"
            )
        heads.append(RankHead(rank, tuple(names), weight.astype(np.float32), bias.astype(np.float32)))
    if not heads or len({h.weight.shape[1] for h in heads}) != 1:
        raise ValueError(f"rank heads {path.name}: need at least one rank, all on the same embedding size")
    heads.sort(key=lambda h: HEAD_RANKS.index(h.rank))
    return RankHeads(tuple(heads), str(spec.get("source", "")), str(spec.get("input", "")))


def load_birder_rank_heads(files: dict[str, Path], input_module: str) -> RankHeads:
    """Per-rank birder linear heads (the seed model cards' ``{"class_to_idx", "state"}`` files), all reading the
    input of ``input_module`` (the network's classifier). iNat 2021 class names become binomials at species."""
    from explorer.models.formats.birder import read_birder_head
    from explorer.taxa.inat21 import parse_inat21

    heads = []
    for rank, path in files.items():
        if rank not in HEAD_RANKS:
            raise ValueError(f"rank heads: unknown rank {rank!r}; known: {list(HEAD_RANKS)}")
        names, weight, bias = read_birder_head(path)
        parsed = [parse_inat21(n) for n in names]
        if all(parsed):
            names = tuple(p.ranks[rank] for p in parsed)
        heads.append(RankHead(rank, tuple(names), weight.astype(np.float32), bias.astype(np.float32)))
    if not heads or len({h.weight.shape[1] for h in heads}) != 1:
        raise ValueError("rank heads: need at least one rank, all on the same feature size")
    heads.sort(key=lambda h: HEAD_RANKS.index(h.rank))
    sources = ", ".join(f"{rank}: {Path(path).name}" for rank, path in files.items())
    return RankHeads(tuple(heads), f"birder linear heads ({sources})", input_module)


def save_rank_heads(path: Path, heads: RankHeads) -> Path:
    """Write the JSON (``path``) and its safetensors beside it."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = path.with_suffix(".safetensors")
    tensors = {}
    for head in heads.heads:
        tensors[f"{head.rank}.weight"] = np.ascontiguousarray(head.weight, dtype=np.float32)
        tensors[f"{head.rank}.bias"] = np.ascontiguousarray(head.bias, dtype=np.float32)
    save_file(tensors, str(weights))
    spec = {"weights": weights.name, "source": heads.source, "input": heads.input_module}
    spec["ranks"] = {h.rank: list(h.names) for h in heads.heads}
    path.write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    return path
