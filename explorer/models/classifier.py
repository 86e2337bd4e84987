"""Classifiers built from model cards: weights, labels, lineages and preprocessing travel together.

``load_classifier`` reads the card's weights through the reader of its format (``formats/readers.py``), fills in
what the card leaves to the weights (input size, normalisation, class names, constructor arguments), builds the
architecture, and runs the load-time checks (``load_checks.py``)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from explorer.cam.gradcam import forward_with_cams, forward_with_cams_batch
from explorer.cam.layout import FeatureLayout
from explorer.models.cards import ModelCard, card_label_names, read_card_weights
from explorer.models.class_labels import ClassLabel, build_labels
from explorer.models.features import EmbeddingCapture
from explorer.models.formats.loaded_weights import LoadedWeights
from explorer.models.load_checks import (
    check_logits,
    check_outputs,
    find_cam_target,
    load_card_rank_heads,
    load_weights_into,
    pre_logits_name,
)
from explorer.models.preprocess import centre_square, normalise, resize_rgb
from explorer.models.rank_heads import RankHeads
from explorer.models.registry import create_model
from explorer.settings import Settings
from explorer.taxa.taxonomy import ClassTree, Taxonomy

log = logging.getLogger(__name__)


@dataclass
class Classifier:
    """A loaded model with everything needed to run and explain it."""

    card: ModelCard
    module: nn.Module
    labels: list[ClassLabel]
    tree: ClassTree
    device: torch.device
    weights_sha256: str
    rank_heads: RankHeads | None = None  # per-rank linear heads on the embedding, when the card has them
    cam_layer_name: str = ""  # the card's CAM layer, or the one chosen from the model
    cam_layer_why: str = ""  # why that layer ("named in the card", or how it was chosen)
    cam_layout: FeatureLayout = FeatureLayout()  # how its output becomes (1, C, h, w)
    pre_logits: str = ""  # the linear classifier whose input is the embedding (token models); "": the CAM layer
    build_options: dict = dataclasses.field(default_factory=dict)  # constructor arguments (card's + a checkpoint's)

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def cam_layer(self) -> nn.Module:
        return self.module.get_submodule(self.cam_layer_name or self.card.cam_layer)

    def embedding_capture(self) -> EmbeddingCapture:
        """The embedding, from the forward pass it runs in: the CAM layer's spatial mean for CNNs; for token and
        channels-last models the input of their linear classifier (the pooled, normed features the logits read)."""
        return embedding_capture(
            self.module, self.cam_layer_name or self.card.cam_layer, self.cam_layout, self.pre_logits
        )

    @property
    def cam_head(self) -> nn.Linear | None:
        return self.module.get_submodule(self.card.cam_head) if self.card.cam_head else None

    def rank_heads_input(self) -> EmbeddingCapture | None:
        """A capture of the module input the rank heads read; None without rank heads, or when they read the
        embedding (which identify and evaluate capture anyway)."""
        if self.rank_heads is None or not self.rank_heads.input_module:
            return None
        return EmbeddingCapture(self.module.get_submodule(self.rank_heads.input_module), inputs=True)

    def forward_with_cams(self, x: torch.Tensor, select, method: str = "gradcam"):
        """``cam.gradcam.forward_with_cams`` on this model's CAM layer, head and layout: (logits, indices, maps)."""
        return forward_with_cams(
            self.module, x, self.cam_layer, select, self.autocast, self.cam_head, self.cam_layout, method
        )

    def forward_with_cams_batch(self, x: torch.Tensor, selects, method: str = "gradcam"):
        """``cam.gradcam.forward_with_cams_batch`` on this model: (logits (B, N), classes per photo, maps per photo)."""
        return forward_with_cams_batch(
            self.module, x, self.cam_layer, selects, self.autocast, self.cam_head, self.cam_layout, method
        )

    @property
    def background_index(self) -> int | None:
        return next((lab.class_index for lab in self.labels if lab.is_background), None)

    def resize(self, image: Image.Image) -> np.ndarray:
        """(S, S, 3) uint8: the whole photo squeezed to the input size, area-averaged when shrinking; with a card's
        crop_pct < 1, the central square of that fraction of the short side (timm's resize + centre crop)."""
        if self.card.crop_pct < 1.0:
            image = centre_square(image, self.card.crop_pct)
        return resize_rgb(image, self.card.input_size)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """(1, 3, S, S) normalised tensor on the model's device."""
        return normalise(self.resize(image), self.card.mean, self.card.std).unsqueeze(0).to(self.device)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision on CUDA, nothing on the CPU."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def predict_probs(self, batch: torch.Tensor) -> np.ndarray:
        """(B, num_classes) softmax probabilities for a preprocessed batch."""
        with self.autocast():
            logits = self.module(batch.to(self.device))
        return torch.softmax(logits.float(), dim=1).cpu().numpy()


def embedding_capture(module: nn.Module, cam_layer: str, layout: FeatureLayout, pre_logits: str) -> EmbeddingCapture:
    """The input of ``pre_logits`` (a classifier layer) when named, else the CAM layer's output, pooled."""
    if pre_logits:
        return EmbeddingCapture(module.get_submodule(pre_logits), inputs=True)
    return EmbeddingCapture(module.get_submodule(cam_layer), layout=layout)


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA when available (or asked for), else the CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} asked for, but CUDA is not available; use 'cpu' or 'auto'")
    return device


def with_weights_defaults(card: ModelCard, weights: LoadedWeights) -> ModelCard:
    """The card, with the input size and normalisation the weights record wherever the card is silent."""
    if weights.preprocessing is None:
        return card
    given = dataclasses.asdict(weights.preprocessing)
    return dataclasses.replace(card, **{k: v for k, v in given.items() if k not in card.stated})


def read_class_names(
    card: ModelCard, settings: Settings, weights: LoadedWeights
) -> tuple[list[tuple[str, str]], list[str] | None]:
    """((name, common) per class, the iNat 2021 raw names or None): the card's label file, else the weights' names."""
    names, raw = card_label_names(card, settings, weights.class_names)
    if not names:
        raise ValueError(f"model card {card.name!r}: the checkpoint names no classes; give labels_file or head_weights")
    return names, raw


def load_classifier(card: ModelCard, settings: Settings, taxonomy: Taxonomy | None = None) -> Classifier:
    """Build, load and check one classifier; the label count must match the weights' outputs."""
    weights = read_card_weights(card, settings)
    card = with_weights_defaults(card, weights)
    names, raw = read_class_names(card, settings, weights)
    module = build_module(card, len(names), weights)
    device = pick_device(settings.device)
    module = module.to(device).eval().requires_grad_(False)  # frozen: CAMs take gradients w.r.t. activations only
    check_logits(card, module, len(names))
    layer_name, why, layout = find_cam_target(card, module)
    labels = build_labels(card, names, taxonomy, raw)
    pre_logits = pre_logits_name(module, len(names)) if layout.kind != "nchw" else ""
    embedding = embedding_capture(module, layer_name, layout, pre_logits)
    heads = load_card_rank_heads(card, settings, module, embedding) if card.rank_heads else None
    log.info("loaded %s (%d classes) on %s from %s", card.name, len(labels), device, weights.path)
    tree = ClassTree.from_lineages([lab.lineage for lab in labels])
    options = build_options(card, weights)
    return Classifier(
        card, module, labels, tree, device, weights.sha256, heads, layer_name, why, layout, pre_logits, options
    )


def build_options(card: ModelCard, weights: LoadedWeights) -> dict:
    """The constructor arguments: the weights' own (a birder checkpoint's config), then the card's
    ``architecture_args`` over them."""
    return {**weights.options, **card.architecture_args}


def build_module(card: ModelCard, num_labels: int, weights: LoadedWeights) -> nn.Module:
    """The architecture with the weights in, built at the size the weights were trained at, then moved to the card's
    input size the way birder does it (``adjust_size``: the position embedding is interpolated)."""
    built_at = weights.preprocessing.input_size if weights.preprocessing else card.input_size
    module = create_model(card.architecture, num_labels, build_options(card, weights), built_at)
    check_outputs(card, module, weights.state, num_labels)
    load_weights_into(card, module, weights.state, weights.path)
    if built_at != card.input_size:
        if not hasattr(module, "adjust_size"):
            raise ValueError(f"model card {card.name!r}: {card.architecture} cannot change its input size")
        module.adjust_size((card.input_size, card.input_size))
    return module
