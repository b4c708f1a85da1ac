"""relabel_age: label overrides and the age threshold -> the targets each model trains on.

`truth.csv` keeps the competition's age bands (old from 60) for splits and metrics. Each `<model>.csv` holds
only the targets that model's head predicts, so a mask-only model's file stays byte-identical when
`relabel_age.old_from` changes and DVC does not retrain it. The labels folder is replaced as a whole, so the
file of a model removed from params does not linger.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from maskcls import artifacts, layout, overrides
from maskcls.params import Params
from maskcls.paths import Paths


def run(params: Params, root: Path = Path(".")) -> dict[str, pd.DataFrame]:
    """Write data/labels/truth.csv and one <model>.csv per entry of `params.models`; return the tables by name."""
    paths = Paths(root)
    settings = params.relabel_age
    index = artifacts.read_index(paths.index_dir, "train", needs=artifacts.TRAIN_LABEL_COLUMNS)
    fixed = overrides.apply(index, settings.overrides)

    tables = {artifacts.TRUTH: truth_table(fixed)}
    for name, spec in params.models.items():
        tables[name] = model_table(fixed, spec.head, settings.old_from)
    artifacts.write_labels(paths.labels_dir, tables)
    _report(index, fixed, settings.overrides, settings.old_from)
    return tables


def truth_table(frame: pd.DataFrame) -> pd.DataFrame:
    """row, person, mask, gender, age band (the competition's: old from 60), class."""
    age = layout.age_to_label(frame["age"].to_numpy())
    out = frame[["row", "person", "mask", "gender"]].assign(age=age)
    return out.assign(**{"class": layout.encode(out["mask"], out["gender"], out["age"])})


def model_table(frame: pd.DataFrame, head: str, old_from: int) -> pd.DataFrame:
    """row, person and the targets `head` trains on; the age band uses `old_from`."""
    tasks = [head] if head in layout.TASKS else list(layout.TASKS)
    out = frame[["row", "person"]].copy()
    for task in tasks:
        out[task] = layout.age_to_label(frame["age"].to_numpy(), old_from=old_from) if task == "age" else frame[task]
    return out


def _report(before: pd.DataFrame, after: pd.DataFrame, mode: str, old_from: int) -> None:
    changed = (before[["mask", "gender", "age"]] != after[["mask", "gender", "age"]]).any(axis=1)
    old = after.loc[layout.age_to_label(after["age"].to_numpy(), old_from=old_from) == 2, "person"].nunique()
    print(
        f"relabel_age: overrides '{mode}' changed labels of {changed.sum()} photos "
        f"({after.loc[changed, 'person'].nunique()} people); {old} people old at age >= {old_from}",
        file=sys.stderr,
    )
