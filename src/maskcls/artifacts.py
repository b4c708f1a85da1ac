"""Every file one stage writes and another reads: one writer and one reader each, so a format lives in one place.

`Paths` says where each file is; this module says what is inside, writes it atomically and checks it when
read, with an error naming the file and the stage that makes it. docs/architecture.md lists the contracts.
A stage module imports this one, never another stage module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from maskcls import io, layout
from maskcls.errors import DataError
from maskcls.paths import Paths

# --- data/index/{train,eval}.csv (validate) ------------------------------------------------------------------

TRAIN_LABEL_COLUMNS = ("row", "person", "stem", "gender", "age", "mask")  # what relabel_age needs of train.csv


def write_index(index_dir: Path, train: pd.DataFrame, evaluation: pd.DataFrame) -> None:
    io.write_csv(Path(index_dir) / "train.csv", train)
    io.write_csv(Path(index_dir) / "eval.csv", evaluation)


def read_index(index_dir: Path, split: str, needs: tuple[str, ...] = ("file",)) -> pd.DataFrame:
    """One split's index, checked for the columns the caller `needs`. `row` counts 0..N-1 in file order and is
    the key of every later table and array."""
    path = Path(index_dir) / f"{split}.csv"
    if not path.is_file():
        raise DataError(f"{path}: not found; run the validate stage first (dvc repro validate)")
    frame = pd.read_csv(path, dtype={"person": str, "folder": str, "stem": str, "file": str})
    missing = [c for c in needs if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; rebuild the index (dvc repro validate)")
    if "row" in frame.columns and not (frame["row"].to_numpy() == np.arange(len(frame))).all():
        raise DataError(f"{path}: column 'row' must count 0..N-1 in file order; rebuild the index")
    return frame


# --- data/labels/ (relabel_age) ------------------------------------------------------------------------------

TRUTH = "truth"  # truth.csv: the competition's labels; <model>.csv: that model's training targets


def write_labels(labels_dir: Path, tables: Mapping[str, pd.DataFrame]) -> None:
    """The whole folder at once, so the file of a model no longer in params does not linger."""
    with io.atomic_path(labels_dir) as tmp:
        tmp.mkdir()
        for name, table in tables.items():
            table.to_csv(tmp / f"{name}.csv", index=False, lineterminator="\n")


def read_truth(labels_dir: Path) -> pd.DataFrame:
    """`row, person, mask, gender, age, class` with the competition's age bands, indexed by `row`."""
    path = io.require(Path(labels_dir) / f"{TRUTH}.csv", "run relabel_age first (dvc repro relabel_age)")
    return pd.read_csv(path, dtype={"person": str}).set_index("row", drop=False).rename_axis(None)


def model_labels_path(labels_dir: Path, model: str) -> Path:
    return Path(labels_dir) / f"{model}.csv"


def read_model_labels(labels_dir: Path, model: str) -> pd.DataFrame:
    """`row, person` and the targets `model`'s head trains on (age with relabel_age.old_from)."""
    path = io.require(model_labels_path(labels_dir, model), "run relabel_age first (dvc repro relabel_age)")
    return pd.read_csv(path, dtype={"person": str})


# --- data/split/folds.csv (split) ----------------------------------------------------------------------------


def write_folds(path: Path, table: pd.DataFrame) -> None:
    io.write_csv(path, table[["person", "fold"]])


def read_folds(path: Path) -> pd.DataFrame:
    """`person, fold`; fold -1 is a person only ever trained on (holdout split)."""
    return pd.read_csv(io.require(path, "run split first (dvc repro split)"), dtype={"person": str})


# --- data/cache/ (cache) -------------------------------------------------------------------------------------

CACHE_META = "meta.json"


def cache_array_path(cache_dir: Path, split: str) -> Path:
    return Path(cache_dir) / f"{split}.npy"


def create_cache_array(cache_dir: Path, split: str, shape: tuple[int, ...]) -> np.memmap:
    # open_memmap: the array goes to disk as it is filled, so memory stays flat however many photos there are.
    return np.lib.format.open_memmap(cache_array_path(cache_dir, split), mode="w+", dtype=np.uint8, shape=shape)


def write_cache_meta(cache_dir: Path, meta: dict) -> None:
    (Path(cache_dir) / CACHE_META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def read_cache_meta(cache_dir: str | Path) -> dict:
    path = Path(cache_dir) / CACHE_META
    if not path.is_file():
        raise DataError(f"{path}: not found; build the cache first (`maskcls cache` or `dvc repro cache`)")
    return json.loads(path.read_text())


def open_cache(
    cache_dir: str | Path,
    split: str,
    expected_rows: int | None = None,
    expected_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """The split's (N, H, W, 3) uint8 array, memory-mapped read-only, after checking it against meta.json.

    `expected_rows` (the index length) and `expected_size` (cache.height, cache.width of the current params)
    catch a cache built from another index or other settings.
    """
    cache_dir = Path(cache_dir)
    meta = read_cache_meta(cache_dir)
    if split not in meta.get("counts", {}):
        raise DataError(f"{cache_dir / CACHE_META}: no split '{split}'; rebuild the cache")
    path = cache_array_path(cache_dir, split)
    if not path.is_file():
        raise DataError(f"{path}: not found; rebuild the cache (`maskcls cache`)")
    array = np.load(path, mmap_mode="r")
    want = (meta["counts"][split], *meta["shape"])
    stale = "; the cache is stale or damaged: rebuild it (`maskcls cache` or `dvc repro cache`)"
    if array.dtype != np.uint8 or tuple(array.shape) != tuple(want):
        raise DataError(f"{path}: {array.dtype} {tuple(array.shape)}, meta.json says uint8 {want}{stale}")
    if expected_rows is not None and array.shape[0] != expected_rows:
        raise DataError(f"{path}: {array.shape[0]} images, the {split} index has {expected_rows} rows{stale}")
    if expected_size is not None and tuple(array.shape[1:3]) != tuple(expected_size):
        raise DataError(
            f"{path}: images are {array.shape[1]}x{array.shape[2]}, params ask for "
            f"{expected_size[0]}x{expected_size[1]} (cache.height x cache.width){stale}"
        )
    return array


# --- models/<model>/fold<k>/ (train) -------------------------------------------------------------------------

MODEL_FILE = "model.pt"  # {"state_dict", "spec", "data_config", "params_digest"}; models.load_trained reads it
MODEL_METRICS = "metrics.json"  # the best epoch's validation scores


def write_trained_model(model_dir: Path, checkpoint: dict, scores: dict) -> None:
    """model.pt and metrics.json, renamed into place together: a killed run leaves no complete-looking folder."""
    import torch  # here: the stages that only read tables need not load torch

    with io.atomic_path(model_dir) as tmp:
        tmp.mkdir(parents=True)
        torch.save(checkpoint, tmp / MODEL_FILE)
        io.write_json(tmp / MODEL_METRICS, scores)


# --- the competition folder's eval answers (generated sample only) -------------------------------------------------


def read_eval_truth(raw_dir: Path) -> np.ndarray | None:
    """The true class of each eval photo in info.csv order, from `eval_labels.csv` beside eval/; None where the folder
    has none (the real data: the leaderboard scores eval)."""
    path = Path(raw_dir) / layout.EVAL_LABELS
    if not path.exists():
        return None
    labels = pd.read_csv(path, dtype={"ImageID": str})
    info = pd.read_csv(Path(raw_dir) / layout.EVAL_CSV, dtype={"ImageID": str})
    return labels.set_index("ImageID").loc[info["ImageID"], "ans"].to_numpy(dtype=np.int64)


# --- preds/<model>/fold<k>/{eval,oof}.npz (predict) and ensemble/ (ensemble) ---------------------------------------

PREDICTION_SPLITS = ("eval", "oof")
# Arrays of a predictions file that are no probabilities: index rows, backbone features, the decision, vote shares,
# and the recovered person (group id) of each photo.
NOT_PROBABILITIES = ("rows", "embeddings", "pred", "votes", "groups")


def write_predictions(out_dir: Path, splits: Mapping[str, Mapping[str, np.ndarray]]) -> None:
    """One `<split>.npz` per split (`rows` plus named arrays), the folder renamed into place when complete."""
    with io.atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        for split, arrays in splits.items():
            io.save_npz(tmp / f"{split}.npz", **arrays)


def read_predictions(pred_dir: Path, split: str, remedy: str) -> dict[str, np.ndarray]:
    path = Path(pred_dir) / f"{split}.npz"
    if not path.exists():
        raise DataError(f"{path}: missing; {remedy}")
    return io.load_npz(path)


def output_keys(arrays: Mapping[str, np.ndarray]) -> list[str]:
    """The probability arrays of a predictions file (`class18` and per task), in file order."""
    return [k for k in arrays if k not in NOT_PROBABILITIES]


def fold_predictions(paths: Paths, model: str, fold: int, split: str) -> dict[str, np.ndarray]:
    return read_predictions(paths.pred_dir(model, fold), split, f"run `dvc repro predict@{model}-{fold}` first")


def stitch(parts: list[dict[str, np.ndarray]], where: str) -> dict[str, np.ndarray]:
    """Out-of-fold: each fold's held-out rows, concatenated and sorted by row."""
    rows = np.concatenate([p["rows"] for p in parts])
    if len(np.unique(rows)) != len(rows):
        raise DataError(f"{where}: out-of-fold rows overlap between folds; re-run split and train")
    order = np.argsort(rows, kind="stable")
    return {"rows": rows[order], **{k: np.concatenate([p[k] for p in parts])[order] for k in output_keys(parts[0])}}


def model_predictions(paths: Paths, model: str, folds: list[int], split: str) -> dict[str, np.ndarray]:
    """One model's probabilities: eval averaged over folds, out-of-fold stitched."""
    parts = [fold_predictions(paths, model, f, split) for f in folds]
    if split == "oof":
        return stitch(parts, model)
    return {"rows": parts[0]["rows"], **{k: np.mean([p[k] for p in parts], axis=0) for k in output_keys(parts[0])}}


ENSEMBLE_REPORTS = ("person", "tune")  # ensemble/<name>.json: what a switch chose and how it scored out of fold


def write_ensemble(
    ensemble_dir: Path, splits: Mapping[str, Mapping[str, np.ndarray]], reports: Mapping[str, dict]
) -> None:
    """`<split>.npz` per split and `<name>.json` per report (`ENSEMBLE_REPORTS`), the folder renamed into place
    when complete."""
    unknown = sorted(set(reports) - set(ENSEMBLE_REPORTS))
    if unknown:
        raise ValueError(f"unknown ensemble report(s) {unknown}; known: {ENSEMBLE_REPORTS}")
    with io.atomic_path(ensemble_dir) as tmp:
        tmp.mkdir(parents=True)
        for split, arrays in splits.items():
            io.save_npz(tmp / f"{split}.npz", **arrays)
        for name, report in reports.items():
            io.write_json(tmp / f"{name}.json", report)


def read_ensemble(ensemble_dir: Path, split: str) -> dict[str, np.ndarray]:
    """The ensemble's `rows`, `class18` probabilities (after person pooling when on), `pred` (the decision), for hard
    votes `votes`, and with `ensemble.person` the recovered person of each photo, `groups`."""
    return read_predictions(ensemble_dir, split, "run the ensemble stage first (dvc repro ensemble)")


def read_ensemble_report(ensemble_dir: Path, name: str) -> dict | None:
    """ensemble/<name>.json (`person`, `tune`), or None when its switch was off."""
    if name not in ENSEMBLE_REPORTS:
        raise ValueError(f"unknown ensemble report {name!r}; known: {ENSEMBLE_REPORTS}")
    path = Path(ensemble_dir) / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


# --- pseudo/labels/ (pseudo_label, pseudo/dvc.yaml; read by the second round's train and evaluate) -----------------

PSEUDO_LABELS = "labels.csv"  # maskcls.pseudo.COLUMNS, one line per pseudo-labelled eval photo
PSEUDO_SUMMARY = "summary.json"  # maskcls.pseudo.summary: counts, the out-of-fold estimate of their accuracy
PSEUDO_COLUMNS = ("row", "group", "class", "mask", "gender", "age", "confidence")
PSEUDO_REMEDY = "run the pseudo-label round's first stage (`dvc repro pseudo/dvc.yaml:pseudo_label`)"


def write_pseudo_labels(pseudo_dir: Path, table: pd.DataFrame, summary: dict) -> None:
    """labels.csv and summary.json, the folder renamed into place when complete."""
    with io.atomic_path(pseudo_dir) as tmp:
        tmp.mkdir(parents=True)
        table[list(PSEUDO_COLUMNS)].to_csv(tmp / PSEUDO_LABELS, index=False, lineterminator="\n")
        io.write_json(tmp / PSEUDO_SUMMARY, summary)


def read_pseudo_labels(pseudo_dir: Path, eval_photos: int | None = None) -> pd.DataFrame:
    """`row, group, class, mask, gender, age, confidence`: eval index rows (each once, below `eval_photos` when
    given) and labels that agree (`class` = layout.encode(mask, gender, age)); possibly no lines."""
    path = io.require(Path(pseudo_dir) / PSEUDO_LABELS, PSEUDO_REMEDY)
    frame = pd.read_csv(path)
    missing = [c for c in PSEUDO_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; {PSEUDO_REMEDY}")
    rows = frame["row"].to_numpy()
    problem = None
    labels = frame[["row", "group", "class", "mask", "gender", "age"]]
    if labels.isna().any().any():
        problem = "empty cells"
    elif len(frame) and not all(pd.api.types.is_integer_dtype(t) for t in labels.dtypes):
        problem = "rows, groups and labels that are not whole numbers"
    elif len(frame) and not pd.api.types.is_float_dtype(frame["confidence"]):
        problem = "confidences that are not numbers"
    elif frame["row"].duplicated().any():
        problem = "a row listed twice"
    elif len(rows) and (rows.min() < 0 or (eval_photos is not None and rows.max() >= eval_photos)):
        problem = f"rows outside the {eval_photos} eval photos 0..{(eval_photos or 0) - 1}"
    elif not frame["class"].between(0, layout.NUM_CLASSES - 1).all():
        problem = f"classes outside 0..{layout.NUM_CLASSES - 1}"
    elif not (layout.encode(frame["mask"], frame["gender"], frame["age"]) == frame["class"]).all():
        problem = "mask, gender and age that do not make the class"
    if problem:
        raise DataError(f"{path}: {problem}; the file is damaged or older than the eval set: {PSEUDO_REMEDY}")
    # integer labels whatever pandas guessed (a table of no photos has no values to guess from)
    return frame.astype({c: np.int64 for c in PSEUDO_COLUMNS if c != "confidence"} | {"confidence": np.float64})


def read_pseudo_summary(pseudo_dir: Path) -> dict:
    """What `maskcls.pseudo.summary` wrote: threshold, unit, counts, the out-of-fold estimate."""
    path = io.require(Path(pseudo_dir) / PSEUDO_SUMMARY, PSEUDO_REMEDY)
    return json.loads(path.read_text())


# --- age_tradeoff.csv (`maskcls report --collect-age`, read by the report stage) -----------------------------------

AGE_TRADEOFF = "age_tradeoff.csv"  # at the repository root, tracked by git like leaderboard.csv
AGE_TRADEOFF_COLUMNS = ("old_from", "oof_f1", "source")


def age_tradeoff_path(root: Path) -> Path:
    return Path(root) / AGE_TRADEOFF


def write_age_tradeoff(path: Path, points: pd.DataFrame) -> None:
    """`old_from, oof_f1, source`: out-of-fold macro F1 of runs that differ only in relabel_age.old_from."""
    io.write_csv(path, points[list(AGE_TRADEOFF_COLUMNS)].sort_values(["old_from", "source"]))


def read_age_tradeoff(path: Path) -> pd.DataFrame:
    """The table `write_age_tradeoff` writes (possibly no rows)."""
    path = io.require(Path(path), "commit the file from the repository, or run `maskcls report --collect-age`")
    frame = pd.read_csv(path, dtype={"source": str})
    missing = [c for c in AGE_TRADEOFF_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; run `maskcls report --collect-age`")
    return frame
