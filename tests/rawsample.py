"""A tiny generated competition folder: made once per test process, copied for every test that breaks it.

Copying 63 small files is much cheaper than generating them, and each test gets its own folder to damage.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd

from maskcls import layout

PEOPLE = 6
EVAL_PEOPLE = 3
_templates: dict[Path, Path] = {}


def template(tmp_path_factory) -> Path:
    """The generated folder of this test process; never modify it, copy it."""
    base = tmp_path_factory.getbasetemp()
    if base not in _templates:
        from maskcls.stages import synth

        out = base / "sample-template"
        synth.run(out, people=PEOPLE, eval_people=EVAL_PEOPLE, seed=0)
        _templates[base] = out
    return _templates[base]


def copy(tmp_path_factory, dest: Path) -> Path:
    shutil.copytree(template(tmp_path_factory), dest)
    return dest


def digest(root: Path) -> str:
    """Hash of every path, its kind and its bytes under `root`: equal digests mean an untouched folder."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes() if path.is_file() else b"<dir>")
    return h.hexdigest()


def read_train(raw: Path) -> pd.DataFrame:
    return pd.read_csv(raw / layout.TRAIN_CSV, dtype=str, keep_default_na=False)


def write_train(raw: Path, table: pd.DataFrame) -> None:
    table.to_csv(raw / layout.TRAIN_CSV, index=False, lineterminator="\n")


def read_info(raw: Path) -> pd.DataFrame:
    return pd.read_csv(raw / layout.EVAL_CSV, dtype=str, keep_default_na=False)


def write_info(raw: Path, table: pd.DataFrame) -> None:
    table.to_csv(raw / layout.EVAL_CSV, index=False, lineterminator="\n")


def folders(raw: Path) -> list[Path]:
    return sorted(p for p in (raw / layout.TRAIN_IMAGES).iterdir() if p.is_dir() and not p.name.startswith("."))


def photo(folder: Path, stem: str) -> Path:
    (match,) = [p for p in folder.iterdir() if p.name.rpartition(".")[0] == stem]
    return match


def eval_images(raw: Path) -> list[Path]:
    return sorted(p for p in (raw / layout.EVAL_IMAGES).iterdir() if not p.name.startswith("."))


def index_frame(people: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """A train index like validate writes, for `{person: (gender, age)}`; no images behind it."""
    records = [
        {
            "person": person,
            "folder": f"{person}_folder",
            "stem": stem,
            "file": f"{layout.TRAIN_IMAGES}/{person}_folder/{stem}.jpg",
            "gender": gender,
            "age": age,
            "mask": layout.STEM_TO_MASK[stem],
        }
        for person, (gender, age) in people.items()
        for stem in layout.STEMS
    ]
    frame = pd.DataFrame.from_records(records)
    frame.insert(0, "row", range(len(frame)))
    return frame
