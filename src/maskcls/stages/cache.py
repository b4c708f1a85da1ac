"""cache stage: decode, crop and resize every photo once into memory-mappable uint8 arrays.

    data/index/{train,eval}.csv  ->  data/cache/{train,eval}.npy  (N, H, W, 3) RGB, index row order
                                     data/cache/meta.json          cache key, counts, face-detection fallbacks

Decoding a 512x384 JPEG costs far more than the small network input it becomes; done once here, every
epoch of every model and fold reads ready arrays. The cache key hashes the source files' bytes and the cache
params, so a changed photo or crop setting gives a different key (DVC decides when to re-run; the key lets
the training stage and a person check what they are reading).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskcls import artifacts, layout
from maskcls.errors import ResourceError
from maskcls.imageio import ImageModeWarning, decode_rgb
from maskcls.io import atomic_path
from maskcls.params import CacheParams, Params
from maskcls.paths import Paths
from maskcls.progress import progress

# Bump when the bytes written for the same inputs change (crop rounding, resize method, array layout).
FORMAT_VERSION = 1
SPLITS = ("train", "eval")
# Images in flight per chunk: bounds memory while keeping the thread pool busy.
CHUNK = 256

Box = tuple[int, int, int, int]  # (top, left, height, width) in source pixels
FaceDetector = Callable[[np.ndarray], "Box | None"]


# --- crop boxes ---------------------------------------------------------------------------------------------


def scaled_crop_size(image_hw: tuple[int, int], crop_size: tuple[int, int]) -> tuple[int, int]:
    """`crop_size` is given for the competition's 512x384 photo; other photo sizes scale the box with them."""
    ref_h, ref_w = layout.IMAGE_SIZE
    h = round(crop_size[0] * image_hw[0] / ref_h)
    w = round(crop_size[1] * image_hw[1] / ref_w)
    return max(1, min(h, image_hw[0])), max(1, min(w, image_hw[1]))


def box_around(center_yx: tuple[float, float], size_hw: tuple[int, int], image_hw: tuple[int, int]) -> Box:
    """A size_hw box centred on center_yx, shifted (not shrunk) to lie inside the photo."""
    h, w = min(size_hw[0], image_hw[0]), min(size_hw[1], image_hw[1])
    top = int(round(center_yx[0] - h / 2))
    left = int(round(center_yx[1] - w / 2))
    top = min(max(top, 0), image_hw[0] - h)
    left = min(max(left, 0), image_hw[1] - w)
    return top, left, h, w


def center_box(image_hw: tuple[int, int], cache: CacheParams) -> Box:
    center = (cache.crop_center[0] * image_hw[0], cache.crop_center[1] * image_hw[1])
    return box_around(center, scaled_crop_size(image_hw, cache.crop_size), image_hw)


def face_box(image_hw: tuple[int, int], cache: CacheParams, face: Box | None) -> tuple[Box, bool]:
    """The crop box centred on a detected face; the center box when there is none. Returns (box, fell_back)."""
    if face is None:
        return center_box(image_hw, cache), True
    top, left, h, w = face
    center = (top + h / 2, left + w / 2)
    return box_around(center, scaled_crop_size(image_hw, cache.crop_size), image_hw), False


# --- face detection -----------------------------------------------------------------------------------------

HAAR_FILE = "haarcascade_frontalface_default.xml"
# Haar cascades are slow at full size and faces fill a good part of the photo: detect on a smaller copy.
DETECT_HEIGHT = 256


def haar_detector() -> FaceDetector:
    """OpenCV's frontal-face Haar cascade; returns the largest face as (top, left, h, w) or None.

    One classifier per thread: a CascadeClassifier must not be shared between threads.
    """
    classifier_cls = getattr(cv2, "CascadeClassifier", None)
    xml = Path(getattr(getattr(cv2, "data", None), "haarcascades", "") or ".") / HAAR_FILE
    if classifier_cls is None or not xml.is_file():
        raise ResourceError(
            f"cache.crop: face needs OpenCV's Haar cascades (cv2.CascadeClassifier and {HAAR_FILE}), which "
            f"OpenCV {cv2.__version__} does not ship (OpenCV 5 dropped them; opencv-python-headless 4.x has "
            "them). Use cache.crop: center, or install opencv-python-headless<5."
        )
    local = threading.local()

    def detect(image: np.ndarray) -> Box | None:
        if not hasattr(local, "classifier"):
            local.classifier = classifier_cls(str(xml))
        scale = min(1.0, DETECT_HEIGHT / image.shape[0])
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        min_side = max(16, gray.shape[1] // 8)  # a face narrower than 1/8 of the photo is a false hit
        faces = local.classifier.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
        if len(faces) == 0:
            return None
        x, y, w, h = max((tuple(int(v) for v in f) for f in faces), key=lambda f: (f[2] * f[3], -f[1], -f[0]))
        return round(y / scale), round(x / scale), round(h / scale), round(w / scale)

    return detect


# --- one image ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Processed:
    image: np.ndarray  # (H, W, 3) uint8 at the cache size
    digest: str  # sha256 of the source file's bytes
    fell_back: bool  # face crop found no face and used the center box
    odd_size: bool  # the photo was not the competition's 512x384
    converted: str | None  # the photo was not 8-bit RGB: how it was converted


def crop_and_resize(image: np.ndarray, cache: CacheParams, face: FaceDetector | None = None) -> tuple[np.ndarray, bool]:
    """Crop per cache.crop and resize to (cache.height, cache.width). Returns (array, face fallback used)."""
    image_hw = image.shape[:2]
    fell_back = False
    if cache.crop == "none":
        box = (0, 0, *image_hw)
    elif cache.crop == "center":
        box = center_box(image_hw, cache)
    else:
        if face is None:
            raise ValueError("crop 'face' needs a face detector")
        box, fell_back = face_box(image_hw, cache, face(image))
    top, left, h, w = box
    crop = image[top : top + h, left : left + w]
    # INTER_AREA: the right filter for shrinking (no aliasing); the photo is always shrunk here.
    out = cv2.resize(crop, (cache.width, cache.height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(out, dtype=np.uint8), fell_back


def process(path: Path, cache: CacheParams, face: FaceDetector | None = None) -> Processed:
    """Digest, decode once, crop, resize. Pure per image, so the result does not depend on the thread pool."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
    # decode_rgb, not read_rgb: it reports conversions instead of warning, and warnings are not thread-safe.
    image, converted = decode_rgb(path)  # raises DataError naming the file when it is missing or broken
    out, fell_back = crop_and_resize(image, cache, face)
    return Processed(out, digest, fell_back, image.shape[:2] != layout.IMAGE_SIZE, converted)


# --- the stage ----------------------------------------------------------------------------------------------


def raw_dir(params: Params, root: Path) -> Path:
    raw = Path(params.data.raw_dir)
    return raw if raw.is_absolute() else root / raw


def cache_params_dict(cache: CacheParams) -> dict:
    return {
        "height": cache.height,
        "width": cache.width,
        "crop": cache.crop,
        "crop_size": list(cache.crop_size),
        "crop_center": list(cache.crop_center),
    }


def cache_key(digests: dict[str, Sequence[str]], cache: CacheParams) -> str:
    """sha256 over the format version, the cache params and every source file's digest in row order."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT_VERSION, "cache": cache_params_dict(cache)}, sort_keys=True).encode())
    for split in sorted(digests):
        h.update(f"\n{split}:{len(digests[split])}\n".encode())
        h.update("\n".join(digests[split]).encode())
    return h.hexdigest()


def _chunks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def default_threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def build_split(
    files: Sequence[Path],
    out_dir: Path,
    split: str,
    cache: CacheParams,
    pool: ThreadPoolExecutor,
    face: FaceDetector | None,
) -> dict:
    """Write one split's (N, H, W, 3) array into `out_dir`; returns the split's digests and counts."""
    desc = f"cache {split}"
    array = artifacts.create_cache_array(out_dir, split, (len(files), cache.height, cache.width, 3))
    digests: list[str] = []
    converted: list[str] = []
    fallbacks = odd = 0
    for rows in progress(list(_chunks(len(files), CHUNK)), desc, size=len):
        # map keeps input order: results land at their own row whatever thread finishes first.
        results = pool.map(lambda path: process(path, cache, face), [files[i] for i in rows])
        for i, result in zip(rows, results, strict=True):
            array[i] = result.image
            digests.append(result.digest)
            fallbacks += result.fell_back
            odd += result.odd_size
            if result.converted:
                converted.append(f"{files[i]}: {result.converted}")
    array.flush()
    del array
    if converted:
        shown = "\n".join(converted[:10]) + (f"\n... and {len(converted) - 10} more" if len(converted) > 10 else "")
        warnings.warn(f"{desc}: {len(converted)} photos were not 8-bit RGB:\n{shown}", ImageModeWarning, stacklevel=2)
    return {"digests": digests, "count": len(files), "face_fallbacks": fallbacks, "odd_size": odd}


def run(params: Params, root: Path = Path("."), threads: int | None = None) -> dict:
    """Build data/cache from the index; returns what meta.json says."""
    paths = Paths(root)
    cache = params.cache
    raw = raw_dir(params, root)
    files = {split: [raw / f for f in artifacts.read_index(paths.index_dir, split)["file"]] for split in SPLITS}
    face = haar_detector() if cache.crop == "face" else None

    with atomic_path(paths.cache_dir) as tmp, ThreadPoolExecutor(threads or default_threads()) as pool:
        tmp.mkdir()
        results = {split: build_split(files[split], tmp, split, cache, pool, face) for split in SPLITS}
        meta = {
            "format": FORMAT_VERSION,
            "key": cache_key({s: r["digests"] for s, r in results.items()}, cache),
            "cache": cache_params_dict(cache),
            "shape": [cache.height, cache.width, 3],
            "counts": {s: r["count"] for s, r in results.items()},
            "face_fallbacks": {s: r["face_fallbacks"] for s, r in results.items()} if cache.crop == "face" else None,
            "odd_size_photos": {s: r["odd_size"] for s, r in results.items()},
        }
        artifacts.write_cache_meta(tmp, meta)
    if cache.crop == "face":
        total = sum(meta["counts"].values())
        fell = sum(meta["face_fallbacks"].values())
        print(f"cache: no face found in {fell} of {total} photos; those used the center crop", file=sys.stderr)
    return meta
