"""The organism or its surroundings, for one photo in the inspector: how much of the answer's map lies outside the
organism, and the answer with the organism, then the surroundings, blurred away (explorer.diagnose.surroundings)."""

from __future__ import annotations

import html

import numpy as np
import torch
from PIL import Image

from explorer.cam.subject import off_subject_share, on_grid, subject_masks, without
from explorer.diagnose.causes import SURROUNDINGS_MARGIN, SURROUNDINGS_SHARE
from explorer.diagnose.surroundings import CORAL_IMAGENET, LOCATOR_LOCK, locator_name, shared_locator
from explorer.identify.present import format_probability
from explorer.identify.scope_check import IMAGENET_GROUPS
from explorer.models.classifier import Classifier
from explorer.settings import Settings

LOCATOR_NAMES = {CORAL_IMAGENET: "the Coral ImageNet MobileNetV2"}


def surroundings_evidence(
    settings: Settings, classifier: Classifier, image: Image.Image, cam: np.ndarray, index: int, caption: str
) -> tuple[str, list[tuple[np.ndarray, str]]]:
    """(escaped HTML, the photo with the organism and with the surroundings blurred away, captioned) for the map
    ``cam`` (h, w) of class ``index``; a model whose subject has no ImageNet classes gets one sentence instead."""
    subject = classifier.card.subject
    if subject not in IMAGENET_GROUPS:
        return f"<p>The {html.escape(subject)} cannot be located in the photo (no ImageNet classes for it).</p>", []
    pixels = classifier.resize(image)
    with LOCATOR_LOCK:
        try:
            locator = shared_locator(settings, locator_name(classifier.card))
        except (FileNotFoundError, ValueError) as err:  # the locator's weights are not on this machine
            return f"<p>The {html.escape(subject)} cannot be located here: {html.escape(str(err))}.</p>", []
        masks = subject_masks(locator.maps(pixels[None], subject))
    if not masks.any():
        return f"<p>The locator finds no {html.escape(subject)} here: no organism-or-surroundings test.</p>", []
    tensor = classifier.preprocess(image)
    batch = torch.cat([tensor, without(tensor, masks, False), without(tensor, masks, True)])
    with torch.no_grad(), classifier.autocast():
        probs = classifier.module(batch).float().softmax(dim=1)
    p, kept = probs[:, index].cpu().numpy(), int(probs[1].argmax()) == index
    share = float(off_subject_share(on_grid(torch.from_numpy(cam[None])), masks)[0])
    shown = torch.from_numpy(pixels).permute(2, 0, 1)[None].float()
    views = [without(shown, masks, keep)[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy() for keep in (0, 1)]
    rests = share > SURROUNDINGS_SHARE or kept or p[1] - p[2] > SURROUNDINGS_MARGIN
    verdict = "the answer rests on the surroundings" if rests else f"the answer rests on the {subject}"
    fmt, name = format_probability, html.escape(caption.split(": ", 1)[-1])
    by = html.escape(LOCATOR_NAMES.get(locator.name, locator.name))
    text = (
        f"<p><b>The {html.escape(subject)} or its surroundings?</b> {fmt(share)} of the map of {html.escape(caption)} "
        f"lies outside the {html.escape(subject)} (located by {by}'s map of ImageNet's "
        f"{html.escape(subject)} classes; it covers {fmt(float(masks.mean()))} of the photo). With the "
        f"{html.escape(subject)} blurred away, {name} has {fmt(float(p[1]))} (from {fmt(float(p[0]))}) and "
        f"{'stays' if kept else 'is no longer'} the top answer; with the surroundings blurred away, "
        f"{fmt(float(p[2]))}: {verdict}.</p>"
    )
    captions = [f"{subject} blurred away: {name} {fmt(float(p[1]))}", f"surroundings blurred away: {fmt(float(p[2]))}"]
    return text, list(zip(views, captions))
