"""The out-of-fold error report: reports/index.html and its PNGs (`maskcls.report.write_report`).

Inputs: the ensemble's out-of-fold probabilities and decisions (cross-fitted when `ensemble.tune` is on), the
competition's truth, the cached training photos (the contact sheets), the per-class holdout F1 where the folder
holds eval answers (the generated sample), and `age_tradeoff.csv`: out-of-fold F1 of runs that differ from
params.yaml in `relabel_age.old_from` only. That file is refreshed by `maskcls report --collect-age` from
`dvc exp show`, outside the stage (a stage that asked DVC about experiments would depend on more than its inputs);
the stage reads it as a dependency like any other.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from maskcls import artifacts, layout
from maskcls import params as params_mod
from maskcls import report as html_report
from maskcls.errors import MaskclsError
from maskcls.params import Params
from maskcls.paths import Paths
from maskcls.vcs import dvc

REPORTS = "reports"  # the stage's output folder, beside metrics/: a page for people, no DVC metric
METRICS_FILE = "metrics/eval.json"


def photo_ids(paths: Paths, rows: np.ndarray) -> list[str]:
    """`<person folder>/<file name>` of each training photo `rows`: the caption of its thumbnail."""
    index = artifacts.read_index(paths.index_dir, "train", needs=("row", "folder", "file"))
    files = index["file"].to_numpy()[rows]
    folders = index["folder"].to_numpy()[rows]
    return [f"{folder}/{Path(file).name}" for folder, file in zip(folders, files, strict=True)]


def holdout_per_class_f1(params: Params, paths: Paths, root: Path) -> np.ndarray | None:
    """F1 of each of the 18 classes on eval where the folder holds its answers (the generated sample), else None."""
    truth = artifacts.read_eval_truth(Path(root) / params.data.raw_dir)
    if truth is None:
        return None
    pred = artifacts.read_ensemble(paths.ensemble_dir, "eval")["pred"]
    return f1_score(truth, pred, labels=range(layout.NUM_CLASSES), average=None, zero_division=0)


def age_points(root: Path) -> list[tuple[int, float]]:
    """(old_from, out-of-fold F1) from age_tradeoff.csv, runs at the same threshold averaged."""
    table = artifacts.read_age_tradeoff(artifacts.age_tradeoff_path(root))
    mean = table.groupby("old_from")["oof_f1"].mean()
    return [(int(x), float(y)) for x, y in mean.items()]


def run(params: Params, root: Path = Path(".")) -> Path:
    paths = Paths(root)
    oof = artifacts.read_ensemble(paths.ensemble_dir, "oof")
    rows = oof["rows"]
    truth = artifacts.read_truth(paths.labels_dir).loc[rows, "class"].to_numpy(dtype=np.int64)
    index_rows = len(artifacts.read_index(paths.index_dir, "train", needs=("row",)))
    images = artifacts.open_cache(paths.cache_dir, "train", expected_rows=index_rows)
    # Every training photo is out of fold once all folds are trained: the memory map is then used as it is, and
    # only the photos shown are read. Otherwise the out-of-fold photos are taken out, in row order.
    photos = images if np.array_equal(rows, np.arange(len(images))) else np.asarray(images[rows])
    index = html_report.write_report(
        Path(root) / REPORTS,
        truth,
        oof["class18"],
        photos,
        photo_ids(paths, rows),
        age_tradeoff=age_points(root),
        per_class_holdout_f1=holdout_per_class_f1(params, paths, root),
        pred=oof["pred"],
    )
    print(f"report: -> {index}")
    return index


# --- the age-threshold trade-off from DVC experiments -----------------------------------------------------------


def experiment_states(shown: list) -> list[dict]:
    """Every state (the workspace, commits, their experiments) of `dvc exp show --json`, flattened."""
    out = []
    for state in shown:
        out.append(state)
        for group in state.get("experiments") or []:
            out += experiment_states(group.get("revs") or [])
    return out


def _comparable_key(p: Params) -> str:
    """The digest of the params with the age threshold set aside: equal keys differ in `old_from` at most."""
    return params_mod.digest(dataclasses.replace(p, relabel_age=dataclasses.replace(p.relabel_age, old_from=0)))


def age_tradeoff_from_experiments(shown: list, params: Params) -> pd.DataFrame:
    """`old_from, oof_f1, source`: one row per state of `dvc exp show --json` output `shown` whose params differ from
    `params` in relabel_age.old_from at most and whose metrics/eval.json has an out-of-fold F1.

    A run that changed anything else (the model, the epochs, the ensemble) would mix that change into the curve:
    it is left out. Params that no longer load (a key since renamed) are left out too. The same run shown twice
    (the workspace and the commit it matches) counts once.
    """
    want = _comparable_key(params)
    found: dict[tuple[int, float], str] = {}
    for state in experiment_states(shown):
        data = state.get("data") or {}
        values = ((data.get("params") or {}).get("params.yaml") or {}).get("data")
        metrics = ((data.get("metrics") or {}).get(METRICS_FILE) or {}).get("data") or {}
        if not values or not isinstance(metrics.get("oof_f1"), int | float):
            continue
        try:
            p = params_mod.from_dict(values, source=f"dvc exp show: {state.get('rev')}")
        except MaskclsError:
            continue
        if _comparable_key(p) != want:
            continue
        source = state.get("name") or str(state.get("rev", ""))[:10]
        found.setdefault((p.relabel_age.old_from, float(metrics["oof_f1"])), source)
    return pd.DataFrame(
        [(x, y, s) for (x, y), s in sorted(found.items())], columns=list(artifacts.AGE_TRADEOFF_COLUMNS)
    )


def collect_age_tradeoff(params: Params, root: Path = Path(".")) -> pd.DataFrame:
    """Refresh age_tradeoff.csv from `dvc exp show --json` (the workspace, HEAD and its experiments)."""
    result = dvc(Path(root), "exp", "show", "--json", capture=True)
    try:
        shown = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise MaskclsError(f"dvc exp show --json: not JSON ({exc})") from exc
    table = age_tradeoff_from_experiments(shown, params)
    artifacts.write_age_tradeoff(artifacts.age_tradeoff_path(root), table)
    return table
