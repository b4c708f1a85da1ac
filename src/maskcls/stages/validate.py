"""validate: check a competition folder completely and write the image index only if it is sound.

Every photo is decoded, so a truncated or non-image file fails here rather than hours into training. All
problems are collected and reported together, each naming the file or csv row and what to do about it.
Oddities the pipeline handles (photos that are not 8-bit RGB or not 384x512, the id with two folders) are
warnings on stderr. The raw folder is only ever read.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from maskcls import artifacts, layout
from maskcls.errors import DataError
from maskcls.imageio import decode_rgb
from maskcls.scan import Findings, scan_eval, scan_train

CONVERTED = "photos that are not 8-bit RGB; converted to RGB when read"
RESIZED = f"photos not {layout.IMAGE_SIZE[1]}x{layout.IMAGE_SIZE[0]} (width x height); the cache resizes them"


def run(raw_dir: str | Path, out: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check `raw_dir`; raise DataError listing every problem. With `out`, write train.csv and eval.csv there."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise DataError(f"{raw_dir}: no such folder; pass the competition folder holding train/ and eval/")
    train, evaluation = scan_train(raw_dir), scan_eval(raw_dir)
    found = Findings()
    found.extend(train.findings)
    found.extend(evaluation.findings)
    check_images(raw_dir, [*train.frame["file"], *evaluation.frame["file"]], found)
    found.warn()
    found.raise_if_problems(raw_dir)

    if out is not None:
        artifacts.write_index(Path(out), train.frame, evaluation.frame)
    people = train.frame["person"].nunique()
    print(
        f"{raw_dir}: OK, {len(train.frame)} train photos of {people} people, {len(evaluation.frame)} eval photos",
        file=sys.stderr,
    )
    return train.frame, evaluation.frame


def check_images(raw_dir: Path, files: list[str], found: Findings) -> None:
    """Decode every photo (threads: Pillow releases the GIL while decoding) and record what is wrong or odd."""
    workers = min(8, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda rel: _inspect(raw_dir, rel), files)
        for rel, (problem, notes) in tqdm(
            zip(files, results, strict=True), total=len(files), desc="decoding photos", unit="img", leave=False
        ):
            if problem:
                found.problem(rel, problem)
            for headline, detail in notes:
                found.note(headline, f"{rel}: {detail}")


def _inspect(raw_dir: Path, rel: str) -> tuple[str | None, list[tuple[str, str]]]:
    """(what is wrong, [(headline, detail) of accepted oddities]) for one photo."""
    path = raw_dir / rel
    try:
        image, conversion = decode_rgb(path)
    except DataError as exc:
        return str(exc).removeprefix(f"{path}: "), []
    except Exception as exc:  # whatever the decoder raises, the file is broken: report it with the others
        return f"could not be decoded ({type(exc).__name__}: {exc}); replace it with the original file", []
    notes = []
    if conversion:
        notes.append((CONVERTED, conversion))
    height, width = image.shape[:2]
    if (height, width) != layout.IMAGE_SIZE:
        notes.append((RESIZED, f"{width}x{height}"))
    return None, notes
