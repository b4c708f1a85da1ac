"""Atomic output writing: a killed stage never leaves a half-written file that DVC could cache as complete."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from maskcls.errors import DataError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; it is renamed onto `path` only if the block finishes.

    Works for files and directories: the caller writes whatever it likes at the yielded path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_temporaries(path: Path) -> None:
    """Delete the temporaries of `path` that a killed run left behind (SIGKILL skips the cleanup above).

    A stage's output (a cache of several GB) would otherwise stay on disk twice, and a leftover inside a folder
    that another stage depends on (preds/) would change that folder's hash. Matches only `.<name>.<random>.tmp`:
    the random part never holds a dot, so `.eval.npz.<random>.tmp` is not taken for a temporary of `eval`.
    """
    prefix = f".{path.name}."
    for stale in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        if "." not in stale.name[len(prefix) : -len(".tmp")]:
            shutil.rmtree(stale, ignore_errors=True)


def require(path: str | os.PathLike, remedy: str) -> Path:
    """`path` if it is a file; else a DataError saying which stage makes it, instead of a bare traceback."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: not found; {remedy}")
    return path


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, data) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    # lineterminator fixed so the bytes do not depend on the platform.
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")


def save_npz(path: str | os.PathLike, **arrays) -> None:
    """Like np.savez, but byte-identical for identical arrays: np.savez stamps each member with the current time."""
    import io as _io
    import zipfile

    import numpy as np

    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = _io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def load_npz(path: str | os.PathLike) -> dict:
    import numpy as np

    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
