"""Submission files: checked before anything is written, so no code path produces one that would be rejected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from maskcls import io
from maskcls.errors import DataError
from maskcls.layout import EVAL_COLUMNS, NUM_CLASSES


def read_info(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found; expected the competition's eval/info.csv")
    return pd.read_csv(path, dtype={"ImageID": str})


def problems(sub: pd.DataFrame, info: pd.DataFrame) -> list[str]:
    """Everything wrong with a submission frame, as sentences; empty when it is valid."""
    found = []
    if list(sub.columns) != EVAL_COLUMNS:
        found.append(f"columns are {list(sub.columns)}, expected {EVAL_COLUMNS} (no index column)")
        if not set(EVAL_COLUMNS) <= set(sub.columns):
            return found
    if len(sub) != len(info):
        found.append(f"{len(sub)} rows, info.csv has {len(info)}")
    else:
        mismatch = np.flatnonzero(sub["ImageID"].astype(str).to_numpy() != info["ImageID"].astype(str).to_numpy())
        if len(mismatch):
            i = mismatch[0]
            found.append(
                f"ImageID order differs from info.csv at {len(mismatch)} rows, first at row {i + 2}: "
                f"{sub['ImageID'].iloc[i]!r} vs {info['ImageID'].iloc[i]!r}"
            )
    ans = pd.to_numeric(sub["ans"], errors="coerce")
    bad = ~(ans.notna() & (ans == ans.round()) & ans.between(0, NUM_CLASSES - 1))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        found.append(f"{int(bad.sum())} answers outside integers 0..17, first at row {i + 2}: {sub['ans'].iloc[i]!r}")
    return found


def check_frame(sub: pd.DataFrame, info: pd.DataFrame, name: str = "submission") -> None:
    found = problems(sub, info)
    if found:
        raise DataError(f"{name}: " + "; ".join(found))


def check_file(path: str | Path, info_path: str | Path) -> None:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found")
    try:
        sub = pd.read_csv(path, dtype={"ImageID": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable csv ({exc})") from None
    check_frame(sub, read_info(info_path), name=str(path))


def build(info: pd.DataFrame, answers: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"ImageID": info["ImageID"].astype(str), "ans": np.asarray(answers).astype(np.int64)})


def write(path: str | Path, sub: pd.DataFrame, info: pd.DataFrame) -> None:
    """Check, then write atomically: a failing submission is never written at all."""
    check_frame(sub, info, name=str(path))
    io.write_csv(path, sub)
