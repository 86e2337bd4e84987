"""Reading user photos safely: every way a file can be bad gets a clear ``ValueError``.

Odd but valid images (CMYK, 16-bit, alpha, palette, grayscale, animated, EXIF-rotated) are converted to
8-bit RGB and a note says what was done, so the user knows what the model actually saw.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from explorer.photos.places import Place

log = logging.getLogger(__name__)


def _register_heif() -> bool:
    """Let PIL open HEIC / HEIF (iPhones' default since 2017) through pillow-heif, when it is installed. Decoding
    applies the file's own rotation and sets the EXIF orientation it hands over to 1, so nothing turns twice."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:  # requirements-runtime.txt installs it; without it such a file is "not an image we can read"
        return False
    register_heif_opener()
    return True


HEIF = _register_heif()
SUPPORTED = "JPEG, PNG, WebP, AVIF, BMP, GIF, TIFF" + (", HEIC/HEIF" if HEIF else "")
# photo files in folders
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".avif", ".tif", ".tiff", ".gif", ".heic", ".heif")
BROWSER_DRAWS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "AVIF")  # formats a browser can show as they are


class ImageInputError(ValueError):
    """A photo that cannot be used, with a message meant for the user."""


@dataclass(frozen=True)
class LoadedImage:
    """An 8-bit RGB photo, upright, plus notes on any conversion made."""

    image: Image.Image
    notes: tuple[str, ...] = field(default_factory=tuple)
    original_mode: str = "RGB"
    original_size: tuple[int, int] = (0, 0)
    original_format: str = ""  # PIL's name of the file's format ("JPEG", "HEIF", ...)

    @property
    def browser_draws(self) -> bool:
        """A browser can show the file as it is (not HEIC / HEIF, TIFF: the page shows a converted copy)."""
        return self.original_format in BROWSER_DRAWS


def load_image(source: str | os.PathLike | bytes, max_bytes: int, max_pixels: int, min_side: int = 16) -> LoadedImage:
    """Open, check and normalise a photo from a path or bytes.

    Raises:
        ImageInputError: empty, too large (bytes or pixels), too small, not an image, corrupt.
    """
    data = _read_bytes(source, max_bytes)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = _open(data, max_pixels)
        width, height = image.size
        if width * height > max_pixels:
            raise ImageInputError(
                f"The image has {width * height / 1e6:.0f} MP ({width}×{height} px); the limit is "
                f"{max_pixels / 1e6:.0f} MP. Please downscale it."
            )
        if min(width, height) < min_side:
            raise ImageInputError(f"The image is only {width}×{height} px; it needs at least {min_side} px per side.")
        notes = []
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            notes.append(f"Animated image with {frames} frames: identified the first frame.")
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as err:
            raise ImageInputError(f"The image file is corrupt or truncated ({err}).") from err
        mode, kind = image.mode, image.format or ""
        rgb = _to_rgb(image, notes)
        upright = _apply_exif_orientation(rgb, image, notes)
    return LoadedImage(upright, tuple(notes), original_mode=mode, original_size=(width, height), original_format=kind)


def _read_bytes(source: str | os.PathLike | bytes, max_bytes: int) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageInputError(f"No file at {path.name}.")
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageInputError(f"The file is {size / 2**20:.1f} MB; the upload limit is {max_bytes / 2**20:.0f} MB.")
        data = path.read_bytes()
    if not data:
        raise ImageInputError("The file is empty (0 bytes).")
    if len(data) > max_bytes:
        raise ImageInputError(
            f"The file is {len(data) / 2**20:.1f} MB; the upload limit is {max_bytes / 2**20:.0f} MB."
        )
    return data


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        found = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(found.group(1)) / 1e6:.0f} MP" if found else "too many pixels"
        raise ImageInputError(
            f"The image has {size}; the limit is {max_pixels / 1e6:.0f} MP. Please downscale it."
        ) from err
    except UnidentifiedImageError as err:
        raise ImageInputError(f"This file is not an image we can read. Supported formats: {SUPPORTED}.") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageInputError(f"The image file is corrupt ({err}).") from err


def _to_rgb(image: Image.Image, notes: list[str]) -> Image.Image:
    """8-bit RGB from any mode; alpha is composited on white, 16-bit and float are rescaled, not clipped."""
    mode = image.mode
    if mode == "RGB":
        return image.copy()
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        lo, hi = float(array.min()), float(array.max())
        scaled = np.zeros_like(array) if hi <= lo else (array - lo) / (hi - lo) * 255.0
        notes.append(f"High-bit-depth image (mode {mode}): rescaled to 8 bits.")
        return Image.fromarray(scaled.round().astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append("Transparent areas were filled with white.")
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        notes.append("CMYK image converted to RGB.")
    elif mode in ("L", "1"):
        notes.append("Grayscale image: the model sees it without colour, so expect lower confidence.")
    return image.convert("RGB")


def _apply_exif_orientation(rgb: Image.Image, original: Image.Image, notes: list[str]) -> Image.Image:
    try:
        orientation = original.getexif().get(0x0112, 1)
    except Exception as err:  # noqa: BLE001 - a broken EXIF block must not sink a good photo
        log.warning("unreadable EXIF: %s", err)
        notes.append("The photo's EXIF block is unreadable; orientation left as stored.")
        return rgb
    if orientation in (None, 1):
        return rgb
    rgb.info["exif"] = original.info.get("exif", b"")
    upright = ImageOps.exif_transpose(rgb.copy()) if orientation in range(2, 9) else rgb
    if upright is None:
        return rgb
    notes.append(f"Rotated upright from EXIF orientation {orientation}.")
    return upright


_GPS_IFD, _EXIF_IFD = 0x8825, 0x8769
_DATE_TAGS = (0x9003, 0x9004, 0x0132)  # DateTimeOriginal, DateTimeDigitized, DateTime


def read_place_time(source: str | os.PathLike | bytes) -> Place:
    """GPS position and capture date from a photo's EXIF; odd or missing EXIF gives None fields and a note."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source) as image:
            exif = image.getexif()
            gps, sub = exif.get_ifd(_GPS_IFD), exif.get_ifd(_EXIF_IFD)
    except Exception as err:  # noqa: BLE001 - unreadable EXIF is common and harmless
        return Place(note=f"no readable EXIF ({type(err).__name__})")
    lat, lon, place_note = _gps_position(gps)
    date = next((d for d in (_exif_date(sub.get(t) or exif.get(t)) for t in _DATE_TAGS) if d), None)
    return Place(lat, lon, date, place_note)


def _gps_position(gps) -> tuple[float | None, float | None, str]:
    if not gps or 2 not in gps or 4 not in gps:
        return None, None, "no GPS position in EXIF"
    try:
        lat = _degrees(gps[2]) * (-1 if str(gps.get(1, "N")).upper().startswith("S") else 1)
        lon = _degrees(gps[4]) * (-1 if str(gps.get(3, "E")).upper().startswith("W") else 1)
    except (TypeError, ValueError, ZeroDivisionError):
        return None, None, "EXIF GPS position unreadable"
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat, lon) == (0.0, 0.0):
        return None, None, f"EXIF GPS position ({lat:.4f}, {lon:.4f}) is impossible or a placeholder; ignored"
    return round(lat, 6), round(lon, 6), ""


def _degrees(value) -> float:
    """Degrees from EXIF's (degrees, minutes, seconds) rationals, or a single number."""
    parts = [float(v) for v in (value if isinstance(value, (tuple, list)) else (value,))]
    parts += [0.0] * (3 - len(parts))
    return parts[0] + parts[1] / 60 + parts[2] / 3600


def _exif_date(value) -> dt.date | None:
    """The date of EXIF's 'YYYY:MM:DD HH:MM:SS' (None for blanks like '0000:00:00')."""
    if not value:
        return None
    try:
        return dt.datetime.strptime(str(value).strip()[:10], "%Y:%m:%d").date()
    except ValueError:
        return None
