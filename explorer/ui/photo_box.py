"""The Identify tab's photo box: a new photo's EXIF place and date for the form, and a JPEG copy of a photo the
browser cannot draw (HEIC, HEIF, TIFF)."""

from __future__ import annotations

import gradio as gr

from explorer.photos.images import LoadedImage, read_place_time
from explorer.ui.temp_files import write_display_copy


def drawable_copy(box: gr.Image, photo: LoadedImage) -> str | None:
    """For a photo the browser cannot draw: a JPEG copy, upright, in the box's cache (the path the page sends back
    with its next events, which the tab's session then takes for the same photo); None for one it can draw."""
    if photo.browser_draws:
        return None
    return box.move_resource_to_block_cache(write_display_copy(photo.image))


def exif_place_time(path) -> tuple[str, str, str]:
    """Location and date from the photo's EXIF, as the form's text ('' where absent)."""
    found = read_place_time(path)
    if found.located:
        gr.Info(f"Location read from the photo: {found.lat:.5f}, {found.lon:.5f}")
    return (
        "" if found.lat is None else f"{found.lat:.5f}",
        "" if found.lon is None else f"{found.lon:.5f}",
        found.date.isoformat() if found.date else "",
    )
