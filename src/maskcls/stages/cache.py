"""cache stage: decode, crop and resize every photo once into memory-mappable uint8 arrays.

    data/index/{train,eval}.csv  ->  data/cache/{train,eval}.npy  (N, H, W, 3) RGB, index row order
                                     data/cache/meta.json          cache key, counts, faces found and their size

Decoding a 512x384 JPEG costs far more than the small network input it becomes; done once here, every
epoch of every model and fold reads ready arrays. The cache key hashes the source files' bytes and the cache
params, so a changed photo or crop setting gives a different key (DVC decides when to re-run; the key lets
the training stage and a person check what they are reading).

Crops (`cache.crop`, docs/face-crop.md): `none` the whole photo, `center` a fixed box, `face` a box sized from
the detected face (width x `cache.face_margin`) in the input's aspect. Face crops run two passes: the first
detects a face in every photo of both splits; the median detected face (centre and size, as fractions of the
photo) then stands in for the face of every photo where none was found, so train and eval share one fallback;
the second pass crops. Each photo's result depends on its own bytes and that one median only.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskcls import artifacts, layout
from maskcls.errors import DataError, ResourceError
from maskcls.imageio import ImageModeWarning, decode_rgb
from maskcls.io import atomic_path
from maskcls.params import CacheParams, Params
from maskcls.paths import Paths
from maskcls.progress import progress

# Bump when the bytes written for the same inputs change (crop rounding, resize method, array layout).
# The face crop's boxes changed without a bump: its key also hashes cache.face_margin, which no earlier key did,
# and the `none` and `center` bytes (and keys) are what they were.
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


@dataclass(frozen=True)
class TypicalFace:
    """The median detected face of a set of photos, as fractions of the photo: the face of photos without one."""

    cy: float
    cx: float
    h: float
    w: float

    def box(self, image_hw: tuple[int, int]) -> tuple[float, float, float, float]:
        """(top, left, height, width) in this photo's pixels (not rounded)."""
        ih, iw = image_hw
        return self.cy * ih - self.h * ih / 2, self.cx * iw - self.w * iw / 2, self.h * ih, self.w * iw


def typical_face(faces: Sequence[tuple[tuple[int, int], Box]]) -> TypicalFace | None:
    """The median, component by component, of (photo size, face box) pairs; None for no face at all.

    A median, not a mean: a few false hits (a poster, a mask's pattern) do not move it.
    """
    if not faces:
        return None
    parts = np.array(
        [((t + h / 2) / ih, (x + w / 2) / iw, h / ih, w / iw) for (ih, iw), (t, x, h, w) in faces], np.float64
    )
    return TypicalFace(*(float(v) for v in np.median(parts, axis=0)))


def face_box(image_hw: tuple[int, int], cache: CacheParams, face: Sequence[float]) -> Box:
    """The crop around a face (top, left, height, width): width = face width x cache.face_margin, height from the
    input's aspect, centred on the face, shifted inside the photo, and shrunk (aspect kept) only when larger.

    When the input is wider than tall the width also covers margin x the face's height in that aspect, so
    the box always holds the face with the margin around it.
    """
    top, left, h, w = face
    aspect = cache.height / cache.width
    width = cache.face_margin * max(w, h / aspect)
    shrink = min(1.0, image_hw[1] / width, image_hw[0] / (width * aspect))
    box_w = max(1, min(image_hw[1], round(width * shrink)))
    box_h = max(1, min(image_hw[0], round(box_w * aspect)))
    return box_around((top + h / 2, left + w / 2), (box_h, box_w), image_hw)


def crop_box(
    image_hw: tuple[int, int], cache: CacheParams, face: Box | None = None, typical: TypicalFace | None = None
) -> tuple[Box, str]:
    """The box cache.crop takes from a photo and what it followed: `photo`, `center`, `face` or `typical`
    (the median face, for a face crop of a photo without a detected face); `center` for a face crop when no
    photo had a face at all."""
    if cache.crop == "none":
        return (0, 0, *image_hw), "photo"
    if cache.crop == "center":
        return center_box(image_hw, cache), "center"
    if face is not None:
        return face_box(image_hw, cache, face), "face"
    if typical is not None:
        return face_box(image_hw, cache, typical.box(image_hw)), "typical"
    return center_box(image_hw, cache), "center"


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


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


@dataclass(frozen=True)
class Scanned:
    """A face crop's first pass over one photo."""

    digest: str
    image_hw: tuple[int, int]
    face: Box | None


def scan(path: Path, detect: FaceDetector) -> Scanned:
    """Digest, decode, detect. Pure per image."""
    digest = file_digest(path)
    image, _ = decode_rgb(path)  # raises DataError naming the file when it is missing or broken
    return Scanned(digest, image.shape[:2], detect(image))


@dataclass(frozen=True)
class Processed:
    image: np.ndarray  # (H, W, 3) uint8 at the cache size
    digest: str  # sha256 of the source file's bytes
    followed: str  # what the crop box followed: photo, center, face or typical (see crop_box)
    odd_size: bool  # the photo was not the competition's 512x384
    converted: str | None  # the photo was not 8-bit RGB: how it was converted
    scale: float  # input pixels per source pixel across (cache.width / crop width)
    face_width: float | None  # the detected face's width in input pixels; None without one

    @property
    def fell_back(self) -> bool:
        """A face crop found no face in this photo."""
        return self.followed in ("typical", "center")


def crop_and_resize(image: np.ndarray, box: Box, cache: CacheParams) -> np.ndarray:
    """The box's pixels resized to (cache.height, cache.width)."""
    top, left, h, w = box
    crop = image[top : top + h, left : left + w]
    # INTER_AREA: the right filter for shrinking (no aliasing), which nearly every crop is.
    out = cv2.resize(crop, (cache.width, cache.height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(out, dtype=np.uint8)


def process(path: Path, cache: CacheParams, face: Box | None = None, typical: TypicalFace | None = None) -> Processed:
    """Digest, decode once, crop, resize. `face` is the photo's detected face (from `scan`), `typical` the median
    face of all photos. Pure per image, so the result does not depend on the thread pool."""
    digest = file_digest(path)
    # decode_rgb, not read_rgb: it reports conversions instead of warning, and warnings are not thread-safe.
    image, converted = decode_rgb(path)  # raises DataError naming the file when it is missing or broken
    box, followed = crop_box(image.shape[:2], cache, face, typical)
    scale = cache.width / box[3]
    face_width = None if face is None else face[3] * scale
    odd = image.shape[:2] != layout.IMAGE_SIZE
    return Processed(crop_and_resize(image, box, cache), digest, followed, odd, converted, scale, face_width)


# --- the report: what the model gets --------------------------------------------------------------------------


def _median(values: Sequence[float], digits: int = 2) -> float | None:
    return round(float(np.median(values)), digits) if len(values) else None


def _share(found: int, total: int) -> float | None:
    return round(found / total, 4) if total else None


def face_report(
    faces: Mapping[str, Sequence[Box | None]],
    stems: Mapping[str, Sequence[str] | None],
    processed: Mapping[str, Mapping[str, list]],
    typical: TypicalFace | None,
) -> dict:
    """meta.json's `faces`: per split the share of photos with a detected face (train also per stem), the
    median face width in the photo and in the input, the median crop scale, and the median (typical) face."""
    report: dict = {"share": {}, "share_by_stem": {}, "median_width": {}, "median_input_width": {}}
    report["median_scale"] = {}
    for split, found in faces.items():
        report["share"][split] = _share(sum(f is not None for f in found), len(found))
        if stems.get(split) is not None:
            by_stem: dict[str, list[int]] = {}
            for stem, face in zip(stems[split], found, strict=True):
                counts = by_stem.setdefault(str(stem), [0, 0])
                counts[0] += face is not None
                counts[1] += 1
            order = {s: i for i, s in enumerate(layout.STEMS)}
            report["share_by_stem"][split] = {
                s: _share(*by_stem[s]) for s in sorted(by_stem, key=lambda s: (order.get(s, len(order)), s))
            }
        report["median_width"][split] = _median([f[3] for f in found if f is not None])
        report["median_input_width"][split] = _median([w for w in processed[split]["face_widths"] if w is not None])
        report["median_scale"][split] = _median(processed[split]["scales"], 4)
    report["typical"] = (
        None
        if typical is None
        else {
            "center_yx": [round(typical.cy, 4), round(typical.cx, 4)],
            "size_hw": [round(typical.h, 4), round(typical.w, 4)],
        }
    )
    return report


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"


def report_lines(meta: dict, cache: CacheParams) -> list[str]:
    """What `maskcls cache` prints: how big a face is in the model's input and how often one was found."""
    size = f"{cache.height}x{cache.width}"
    lines = []
    if cache.crop != "face":
        box, _ = crop_box(layout.IMAGE_SIZE, cache)
        scale = cache.width / box[3]
        what = "the whole photo" if cache.crop == "none" else f"a {box[2]}x{box[3]} box"
        lines.append(
            f"cache: crop {cache.crop}: {what} of a 512x384 photo -> {size} input, scale {scale:.3f} "
            f"(a 160 px wide face becomes {160 * scale:.0f} px)"
        )
    faces = meta.get("faces")
    if faces is None:
        if cache.crop != "face":
            lines.append("cache: set cache.detect_faces: true to measure the faces the model gets")
        return lines
    for split, share in faces["share"].items():
        text = f"cache: {split}: face found in {_percent(share)} of {meta['counts'][split]} photos"
        by_stem = faces["share_by_stem"].get(split)
        if by_stem:
            text += " (" + ", ".join(f"{s} {_percent(v)}" for s, v in by_stem.items()) + ")"
        width, input_width = faces["median_width"][split], faces["median_input_width"][split]
        if width is not None:
            text += f"; median face {width:.0f} px wide -> {input_width:.0f} px in the {size} input"
        scale = faces["median_scale"][split]
        lines.append(text + ("" if scale is None else f"; median scale {scale:.3f}"))
    if cache.crop == "face":
        fell = sum(meta["face_fallbacks"].values())
        typical = faces["typical"]
        if typical is None:
            lines.append(f"cache: no face in any photo: all {fell} used the center crop (cache.crop_size)")
        elif fell:
            (cy, cx), (_, w) = typical["center_yx"], typical["size_hw"]
            lines.append(
                f"cache: {fell} photos without a face were cropped around the median face "
                f"(centre at y {cy:.2f}, x {cx:.2f} of the photo, {w:.2f} of its width)"
            )
    return lines


# --- the stage ----------------------------------------------------------------------------------------------


def raw_dir(params: Params, root: Path) -> Path:
    raw = Path(params.data.raw_dir)
    return raw if raw.is_absolute() else root / raw


def cache_params_dict(cache: CacheParams) -> dict:
    """The params the arrays depend on: face_margin only for the face crop, so `none` and `center` keep their keys."""
    out = {
        "height": cache.height,
        "width": cache.width,
        "crop": cache.crop,
        "crop_size": list(cache.crop_size),
        "crop_center": list(cache.crop_center),
    }
    if cache.crop == "face":
        out["face_margin"] = cache.face_margin
    return out


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


def scan_split(files: Sequence[Path], split: str, pool: ThreadPoolExecutor, detect: FaceDetector) -> list[Scanned]:
    """The first pass: every photo's digest, size and detected face, in row order."""
    scanned: list[Scanned] = []
    for rows in progress(list(_chunks(len(files), CHUNK)), f"faces {split}", size=len):
        scanned += pool.map(lambda path: scan(path, detect), [files[i] for i in rows])
    return scanned


def build_split(
    files: Sequence[Path],
    out_dir: Path,
    split: str,
    cache: CacheParams,
    pool: ThreadPoolExecutor,
    faces: Sequence[Box | None] | None = None,
    typical: TypicalFace | None = None,
) -> dict:
    """Write one split's (N, H, W, 3) array into `out_dir`; returns the split's digests, counts, scales and
    face widths in input pixels. `faces`: the first pass's face per row (None: detection did not run)."""
    desc = f"cache {split}"
    array = artifacts.create_cache_array(out_dir, split, (len(files), cache.height, cache.width, 3))
    digests: list[str] = []
    converted: list[str] = []
    scales: list[float] = []
    face_widths: list[float | None] = []
    fallbacks = odd = 0

    def one(i: int) -> Processed:
        return process(files[i], cache, None if faces is None else faces[i], typical)

    for rows in progress(list(_chunks(len(files), CHUNK)), desc, size=len):
        # map keeps input order: results land at their own row whatever thread finishes first.
        for i, result in zip(rows, pool.map(one, rows), strict=True):
            array[i] = result.image
            digests.append(result.digest)
            fallbacks += result.fell_back
            odd += result.odd_size
            scales.append(result.scale)
            face_widths.append(result.face_width)
            if result.converted:
                converted.append(f"{files[i]}: {result.converted}")
    array.flush()
    del array
    if converted:
        shown = "\n".join(converted[:10]) + (f"\n... and {len(converted) - 10} more" if len(converted) > 10 else "")
        warnings.warn(f"{desc}: {len(converted)} photos were not 8-bit RGB:\n{shown}", ImageModeWarning, stacklevel=2)
    return {
        "digests": digests,
        "count": len(files),
        "face_fallbacks": fallbacks,
        "odd_size": odd,
        "scales": scales,
        "face_widths": face_widths,
    }


def run(params: Params, root: Path = Path("."), threads: int | None = None) -> dict:
    """Build data/cache from the index; returns what meta.json says."""
    paths = Paths(root)
    cache = params.cache
    raw = raw_dir(params, root)
    index = {split: artifacts.read_index(paths.index_dir, split) for split in SPLITS}
    files = {split: [raw / f for f in index[split]["file"]] for split in SPLITS}
    stems = {split: list(index[split]["stem"]) if "stem" in index[split] else None for split in SPLITS}
    detect = haar_detector() if cache.crop == "face" or cache.detect_faces else None

    with atomic_path(paths.cache_dir) as tmp, ThreadPoolExecutor(threads or default_threads()) as pool:
        tmp.mkdir()
        faces: dict[str, list[Box | None]] = {}
        typical = None
        if detect is not None:
            scanned = {split: scan_split(files[split], split, pool, detect) for split in SPLITS}
            faces = {split: [s.face for s in scanned[split]] for split in SPLITS}
            typical = typical_face([(s.image_hw, s.face) for split in SPLITS for s in scanned[split] if s.face])
        results = {
            split: build_split(files[split], tmp, split, cache, pool, faces.get(split), typical) for split in SPLITS
        }
        if detect is not None:
            for split in SPLITS:  # the faces must be those of the bytes cached
                pairs = zip(files[split], scanned[split], results[split]["digests"], strict=True)
                changed = [f for f, first, second in pairs if first.digest != second]
                if changed:
                    raise DataError(f"{changed[0]}: changed while the cache was built; run the cache stage again")
        meta = {
            "format": FORMAT_VERSION,
            "key": cache_key({s: r["digests"] for s, r in results.items()}, cache),
            "cache": cache_params_dict(cache),
            "shape": [cache.height, cache.width, 3],
            "counts": {s: r["count"] for s, r in results.items()},
            "face_fallbacks": {s: r["face_fallbacks"] for s, r in results.items()} if cache.crop == "face" else None,
            "odd_size_photos": {s: r["odd_size"] for s, r in results.items()},
        }
        if detect is not None:  # only then: the meta.json of `none` and `center` stays what it was
            meta["faces"] = face_report(faces, stems, results, typical)
        artifacts.write_cache_meta(tmp, meta)
    for line in report_lines(meta, cache):
        print(line, file=sys.stderr)
    return meta
