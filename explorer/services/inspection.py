"""An evaluation error looked at closely (the inspector of the dashboard and of the similar photos): truth vs
prediction, and the Grad-CAMs of both and of their contrast, computed now."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from explorer.cam.gradcam import contrastive_cams, finer_cam, overlay_cams, scale_cams
from explorer.cam.perturbation import removal_check
from explorer.diagnose.texts import comparison_html
from explorer.identify.present import display_copy, format_probability, framed
from explorer.photos.images import LoadedImage, load_image
from explorer.photos.thumbnails import photo_path, thumbnail_file
from explorer.services.error_causes import causes_html, error_causes, neighbour_captions
from explorer.services.resources import Resources
from explorer.services.surroundings_view import surroundings_evidence
from explorer.services.workers import holds_worker


@dataclass(frozen=True)
class Inspection:
    """An evaluation error looked at closely: truth vs prediction (escaped HTML) and captioned images."""

    html: str
    images: list[tuple[np.ndarray | Image.Image | str, str]]


@holds_worker
def inspect_error(resources: Resources, row: dict, place_changed: bool = False) -> Inspection:
    """Truth vs prediction, and Grad-CAMs for the prediction, the truth and their contrast (computed now).

    ``place_changed``: the row is one the geo-prior changed, so the two answers compared are the image's own top-1
    and the top-1 with the place (for a photo the prior broke, the first is the truth). A photo whose species the
    model has no class for gets the prediction's Grad-CAM alone."""
    text = comparison_html(row)
    made_by = row.get("weights_sha256")  # a similar photo's row does not carry it
    if made_by and row["model"] in resources.classifiers and resources.models()[row["model"]].weights_sha256 != made_by:
        text = (
            "<p><b>⚠ This photo's numbers come from a table made by other weights than the loaded "
            f"{html.escape(str(row['model']))}</b>; the Grad-CAMs below are the loaded weights'.</p>" + text
        )
    if place_changed:
        text += _place_change_html(row)
    path = photo_path(resources.settings.data_root, row["path"])
    if path is None:
        return Inspection(text + "<p>The photo is not on this machine (data root not found), so no Grad-CAM.</p>", [])
    if row["model"] not in resources.classifiers:
        return Inspection(text + f"<p>Model {html.escape(row['model'])} is not loaded, so no Grad-CAM.</p>", [])
    classifier = resources.models()[row["model"]]
    image = _load_labelled_photo(resources, path).image
    base, tensor = display_copy(framed(image, classifier.card.crop_pct)), classifier.preprocess(image)
    a, b, captions = _compared_answers(row, place_changed)
    if b < 0 or a == b:
        return _one_map(resources, classifier, image, (base, tensor), a, b, captions, text)
    maps = contrastive_cams(
        classifier.module,
        tensor,
        classifier.cam_layer,
        a,
        b,
        head=classifier.cam_head,
        autocast=classifier.autocast,
        layout=classifier.cam_layout,
    )
    text += _removal_html(classifier, tensor, maps[0], a, captions[0])
    said, pictures = surroundings_evidence(resources.settings, classifier, image, maps[0], a, captions[0])
    finer = finer_cam(classifier.module, tensor, classifier.cam_layer, a, classifier.cam_layout)
    overlays = [*overlay_cams(base, maps), *overlay_cams(base, finer[None])]  # 7 x 7 maps and a 224 x 224 one
    finer_caption = f"FinerCAM: {captions[0].split(': ', 1)[-1]} against its nearest rivals"
    return Inspection(text + said, [(base, "photo"), *zip(overlays, [*captions, finer_caption]), *pictures])


def _one_map(resources, classifier, image, shown, a: int, b: int, captions: list[str], text: str) -> Inspection:
    """A photo of a species the model does not know (``b`` < 0), or one it got right: the answer's map alone."""
    base, tensor = shown
    _, _, maps = classifier.forward_with_cams(tensor, lambda _: [a])
    note = (
        "<p>The true species is not one of the model's classes: only the prediction's Grad-CAM.</p>"
        if b < 0
        else "<p>The model got this photo right: its Grad-CAM for the truth.</p>"
    )
    note += _removal_html(classifier, tensor, maps[0], a, captions[0])
    said, pictures = surroundings_evidence(resources.settings, classifier, image, maps[0], a, captions[0])
    images = [(base, "photo"), *zip(overlay_cams(base, maps), captions[:1]), *pictures]
    return Inspection(text + note + said, images)


def _removal_html(classifier, tensor, cam: np.ndarray, index: int, caption: str) -> str:
    """Can you trust this map? The answer with the pixels it points at blurred, against the same area elsewhere."""
    size = tuple(tensor.shape[-2:])
    check = removal_check(classifier.module, tensor, scale_cams(torch.from_numpy(cam[None]), size)[0], index)
    share, p = format_probability(check.share), format_probability
    verdict = (
        "the answer rests on what the map points at"
        if check.drop > check.drop_elsewhere + 0.05
        else "the answer does not rest on the map's pixels more than on the rest: trust this map less"
    )
    return (
        f"<p><b>Can you trust the map</b> ({html.escape(caption)})? Blurring the {share} of pixels it points at "
        f"moves the answer's probability from {p(check.probability)} to {p(check.without_map)}; blurring the same "
        f"area where it points least, to {p(check.without_elsewhere)}: {verdict}.</p>"
    )


def inspect_row(resources: Resources, table: str, position: int, prior: str | None, place_changed: bool) -> Inspection:
    """A dashboard row (table ``table``, row ``position``, ``prior``'s answers) looked at closely: ``inspect_error``
    and then why it most likely happened, with the label check's evidence and the nearest neighbours' photos."""
    row = resources.row(table, position, prior)
    found = inspect_error(resources, row, place_changed)
    why = error_causes(resources, table, position)
    images = list(found.images)
    settings = resources.settings
    for path, caption in neighbour_captions(why.label):
        local = photo_path(settings.data_root, path)
        if local is None:
            continue
        try:
            images.append(
                (thumbnail_file(str(local), settings.max_upload_bytes * 4, settings.max_image_pixels), caption)
            )
        except ValueError:
            continue
    return Inspection(causes_html(why) + found.html, images)


def _compared_answers(row: dict, place_changed: bool) -> tuple[int, int, list[str]]:
    """(class a, class b, captions of the Grad-CAMs of a, b and 'why a and not b')."""
    if place_changed:
        a, b = int(row["pred_class_index"]), int(row["geo_pred_class_index"])
        names = (row["pred_name"], row["geo_pred_name"])
        first, second = f"image alone: {names[0]}", f"with the place: {names[1]}"
        return a, b, [first, second, f"why the image says {names[0]} and not {names[1]}"]
    a, b = int(row["pred_class_index"]), int(row["true_class_index"])
    names = (row["pred_name"], row["true_name"])
    return a, b, [f"prediction: {names[0]}", f"truth: {names[1]}", f"why {names[0]} and not {names[1]}"]


def _place_change_html(row: dict) -> str:
    esc = html.escape
    right = "right" if row.get("geo_correct_1") else "wrong"
    return (
        f"<p>Image alone: <i>{esc(str(row['pred_name']))}</i> ({format_probability(float(row['confidence']))}); "
        f"with the place ({float(row['lat']):.2f}, {float(row['lon']):.2f}): <i>{esc(str(row['geo_pred_name']))}</i> "
        f"({format_probability(float(row['geo_confidence']))}), {right}. The truth is "
        f"<i>{esc(str(row['true_name']))}</i>.</p>"
    )


def _load_labelled_photo(resources: Resources, path: Path) -> LoadedImage:
    settings = resources.settings
    return load_image(path, settings.max_upload_bytes * 4, settings.max_image_pixels)
