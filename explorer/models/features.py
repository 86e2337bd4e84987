"""A model's embedding: the pooled pre-logit features, read from the forward pass that identify and evaluate
already run (a hook on the card's CAM layer), never from a second pass.

For the CNNs the CAM layer is the last feature map (B, C, H, W) and the embedding is its spatial mean (B, C): the
input of the linear head when the model ends in global pooling + a linear layer. With a layout
(``explorer.cam.layout``) a token or channels-last layer is first turned into that map (prefix tokens dropped); token
models usually take their embedding from their classifier's input instead (``Classifier.embedding_capture``)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def pool(activations: torch.Tensor, layout=None) -> torch.Tensor:
    """(B, D) float32 from a CAM layer's output: the spatial mean of (B, C, H, W) (after ``layout``, when given), the
    token mean of (B, T, C)."""
    out = activations.detach().float()
    if layout is not None:
        out = layout(out)
    if out.ndim == 4:
        return out.mean(dim=(2, 3))
    if out.ndim == 3:
        return out.mean(dim=1)
    if out.ndim == 2:
        return out
    raise ValueError(f"cannot pool a layer output of shape {tuple(out.shape)} into an embedding")


class EmbeddingCapture:
    """Collects the pooled output of ``layer`` (``inputs=True``: its input, e.g. what a linear head reads) for every
    forward pass run while it is open (a context manager)."""

    def __init__(self, layer: nn.Module, inputs: bool = False, layout=None):
        self.layer = layer
        self.inputs = inputs
        self.layout = layout
        self.batches: list[np.ndarray] = []
        self._handle = None

    def __enter__(self) -> EmbeddingCapture:
        if self.inputs:
            self._handle = self.layer.register_forward_pre_hook(lambda m, args: self._hook(m, args, args[0]))
        else:
            self._handle = self.layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, *_exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _hook(self, _module, _inputs, output) -> None:
        self.batches.append(pool(output, self.layout).cpu().numpy())

    def array(self, dim: int | None = None) -> np.ndarray:
        """(n, D) float32 of everything captured (``dim`` gives the shape of an empty result)."""
        if self.batches:
            return np.concatenate(self.batches).astype(np.float32)
        return np.zeros((0, dim or 0), np.float32)


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm (a zero row stays zero): cosine similarity becomes a dot product."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
