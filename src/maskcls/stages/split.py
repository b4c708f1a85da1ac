"""Person-level folds: all seven photos of a person land on the same side.

An image-level split puts a person's photos on both sides and validation F1 reads ~0.9 against ~0.7 on the
leaderboard. Strata are gender x competition age band per person (every person has the same mask mix), taken
from truth.csv, so the folds do not move when the training age threshold changes.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from maskcls import artifacts
from maskcls.errors import ParamsError
from maskcls.params import Params
from maskcls.paths import Paths
from maskcls.repro import derive_seed
from maskcls.scan import PERSON_SEPARATOR

HOLDOUT_TRAIN_ONLY = -1  # holdout: persons never validated on
_ID_SUFFIX = re.compile(r"-[0-9]+$")  # 001774-2 -> 001774


def group_key(person: str, group: str) -> str:
    """The unit that never straddles two folds. `id`: the csv id (a person index `003397#2` is its folder's
    second person of id 003397); `base_id`: the id without its `-N` suffix, so 001498 and 001498-1 stay together."""
    csv_id = person.split(PERSON_SEPARATOR)[0]
    return _ID_SUFFIX.sub("", csv_id) if group == "base_id" else csv_id


def people_table(truth: pd.DataFrame, group: str = "base_id") -> pd.DataFrame:
    """One row per person with its stratum and group, sorted by person so the split never depends on file order."""
    people = truth.groupby("person", sort=True).agg(gender=("gender", "first"), age=("age", "first")).reset_index()
    people["stratum"] = people["gender"].astype(int) * 3 + people["age"].astype(int)
    people["group"] = [group_key(p, group) for p in people["person"]]
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
    # One sample per person, grouped by `group` (an id and its suffixed variants), strata balanced per fold.
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = np.full(len(people), -1, dtype=np.int64)
    for fold, (_, val_idx) in enumerate(splitter.split(people, people["stratum"], groups=people["group"])):
        folds[val_idx] = fold
    return folds


def holdout(people: pd.DataFrame, ratio: float, seed: int) -> np.ndarray:
    """Fold 0 = validation groups: round(ratio * groups) of them, shared out over the strata (of each group's
    first person) in proportion, largest remainders first, so rare strata are represented and a small ratio
    still validates someone. A group's people all land on the same side."""
    rng = np.random.default_rng(seed)
    groups = people.groupby("group", sort=True).agg(stratum=("stratum", "first")).reset_index()
    strata = sorted(groups.groupby("stratum").indices.items())
    n_val = int(round(len(groups) * ratio))
    if n_val < 1:
        raise ParamsError(f"split.holdout_ratio: {ratio} of {len(groups)} people leaves no validation person; raise it")
    quotas = np.array([len(idx) * ratio for _, idx in strata])
    counts = np.floor(quotas).astype(int)
    for i in np.argsort(-(quotas - counts), kind="stable")[: n_val - counts.sum()]:
        counts[i] += 1
    validated: set[str] = set()
    for (_, idx), count in zip(strata, counts, strict=True):
        validated.update(groups["group"].to_numpy()[rng.permutation(idx)[:count]])
    return np.where(people["group"].isin(validated), 0, HOLDOUT_TRAIN_ONLY).astype(np.int64)


def run(params: Params, root: Path = Path(".")) -> pd.DataFrame:
    paths = Paths(root)
    truth = artifacts.read_truth(paths.labels_dir)
    people = people_table(truth, params.split.group)
    seed = derive_seed(params.split.seed, "split")
    if params.split.method == "kfold":
        folds = kfold(people, params.split.n_folds, seed)
    else:
        folds = holdout(people, params.split.holdout_ratio, seed)
    table = pd.DataFrame({"person": people["person"], "fold": folds})
    artifacts.write_folds(paths.folds, table)
    sizes = table[table.fold >= 0].fold.value_counts().sort_index()
    print(f"split: {len(table)} people, validation persons per fold: {dict(sizes.items())}")
    return table
