"""Reading competition photos: every decode goes through here, so odd files are handled one way."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from maskcls.errors import DataError

SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I")
PNG_END = b"IEND"


class ImageModeWarning(UserWarning):
    """A photo was not 8-bit RGB and was converted."""


def decode_rgb(path: str | Path) -> tuple[np.ndarray, str | None]:
    """Decode a photo to uint8 RGB (H, W, 3) and say what conversion it needed (None: it was 8-bit RGB).

    Never warns, so it is safe to call from worker threads (the `warnings` filters are process-global);
    unreadable, empty and truncated files raise DataError naming the file.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.format == "PNG":
                _check_png_end(path)
            mode = img.mode
            if mode in SIXTEEN_BIT_MODES:
                img = _to_8bit(img)
            note = None
            if img.mode != "RGB":
                note = f"{_describe(mode)} image converted to RGB"
                img = img.convert("RGB")
            return np.asarray(img, dtype=np.uint8).copy(), note
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        size = path.stat().st_size if path.exists() else 0
        what = "empty (0 bytes)" if size == 0 else f"not a readable image ({exc})"
        raise DataError(f"{path}: {what}; replace it with the original file") from None


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode a photo to uint8 RGB (H, W, 3).

    Grayscale, palette, RGBA, CMYK and 16-bit images are converted with an ImageModeWarning; unreadable files
    raise DataError naming the file.
    """
    image, note = decode_rgb(path)
    if note:
        warnings.warn(f"{path}: {note}", ImageModeWarning, stacklevel=2)
    return image


def _to_8bit(img: Image.Image) -> Image.Image:
    # Scale to 8 bits instead of clipping, which would turn the photo white.
    arr = np.asarray(img, dtype=np.float64)
    peak = 65535.0 if arr.max() > 255 else 255.0
    return Image.fromarray(np.round(arr * (255.0 / peak)).astype(np.uint8), mode="L")


_MODE_NAMES = {"L": "grayscale", "LA": "grayscale+alpha", "P": "palette", "PA": "palette+alpha", "1": "1-bit"}


def _describe(mode: str) -> str:
    if mode in SIXTEEN_BIT_MODES:
        return f"16-bit grayscale ({mode})"
    name = _MODE_NAMES.get(mode)
    return f"{name} ({mode})" if name else mode  # RGBA, CMYK, ... name themselves


def _check_png_end(path: Path) -> None:
    """Pillow decodes a PNG that lost its last bytes without complaint; a cut-off copy must not pass."""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 4096))
        tail = fh.read()
    end = tail.rfind(PNG_END)
    # The end chunk is its 4-byte type followed by a 4-byte checksum; bytes after it are tolerated.
    if end < 0 or len(tail) - end < len(PNG_END) + 4:
        raise OSError("file ends before the PNG end marker: truncated")
