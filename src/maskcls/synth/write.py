"""Writing the sample folder: train/ and eval/ in the competition layout, their csvs, and the truth files.

Besides `train/` and `eval/` the sample holds the truth the real data lacks: `eval_labels.csv` (the answers,
beside `eval/` so no stage can read it as input by accident) and `train_truth.csv` (train labels before the
label noise). People are rendered and written by a pool of processes; the folder appears complete or not at all.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from maskcls import layout
from maskcls.errors import ParamsError
from maskcls.io import atomic_path
from maskcls.synth.people import EVAL, MAX_PEOPLE, TRAIN, draw_eval_people, draw_train_people, eval_images
from maskcls.synth.render import render_with_look

# Train labels before the label noise; like eval_labels.csv it sits beside train/, never inside it.
TRAIN_TRUTH = "train_truth.csv"


def encode(img: np.ndarray, ext: str, quality: int) -> bytes:
    """File bytes of an RGB photo. Every photo went through a phone's JPEG; .png ones were converted later."""
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_OPTIMIZE, 0])
    if ok and ext == ".png":
        decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
        ok, data = cv2.imencode(".png", decoded, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {ext} image")
    return data.tobytes()


def _junk_bytes(rng: np.random.Generator) -> bytes:
    """The head of a macOS AppleDouble file followed by a little garbage."""
    return b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + rng.bytes(int(rng.integers(4, 40)))


def _write_tables(root: Path, train: pd.DataFrame, images: pd.DataFrame) -> None:
    csv = {"index": False, "lineterminator": "\n"}
    table = pd.DataFrame({
        "id": train["id"],
        "gender": train["csv_gender"],
        "race": "Asian",
        "age": train["csv_age"],
        "path": train["path"],
    })  # fmt: skip
    (root / layout.TRAIN_CSV).parent.mkdir(parents=True, exist_ok=True)
    table[layout.TRAIN_COLUMNS].to_csv(root / layout.TRAIN_CSV, **csv)
    train[["id", "path", "gender", "age", "mask_swap"]].to_csv(root / TRAIN_TRUTH, **csv)
    (root / layout.EVAL_IMAGES).mkdir(parents=True, exist_ok=True)
    images.assign(ans=0)[layout.EVAL_COLUMNS].to_csv(root / layout.EVAL_CSV, **csv)
    images[["ImageID", "ans", "mask", "gender", "age"]].to_csv(root / layout.EVAL_LABELS, **csv)


@dataclass(frozen=True)
class _Task:
    """One person's photos to write: all a worker needs, and cheap to send to it."""

    root: str
    seed: int
    split: int
    index: int
    gender: str
    age: int
    swap: bool
    files: tuple[tuple[str, str], ...]  # (stem, path relative to root)
    junk: tuple[str, ...]  # stems with a `._` file beside them


def _write_person(task: _Task) -> None:
    photos, look = render_with_look(task.seed, task.split, task.index, task.gender, task.age, task.swap)
    root = Path(task.root)
    junk_rng = np.random.default_rng([task.seed, task.split, task.index, 9])
    for stem, rel in task.files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(photos[stem], path.suffix, look.quality))
        if stem in task.junk:
            (path.parent / f"{layout.JUNK_PREFIX}{path.name}").write_bytes(_junk_bytes(junk_rng))


def _init_worker() -> None:
    cv2.setNumThreads(1)  # the pool is the parallelism; OpenCV's own threads would only compete with it


def _tasks(root: Path, train: pd.DataFrame, evals: pd.DataFrame, images: pd.DataFrame, seed: int) -> list[_Task]:
    tasks = []
    for index, row in enumerate(train.itertuples(index=False)):
        files = tuple(
            (stem, f"{layout.TRAIN_IMAGES}/{row.path}/{stem}{ext}")
            for stem, ext in zip(layout.STEMS, row.exts, strict=True)
        )
        tasks.append(
            _Task(str(root), seed, TRAIN, index, row.gender, int(row.age), bool(row.mask_swap), files, row.junk)
        )
    by_person = images.sort_values(["person", "stem"]).groupby("person")
    for index, row in enumerate(evals.itertuples(index=False)):
        photos = by_person.get_group(index)
        files = tuple((s, f"{layout.EVAL_IMAGES}/{i}") for s, i in zip(photos["stem"], photos["ImageID"], strict=True))
        tasks.append(_Task(str(root), seed, EVAL, index, row.gender, int(row.age), False, files, ()))
    return tasks


def generate(
    out: str | os.PathLike, people: int = 300, eval_people: int = 150, seed: int = 0, workers: int | None = None
) -> Path:
    """Write a sample with `people` train folders and `eval_people` eval people (7 photos each) to `out`.

    The folder appears complete or not at all. `workers` processes draw people in parallel (default: the
    CPU count, one process for small samples); the bytes are the same for any number.
    """
    if not 1 <= people <= MAX_PEOPLE or eval_people < 0:
        raise ParamsError(
            f"synth: need 1 <= people <= {MAX_PEOPLE} and eval_people >= 0, got {people} and {eval_people}"
        )
    out = Path(out)
    train = draw_train_people(people, seed)
    evals = draw_eval_people(eval_people, seed)
    images = eval_images(evals, seed)
    if workers is None:
        workers = 1 if people + eval_people < 60 else min(os.cpu_count() or 1, 8)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        _write_tables(tmp, train, images)
        tasks = _tasks(tmp, train, evals, images, seed)
        with tqdm(total=len(tasks), desc="synth", unit="person", file=sys.stderr) as bar:
            if workers <= 1:
                for task in tasks:
                    _write_person(task)
                    bar.update()
            else:
                context = multiprocessing.get_context("spawn")  # no fork: the parent may hold torch's threads
                with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
                    for _ in pool.map(_write_person, tasks, chunksize=4):
                        bar.update()
    return out
