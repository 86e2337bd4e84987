"""Every kind of bad or odd photo: a clear message, or a conversion with a note."""

import datetime as dt

import numpy as np
import pytest
from conftest import encode, good_rgb, photo_with_exif
from PIL import Image

from explorer.photos.images import ImageInputError, load_image

LIMITS = {"max_bytes": 5 * 2**20, "max_pixels": 20_000_000, "min_side": 16}


def test_plain_jpeg_loads_without_notes():
    loaded = load_image(encode(good_rgb(), "JPEG"), **LIMITS)
    assert loaded.image.mode == "RGB" and loaded.image.size == (64, 48) and loaded.notes == ()


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "empty"),
        (b"this is a text file, not a photo", "not an image we can read"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not an image we can read|corrupt"),
    ],
)
def test_unreadable_files(data, message):
    with pytest.raises(ImageInputError, match=message):
        load_image(data, **LIMITS)


def test_truncated_jpeg_is_corrupt():
    data = encode(good_rgb((256, 256)), "JPEG", quality=95)
    with pytest.raises(ImageInputError, match="corrupt or truncated"):
        load_image(data[: len(data) // 3], **LIMITS)


def test_decompression_bomb_refused_before_decoding():
    bomb = encode(Image.new("L", (12_000, 12_000)), "PNG")  # 144 MP of zeros: a few hundred KB on disk
    assert len(bomb) < LIMITS["max_bytes"]
    with pytest.raises(ImageInputError, match="has 144 MP; the limit is 20 MP"):
        load_image(bomb, **LIMITS)
    mid = encode(Image.new("L", (6_000, 5_000)), "PNG")  # 30 MP: under PIL's own guard, over ours
    with pytest.raises(ImageInputError, match=r"has 30 MP \(6000×5000 px\); the limit is 20 MP"):
        load_image(mid, **LIMITS)


def test_file_over_byte_limit(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(b"\xff" * (LIMITS["max_bytes"] + 1))
    with pytest.raises(ImageInputError, match="upload limit is 5 MB"):
        load_image(path, **LIMITS)


@pytest.mark.parametrize("size", [(1, 1), (300, 4)])
def test_tiny_images(size):
    with pytest.raises(ImageInputError, match="at least 16 px"):
        load_image(encode(Image.new("RGB", size), "PNG"), **LIMITS)


def test_cmyk_converted():
    loaded = load_image(encode(good_rgb().convert("CMYK"), "JPEG"), **LIMITS)
    assert loaded.image.mode == "RGB" and loaded.original_mode == "CMYK" and "CMYK" in loaded.notes[0]


def test_16_bit_rescaled_not_clipped():
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    loaded = load_image(encode(Image.fromarray(ramp), "PNG"), **LIMITS)
    pixels = np.asarray(loaded.image)
    assert pixels.min() == 0 and pixels.max() == 255  # full range kept (a naive convert saturates at 255)
    assert "High-bit-depth" in loaded.notes[0]


def test_alpha_composited_on_white():
    rgba = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    loaded = load_image(encode(rgba, "PNG"), **LIMITS)
    assert loaded.image.getpixel((0, 0)) == (255, 255, 255) and "Transparent" in loaded.notes[0]


def test_palette_with_transparency():
    palette = Image.new("P", (32, 32), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255])  # index 0 red (made transparent below), index 1 blue
    palette.paste(1, (16, 0, 32, 32))  # right half blue
    loaded = load_image(encode(palette, "PNG", transparency=0), **LIMITS)
    assert loaded.image.mode == "RGB" and loaded.original_mode == "P"
    assert loaded.image.getpixel((0, 0)) == (255, 255, 255) and loaded.image.getpixel((31, 0)) == (0, 0, 255)
    assert "Transparent" in loaded.notes[0]


def test_grayscale_noted():
    loaded = load_image(encode(Image.new("L", (32, 32), 128), "PNG"), **LIMITS)
    assert loaded.image.getpixel((0, 0)) == (128, 128, 128) and "Grayscale" in loaded.notes[0]


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (32, 32), color) for color in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    loaded = load_image(data, **LIMITS)
    assert loaded.image.getpixel((5, 5))[0] > 200 and "3 frames" in loaded.notes[0]


def test_exif_rotation_applied():
    image = good_rgb((80, 40))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    loaded = load_image(encode(image, "JPEG", exif=exif), **LIMITS)
    assert loaded.image.size == (40, 80) and "orientation 6" in loaded.notes[0]


def test_missing_path():
    with pytest.raises(ImageInputError, match="No file"):
        load_image("/nonexistent/photo.jpg", **LIMITS)


def test_exif_place_and_time():
    from explorer.photos.images import read_place_time

    found = read_place_time(
        photo_with_exif({1: "N", 2: (43.0, 30.0, 15.0), 3: "W", 4: (79.0, 40.0, 0.0)}, "2021:05:16 08:30:00")
    )
    assert (found.lat, found.lon) == (pytest.approx(43.504167), pytest.approx(-79.666667))
    assert found.date == dt.date(2021, 5, 16) and found.located


@pytest.mark.parametrize(
    "gps,date,note",
    [
        (None, None, "no GPS position"),
        ({1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)}, "0000:00:00 00:00:00", "placeholder"),
        ({1: "S", 2: (95.0, 0.0, 0.0), 3: "E", 4: (10.0, 0.0, 0.0)}, None, "impossible"),
    ],
)
def test_exif_missing_or_odd(gps, date, note):
    from explorer.photos.images import read_place_time

    found = read_place_time(photo_with_exif(gps, date))
    assert found.lat is None and found.lon is None and found.date is None and note in found.note


def test_exif_of_non_image():
    from explorer.photos.images import read_place_time

    assert "no readable EXIF" in read_place_time(b"not an image").note


def smooth_rgb(size=(96, 64)) -> Image.Image:
    """A smooth gradient (lossy codecs keep it close), so a decoded copy can be compared with the source."""
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    array = np.stack([x * 255 // size[0], y * 255 // size[1], (x + y) * 255 // sum(size)], axis=-1)
    return Image.fromarray(array.astype(np.uint8), "RGB")


@pytest.mark.parametrize(
    ("fmt", "name", "drawn", "lossy"),
    [
        ("JPEG", "JPEG", True, 6),
        ("PNG", "PNG", True, 0),
        ("WEBP", "WEBP", True, 6),
        ("AVIF", "AVIF", True, 6),
        ("BMP", "BMP", True, 0),
        ("GIF", "GIF", True, 40),  # a 256-colour palette
        ("TIFF", "TIFF", False, 0),
        ("HEIF", "HEIF", False, 6),  # what pillow-heif writes: an iPhone's .heic
    ],
)
def test_each_format_loads_with_its_name_and_whether_a_browser_draws_it(fmt, name, drawn, lossy):
    source = smooth_rgb()
    loaded = load_image(encode(source, fmt), **LIMITS)
    assert loaded.original_format == name and loaded.browser_draws is drawn and loaded.image.size == (96, 64)
    difference = np.abs(np.asarray(loaded.image, np.int16) - np.asarray(source, np.int16)).mean()
    assert difference <= lossy  # the same picture


def test_heic_place_date_and_orientation():
    from explorer.photos.images import SUPPORTED, read_place_time

    exif = Image.Exif()
    exif[0x0112] = 6  # pillow-heif writes the pixels as they are and hands back orientation 1: never turned twice
    exif[0x8825] = {1: "N", 2: (43.0, 30.0, 15.0), 3: "W", 4: (79.0, 40.0, 0.0)}
    exif[0x8769] = {0x9003: "2021:05:16 08:30:00"}
    data = encode(smooth_rgb(), "HEIF", exif=exif)
    assert data[4:12] == b"ftypheic"
    loaded = load_image(data, **LIMITS)
    assert loaded.image.size == (96, 64) and loaded.notes == ()
    found = read_place_time(data)
    assert (found.lat, found.lon) == (pytest.approx(43.504167), pytest.approx(-79.666667))
    assert found.date == dt.date(2021, 5, 16)
    assert SUPPORTED == "JPEG, PNG, WebP, AVIF, BMP, GIF, TIFF, HEIC/HEIF"
