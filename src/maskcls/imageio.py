"""Reading competition photos: every decode goes through here, so odd files are handled one way."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from maskcls.errors import DataError


class ImageModeWarning(UserWarning):
    """A photo was not 8-bit RGB and was converted."""


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode a photo to uint8 RGB (H, W, 3).

    Grayscale, palette, RGBA, CMYK and 16-bit images are converted with a warning; unreadable files raise
    DataError naming the file.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16-bit: scale to 8 bits instead of clipping, which would turn the photo white.
                arr = np.asarray(img, dtype=np.float64)
                peak = 65535.0 if arr.max() > 255 else 255.0
                img = Image.fromarray(np.round(arr * (255.0 / peak)).astype(np.uint8), mode="L")
            if img.mode != "RGB":
                warnings.warn(f"{path}: {mode} image converted to RGB", ImageModeWarning, stacklevel=2)
                img = img.convert("RGB")
            return np.asarray(img, dtype=np.uint8).copy()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        size = path.stat().st_size if path.exists() else 0
        what = "empty (0 bytes)" if size == 0 else f"not a readable image ({exc})"
        raise DataError(f"{path}: {what}; replace it with the original file") from None
