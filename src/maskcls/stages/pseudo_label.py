"""The first stage of the pseudo-label round (pseudo/dvc.yaml): the first round's confident eval decisions, written as
the extra training photos of the second round.

Reads the first round's `ensemble/{eval,oof}.npz` (probabilities, decisions and, with `ensemble.person`, the
recovered people) and `data/labels/truth.csv` (the out-of-fold photos' labels, to estimate how often the kept labels
are right). Writes `pseudo/labels/` (`labels.csv`, `summary.json`). The rule is `maskcls.pseudo`'s; the unit is the
person when `ensemble.person` is on, else the photo.

It never opens the competition folder, so the sample's eval answers (`eval_labels.csv`) cannot reach the selection:
they only score the second round, in its evaluate stage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maskcls import artifacts, pseudo
from maskcls.errors import DataError
from maskcls.params import Params
from maskcls.paths import Paths


def unit_of(params: Params) -> str:
    """`person` when the ensemble decided per recovered person (`ensemble.person` on), else `photo`."""
    return "photo" if params.ensemble.person == "off" else "person"


def groups_of(params: Params, paths: Paths, arrays: dict, split: str) -> np.ndarray | None:
    """The recovered person of each photo of `split` when the unit is the person; checks that the ensemble's output
    was made with the same `ensemble.person` as params.yaml says."""
    where = paths.ensemble_dir / f"{split}.npz"
    has = "groups" in arrays
    if unit_of(params) == "person" and not has:
        raise DataError(
            f"{where}: no recovered people (`groups`), but ensemble.person is '{params.ensemble.person}': the "
            "ensemble's output is older than params.yaml; run `dvc repro ensemble` (or `maskcls ensemble`) first"
        )
    if unit_of(params) == "photo" and has:
        raise DataError(
            f"{where}: holds recovered people, but ensemble.person is off: the ensemble's output is older than "
            "params.yaml; run `dvc repro ensemble` (or `maskcls ensemble`) first"
        )
    return arrays["groups"] if has else None


def run(params: Params, root: Path = Path(".")) -> dict:
    """Write pseudo/labels/ and return its summary."""
    paths = Paths(root)
    threshold, unit = params.pseudo.threshold, unit_of(params)
    ens = {split: artifacts.read_ensemble(paths.ensemble_dir, split) for split in ("eval", "oof")}
    groups = {split: groups_of(params, paths, ens[split], split) for split in ens}

    truth = artifacts.read_truth(paths.labels_dir)
    oof_rows = ens["oof"]["rows"]
    missing = np.setdiff1d(oof_rows, truth.index.to_numpy())
    if len(missing):
        raise DataError(
            f"{paths.ensemble_dir / 'oof.npz'}: rows {missing[:5].tolist()} are not in {paths.labels_dir}/truth.csv; "
            "the ensemble's output is older than the labels: run `dvc repro ensemble`"
        )
    oof = pseudo.oof_estimate(
        ens["oof"]["class18"], ens["oof"]["pred"], truth.loc[oof_rows, "class"].to_numpy(), threshold, groups["oof"]
    )
    evaluation = ens["eval"]
    table = pseudo.label_table(evaluation["rows"], evaluation["class18"], evaluation["pred"], threshold, groups["eval"])
    summary = pseudo.summary(table, len(ens["eval"]["rows"]), threshold, unit, oof)
    artifacts.write_pseudo_labels(paths.pseudo_labels_dir, table, summary)

    per = "per person" if unit == "person" else "per photo"
    people = f" ({summary['people']} recovered people)" if unit == "person" else ""
    print(
        f"pseudo_label: {summary['kept']} of {summary['eval_photos']} eval photos{people} reach pseudo.threshold "
        f"{threshold} ({per}) -> {paths.pseudo_labels_dir}"
    )
    if oof["accuracy"] is None:
        print(f"pseudo_label: out of fold the same rule keeps none of {oof['photos']} photos: no estimate of accuracy")
    else:
        print(
            f"pseudo_label: out of fold the same rule keeps {oof['kept']} of {oof['photos']} photos, "
            f"{oof['accuracy']:.1%} of them with the right label: the expected accuracy of the pseudo-labels"
        )
    if not summary["kept"]:
        best = float(pseudo.confidence(ens["eval"]["class18"], ens["eval"]["pred"], groups["eval"]).max(initial=0.0))
        print(
            f"pseudo_label: no eval photo reaches pseudo.threshold {threshold} (the most confident: {best:.3f}); the "
            "second round trains on the training photos alone. Lower pseudo.threshold to add some."
        )
    return summary
