"""Person-level folds: all seven photos of a person land on the same side.

An image-level split puts a person's photos on both sides and validation F1 reads ~0.9 against ~0.7 on the
leaderboard. Strata are gender x competition age band per person (every person has the same mask mix), taken
from truth.csv, so the folds do not move when the training age threshold changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from maskcls import io
from maskcls.errors import ParamsError
from maskcls.params import Params
from maskcls.paths import Paths
from maskcls.repro import derive_seed

HOLDOUT_TRAIN_ONLY = -1  # holdout: persons never validated on


def people_table(truth: pd.DataFrame) -> pd.DataFrame:
    """One row per person with its stratum, sorted by person so the split never depends on file order."""
    people = truth.groupby("person", sort=True).agg(gender=("gender", "first"), age=("age", "first")).reset_index()
    people["stratum"] = people["gender"].astype(int) * 3 + people["age"].astype(int)
    return people


def kfold(people: pd.DataFrame, n_folds: int, seed: int) -> np.ndarray:
    counts = people["stratum"].value_counts()
    small = counts[counts < n_folds]
    if len(small):
        names = ", ".join(f"gender*3+age={s}: {n} people" for s, n in small.sort_index().items())
        raise ParamsError(
            f"split.n_folds: {n_folds} folds but some strata have fewer people ({names}); "
            "lower split.n_folds or use split.method: holdout"
        )
    # One sample per person: grouping is then trivial but the splitter's stratified balancing still applies.
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = np.full(len(people), -1, dtype=np.int64)
    for fold, (_, val_idx) in enumerate(splitter.split(people, people["stratum"], groups=people["person"])):
        folds[val_idx] = fold
    return folds


def holdout(people: pd.DataFrame, ratio: float, seed: int) -> np.ndarray:
    """Fold 0 = validation persons: round(ratio * people) of them, shared out over the strata in proportion
    (largest remainders first), so rare strata are represented and a small ratio still validates someone."""
    rng = np.random.default_rng(seed)
    strata = sorted(people.groupby("stratum").indices.items())
    n_val = int(round(len(people) * ratio))
    if n_val < 1:
        raise ParamsError(f"split.holdout_ratio: {ratio} of {len(people)} people leaves no validation person; raise it")
    quotas = np.array([len(idx) * ratio for _, idx in strata])
    counts = np.floor(quotas).astype(int)
    for i in np.argsort(-(quotas - counts), kind="stable")[: n_val - counts.sum()]:
        counts[i] += 1
    folds = np.full(len(people), HOLDOUT_TRAIN_ONLY, dtype=np.int64)
    for (_, idx), count in zip(strata, counts, strict=True):
        folds[rng.permutation(idx)[:count]] = 0
    return folds


def run(params: Params, root: Path = Path(".")) -> pd.DataFrame:
    paths = Paths(root)
    truth_csv = io.require(paths.labels_dir / "truth.csv", "run relabel_age first (dvc repro relabel_age)")
    truth = pd.read_csv(truth_csv, dtype={"person": str})
    people = people_table(truth)
    seed = derive_seed(params.seed, "split")
    if params.split.method == "kfold":
        folds = kfold(people, params.split.n_folds, seed)
    else:
        folds = holdout(people, params.split.holdout_ratio, seed)
    table = pd.DataFrame({"person": people["person"], "fold": folds})
    io.write_csv(paths.folds, table)
    sizes = table[table.fold >= 0].fold.value_counts().sort_index()
    print(f"split: {len(table)} people, validation persons per fold: {dict(sizes.items())}")
    return table


def read_folds(root: Path = Path(".")) -> pd.DataFrame:
    return pd.read_csv(io.require(Paths(root).folds, "run split first (dvc repro split)"), dtype={"person": str})
