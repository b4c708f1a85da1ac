"""The photos and targets of one fold: train on the persons of the other folds, validate on this one.

Targets come from `data/labels/<model>.csv` (the age threshold the model trains with); validation scores use
`data/labels/truth.csv` (the competition's labels), so an age threshold lowered for training never flatters them.

In the second round (`Paths.round` 2, docs/beyond.md) the pseudo-labelled eval photos (`pseudo/labels/labels.csv`)
join the training photos of every fold, never its validation photos: `with_pseudo_labels`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from maskcls import artifacts, layout, metrics
from maskcls.dataset import StackedImages
from maskcls.errors import DataError
from maskcls.layout import HEAD_OUTPUTS
from maskcls.paths import Paths


@dataclass
class FoldData:
    # The whole train cache, memory-mapped; rows index it. Second round: the train cache followed by the eval cache
    # (StackedImages), a pseudo-labelled eval photo's row being len(train cache) + its eval row.
    images: np.ndarray | StackedImages
    train_rows: np.ndarray
    train_targets: dict[str, np.ndarray]  # this model's targets, aligned with train_rows
    val_rows: np.ndarray
    val_targets: dict[str, np.ndarray]  # the same targets for the validation rows (validation loss)
    val_truth: dict[str, np.ndarray]  # competition labels of the validation rows (scores)
    pseudo_photos: int = 0  # second round: pseudo-labelled eval photos at the end of train_rows


def target_arrays(labels: pd.DataFrame, head: str, source: Path) -> dict[str, np.ndarray]:
    keys = HEAD_OUTPUTS[head]
    needed = layout.TASKS if "class18" in keys else keys
    missing = [c for c in needed if c not in labels.columns]
    if missing:
        raise DataError(f"{source}: no column {', '.join(missing)} for head '{head}'; re-run `dvc repro relabel_age`")
    arrays = {task: labels[task].to_numpy(dtype=np.int64) for task in needed}
    if "class18" in keys:
        arrays["class18"] = np.asarray(layout.encode(arrays["mask"], arrays["gender"], arrays["age"]))
    return {key: arrays[key] for key in keys}


def load_fold(paths: Paths, model: str, head: str, fold: int, image_size: tuple[int, int]) -> FoldData:
    labels = artifacts.read_model_labels(paths.labels_dir, model)
    truth = artifacts.read_truth(paths.labels_dir)
    folds = artifacts.read_folds(paths.folds)
    labels_path = artifacts.model_labels_path(paths.labels_dir, model)

    fold_of = labels["person"].map(folds.set_index("person")["fold"])
    if fold_of.isna().any():
        unknown = labels.loc[fold_of.isna(), "person"].unique()[:5]
        raise DataError(f"{paths.folds}: no fold for persons {', '.join(unknown)}; re-run `dvc repro split`")
    if not (fold_of == fold).any():
        raise DataError(f"{paths.folds}: fold {fold} has no validation persons; check pipeline.folds and split")
    is_val = (fold_of == fold).to_numpy()
    rows = labels["row"].to_numpy(dtype=np.int64)
    targets = target_arrays(labels, head, labels_path)
    missing_rows = np.setdiff1d(rows, truth.index.to_numpy())
    if len(missing_rows):
        raise DataError(f"{labels_path}: rows {missing_rows[:5].tolist()} are not in truth.csv; re-run relabel_age")
    data = FoldData(
        images=artifacts.open_cache(paths.cache_dir, "train", expected_rows=len(truth), expected_size=image_size),
        train_rows=rows[~is_val],
        train_targets={k: v[~is_val] for k, v in targets.items()},
        val_rows=rows[is_val],
        val_targets={k: v[is_val] for k, v in targets.items()},
        val_truth=metrics.truth_arrays(truth.loc[rows[is_val]]),
    )
    if paths.round == 1:
        return data
    eval_images = artifacts.open_cache(paths.cache_dir, "eval", expected_size=image_size)
    table = artifacts.read_pseudo_labels(paths.pseudo_labels_dir, eval_photos=len(eval_images))
    return with_pseudo_labels(data, table, eval_images, head, paths.pseudo_labels_dir / artifacts.PSEUDO_LABELS)


def with_pseudo_labels(
    data: FoldData, table: pd.DataFrame, eval_images: np.ndarray, head: str, source: Path
) -> FoldData:
    """`data` with the pseudo-labelled eval photos of `table` (artifacts.read_pseudo_labels) added to its training
    photos, after them in table order; validation photos, targets and truth unchanged.

    A pseudo-label is the first round's decision, decoded into mask, gender and age: each head trains on the part it
    predicts (`target_arrays`), and the age band is the one the first round's models learnt (relabel_age.old_from
    for their training targets); it has no age in years to apply another threshold to. Minority resampling and
    augmentation then treat these photos as any other training photo.
    """
    offset = len(data.images)
    extra_rows = offset + table["row"].to_numpy(dtype=np.int64)
    extra = target_arrays(table, head, source)
    return replace(
        data,
        images=StackedImages(data.images, eval_images),
        train_rows=np.concatenate([data.train_rows, extra_rows]),
        train_targets={k: np.concatenate([v, extra[k]]) for k, v in data.train_targets.items()},
        pseudo_photos=data.pseudo_photos + len(extra_rows),
    )
