"""The organism or its surroundings? Per photo, where the model's answer rests, judged against where an independent
model finds the organism (explorer.cam.subject), and what the model answers with the organism or with its
surroundings blurred away; per clade, the species most often recognised by their surroundings.

Columns stored with the table (``SUBJECT_SCHEMA`` in diagnose.schema):

- ``off_subject_share``: the share of the top-1 Grad-CAM's mass outside the organism's mask (0: all on the
  organism). A map spread evenly over the photo scores ``1 - subject_area``, so read the two together.
- ``subject_area``: the share of the photo the mask covers.
- ``p_without_subject`` / ``p_without_surroundings``: the probability of the model's top-1 with the organism
  blurred away (Gaussian, sigma 10 px at the input size) and with everything but the organism blurred away.
- ``kept_without_subject``: the top-1 stays the top-1 with the organism blurred away: the answer does not need it.
- ``subject_locator``: which ImageNet model located the organism.

The locator is the Coral ImageNet MobileNetV2 for every model: trained on ImageNet's 1,000 classes, it knows none of
the tested species' labels, and it shares no weights with the heads on EfficientNet-Lite0's features or with a
user's model. The Coral iNat models are MobileNetV2s too, probably fine-tuned from an ImageNet MobileNetV2: a shared
ancestry, not shared weights. ImageNet's EfficientNet-Lite0 was tried as well: its Grad-CAM of the bird classes
marks the head or a patch of background rather than the whole bird (at ``_bn1``, ``_conv_head`` and the last
blocks), where the MobileNetV2's mask covered the bird, with a margin, on 8 of 8 photos checked by eye.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from explorer.cam.subject import (
    batched_gradcam,
    group_target,
    mask_share,
    off_subject_share,
    on_grid,
    subject_masks,
    top1_target,
    without,
)
from explorer.diagnose.schema import SUBJECT_SCHEMA
from explorer.identify.scope_check import IMAGENET_GROUPS
from explorer.models.cards import find_file, load_cards_from, parse_model_card
from explorer.models.classifier import Classifier, load_classifier
from explorer.models.preprocess import normalise, resize_rgb
from explorer.photos.images import load_image
from explorer.photos.thumbnails import photo_path
from explorer.settings import Settings

CORAL_IMAGENET = "coral_imagenet_mobilenet_v2"
CORAL_IMAGENET_FILE = "mobilenet_v2_1.0_224_quant.tflite"
SUBJECT_COLUMNS = tuple(SUBJECT_SCHEMA)


def locator_name(card) -> str:
    """The ImageNet model that finds the organism for a model (the same for every model: see the module's notes)."""
    return CORAL_IMAGENET


def _coral_imagenet_card(settings: Settings):
    weights = find_file(CORAL_IMAGENET_FILE, settings)
    return parse_model_card(
        {
            "name": CORAL_IMAGENET,
            "architecture": "mobilenet_v2_tf",
            "weights": {"format": "tflite", "file": str(weights)},
            "labels_file": str(weights.with_name("imagenet_labels.txt")),
            "labels_format": "plain",
            "background_label": "background",
            "taxonomy": "none",
            "mean": [0.501961] * 3,
            "std": [0.501961] * 3,
            "cam_layer": "features.18",
            "cam_head": "classifier.1",
        }
    )


@dataclass
class Locator:
    """An ImageNet classifier and the offset of its class indices (1 for a model with a background class first)."""

    classifier: Classifier
    offset: int

    @property
    def name(self) -> str:
        return self.classifier.name

    def target(self, subject: str) -> Callable[[torch.Tensor], torch.Tensor]:
        if subject not in IMAGENET_GROUPS:
            raise ValueError(f"the organism can be located for {sorted(IMAGENET_GROUPS)}, not {subject!r}")
        return group_target([i + self.offset for i in IMAGENET_GROUPS[subject]])

    def maps(self, pixels: np.ndarray, subject: str) -> np.ndarray:
        """(B, g, g) the locator's map of the subject for (B, S, S, 3) uint8 photos."""
        card = self.classifier.card
        batch = torch.stack([normalise(resize_rgb(p, card.input_size), card.mean, card.std) for p in pixels])
        _, maps = batched_gradcam(
            self.classifier.module,
            batch.to(self.classifier.device),
            self.classifier.cam_layer,
            self.target(subject),
            self.classifier.cam_layout,
        )
        return on_grid(maps)


def load_locator(settings: Settings, name: str) -> Locator:
    """The locator ``name``: the Coral ImageNet MobileNetV2 from its TFLite file, or an ImageNet model's card."""
    if name == CORAL_IMAGENET:
        return Locator(load_classifier(_coral_imagenet_card(settings), settings, None), 1)
    cards = {card.name: card for card in load_cards_from(settings.card_dirs)}
    if name not in cards or cards[name].taxonomy != "imagenet":
        raise ValueError(f"no ImageNet model {name!r} to locate the organism with")
    return Locator(load_classifier(cards[name], settings, None), 0)


_LOADED: dict[tuple, Locator] = {}
LOCATOR_LOCK = threading.Lock()  # a locator's forward hooks serve one call at a time: hold it while using one


def shared_locator(settings: Settings, name: str) -> Locator:
    """``load_locator``, loaded once per process for the same model folders (the app's inspector); hold
    ``LOCATOR_LOCK`` while calling this and using the locator."""
    key = (name, settings.search_dirs, settings.device)
    if key not in _LOADED:
        _LOADED[key] = load_locator(settings, name)
    return _LOADED[key]


def measure_pixels(
    classifier: Classifier, locator: Locator, pixels: np.ndarray, subject: str, maps_out: list | None = None
) -> pd.DataFrame:
    """The subject columns for (B, S, S, 3) uint8 photos already at the classifier's input size. ``maps_out``: a
    list that gets the top-1 maps (B, g, g) and the organism's masks, as a pair."""
    card = classifier.card
    batch = torch.stack([normalise(p, card.mean, card.std) for p in pixels]).to(classifier.device)
    logits, maps = batched_gradcam(
        classifier.module, batch, classifier.cam_layer, top1_target, classifier.cam_layout, classifier.autocast
    )
    top1 = logits.argmax(dim=1)
    masks = subject_masks(locator.maps(pixels, subject))
    probs = []
    with torch.no_grad(), classifier.autocast():
        for keep_inside in (False, True):
            out = classifier.module(without(batch, masks, keep_inside)).float()
            probs.append(out.softmax(dim=1))
    rows = torch.arange(len(top1))
    gridded = on_grid(maps)
    if maps_out is not None:
        maps_out.append((gridded, masks))
    return pd.DataFrame(
        {
            "off_subject_share": off_subject_share(gridded, masks),
            "subject_area": mask_share(masks),
            "p_without_subject": probs[0][rows, top1].cpu().numpy().astype(np.float64),
            "p_without_surroundings": probs[1][rows, top1].cpu().numpy().astype(np.float64),
            "kept_without_subject": (probs[0].argmax(dim=1) == top1).cpu().numpy(),
            "subject_locator": locator.name,
        }
    )


def subject_columns(
    table: pd.DataFrame,
    classifier: Classifier,
    locator: Locator,
    data_root: Path | None,
    subject: str,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
    max_bytes: int = 64 << 20,
    max_pixels: int = 100_000_000,
    paths: list[str] | None = None,
) -> pd.DataFrame:
    """The table with the subject columns (photos that are unreadable or missing here: none). ``paths``: each
    row's photo file (default: its ``path`` under ``data_root``)."""
    out = pd.DataFrame(index=table.index, columns=list(SUBJECT_COLUMNS), dtype=object)
    ok = table.index[(table["status"] == "ok").to_numpy()]
    files = dict(zip(table.index, paths)) if paths is not None else None
    for start in range(0, len(ok), batch_size):
        chunk = ok[start : start + batch_size]
        found, pixels = [], []
        for index in chunk:
            given = files[index] if files is not None else None
            path = Path(given) if given else photo_path(data_root, str(table.at[index, "path"]))
            if path is not None:
                found.append(index)
                pixels.append(classifier.resize(load_image(path, max_bytes, max_pixels).image))
        if pixels:
            measured = measure_pixels(classifier, locator, np.stack(pixels), subject)
            out.loc[found, list(SUBJECT_COLUMNS)] = measured.to_numpy(dtype=object)
        if progress is not None:
            progress(len(chunk))
    return with_subject_frame(table, out)


def with_subject_frame(table: pd.DataFrame, found: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the subject columns typed (floats NaN, the flag a nullable boolean where not measured)."""
    table = table.drop(columns=[c for c in SUBJECT_COLUMNS if c in table.columns]).copy()
    for column in ("off_subject_share", "subject_area", "p_without_subject", "p_without_surroundings"):
        table[column] = pd.to_numeric(found[column], errors="coerce").astype(np.float64)
    table["kept_without_subject"] = found["kept_without_subject"].astype("boolean")
    table["subject_locator"] = found["subject_locator"].astype("string")
    return table
