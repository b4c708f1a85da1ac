"""Photo decoding: every mode a competition folder may hold comes out as 8-bit RGB with the right pixels, says
what it converted, and a broken file stops with an error naming it."""

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskcls.errors import DataError
from maskcls.imageio import ImageModeWarning, decode_rgb, read_rgb

H, W = 12, 10


def rgb_pixels(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def save(image: Image.Image, path: Path, **kw) -> Path:
    image.save(path, **kw)
    return path


def decoded(path: Path) -> tuple[np.ndarray, str | None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # decode_rgb never warns: it runs in worker threads
        image, note = decode_rgb(path)
    assert image.dtype == np.uint8 and image.shape == (H, W, 3) and image.flags.writeable
    return image, note


def test_rgb_png_is_returned_as_it_is_without_a_note(tmp_path):
    pixels = rgb_pixels()
    image, note = decoded(save(Image.fromarray(pixels), tmp_path / "a.png"))
    np.testing.assert_array_equal(image, pixels)
    assert note is None


def test_rgb_jpeg_keeps_its_colours_without_a_note(tmp_path):
    pixels = np.zeros((H, W, 3), np.uint8)
    pixels[:] = (200, 40, 90)  # flat colour: JPEG keeps it within rounding
    image, note = decoded(save(Image.fromarray(pixels), tmp_path / "a.jpg", quality=95))
    np.testing.assert_allclose(image.astype(int), pixels.astype(int), atol=3)
    assert note is None


def test_rgba_drops_the_alpha_and_keeps_the_colours(tmp_path):
    pixels = rgb_pixels(1)
    rgba = np.dstack([pixels, np.full((H, W), 255, np.uint8)])
    image, note = decoded(save(Image.fromarray(rgba), tmp_path / "a.png"))
    np.testing.assert_array_equal(image, pixels)  # R, G, B in that order, not shifted by the alpha channel
    assert note == "RGBA image converted to RGB"


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_grayscale_becomes_three_equal_channels(tmp_path, suffix):
    gray = np.tile(np.linspace(0, 255, W).round().astype(np.uint8), (H, 1))
    image, note = decoded(save(Image.fromarray(gray), tmp_path / f"a{suffix}", quality=95))
    np.testing.assert_array_equal(image[..., 0], image[..., 1])
    np.testing.assert_array_equal(image[..., 0], image[..., 2])
    np.testing.assert_allclose(image[..., 0].astype(int), gray.astype(int), atol=0 if suffix == ".png" else 8)
    assert note == "grayscale (L) image converted to RGB"


def test_palette_png_is_looked_up_in_its_palette(tmp_path):
    palette = np.array([[255, 0, 0], [0, 128, 255], [10, 20, 30], [250, 250, 0]], np.uint8)
    index = np.random.default_rng(2).integers(0, len(palette), (H, W), dtype=np.uint8)
    img = Image.frombytes("P", (W, H), index.tobytes())
    img.putpalette(palette.flatten().tolist())
    image, note = decoded(save(img, tmp_path / "a.png"))
    np.testing.assert_array_equal(image, palette[index])
    assert note == "palette (P) image converted to RGB"


def test_16_bit_grayscale_is_scaled_to_8_bits_not_clipped(tmp_path):
    levels = np.arange(H * W, dtype=np.uint16).reshape(H, W) * 2  # 0..238 in 8 bits
    sixteen = levels * 257  # the same levels on the 16-bit scale (65535 = 255 * 257)
    image, note = decoded(save(Image.fromarray(sixteen), tmp_path / "a.png"))
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], levels)
    assert note.startswith("16-bit grayscale (I") and note.endswith("image converted to RGB")


@pytest.mark.parametrize(
    "cmyk, rgb",
    [((255, 0, 0, 0), (0, 255, 255)), ((0, 255, 0, 0), (255, 0, 255)), ((0, 0, 0, 128), (127, 127, 127))],
    ids=["cyan", "magenta", "half-black"],
)
def test_cmyk_jpeg_is_converted_to_its_rgb_colour(tmp_path, cmyk, rgb):
    image, note = decoded(save(Image.new("CMYK", (W, H), cmyk), tmp_path / "a.jpg", quality=95))
    np.testing.assert_allclose(image.reshape(-1, 3).astype(int), np.tile(rgb, (H * W, 1)), atol=3)
    assert note == "CMYK image converted to RGB"


# --- the warning of read_rgb ---------------------------------------------------------------------------------


def test_read_rgb_warns_once_naming_the_file_and_the_conversion(tmp_path):
    path = save(Image.fromarray(np.full((H, W), 77, np.uint8)), tmp_path / "gray.png")
    with pytest.warns(ImageModeWarning) as caught:
        image = read_rgb(path)
    assert [str(w.message) for w in caught] == [f"{path}: grayscale (L) image converted to RGB"]
    assert (image == 77).all()


def test_read_rgb_of_an_rgb_photo_does_not_warn(tmp_path):
    pixels = rgb_pixels(3)
    path = save(Image.fromarray(pixels), tmp_path / "rgb.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(read_rgb(path), pixels)


# --- broken files --------------------------------------------------------------------------------------------


def noisy_file(path: Path) -> bytes:
    """An encoded photo big enough that cutting it loses image data, not just a header."""
    noise = np.random.default_rng(4).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    save(Image.fromarray(noise), path, **({"quality": 90} if path.suffix == ".jpg" else {}))
    return path.read_bytes()


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_file_cut_in_half_names_the_file(tmp_path, suffix):
    path = tmp_path / f"person_001{suffix}"
    path.write_bytes(noisy_file(path)[: path.stat().st_size // 2])
    with pytest.raises(DataError) as err:
        decode_rgb(path)
    assert str(err.value).startswith(f"{path}: not a readable image")
    assert str(err.value).endswith("replace it with the original file")


@pytest.mark.parametrize("cut", [12, 2], ids=["no-end-chunk", "end-chunk-without-checksum"])
def test_a_png_that_lost_its_last_bytes_is_refused(tmp_path, cut):
    path = tmp_path / "mask1.png"
    data = noisy_file(path)
    path.write_bytes(data[:-cut])
    with pytest.raises(DataError, match="truncated") as err:
        decode_rgb(path)
    assert str(path) in str(err.value)


def test_bytes_after_the_png_end_are_tolerated(tmp_path):
    path = tmp_path / "normal.png"
    pixels = rgb_pixels(5)
    save(Image.fromarray(pixels), path)
    path.write_bytes(path.read_bytes() + b"\0" * 16)
    np.testing.assert_array_equal(decoded(path)[0], pixels)


def test_garbage_empty_and_missing_files_each_say_what_is_wrong(tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not a photo" * 10)
    with pytest.raises(DataError, match="not a readable image") as err:
        decode_rgb(garbage)
    assert str(err.value).startswith(f"{garbage}: ")

    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(DataError) as err:
        decode_rgb(empty)
    assert str(err.value) == f"{empty}: empty (0 bytes); replace it with the original file"

    missing = tmp_path / "missing.png"
    with pytest.raises(DataError) as err:
        decode_rgb(missing)
    assert str(err.value) == f"{missing}: file not found"
