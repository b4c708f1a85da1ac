"""Per-epoch learning curves as tables made for `dvc plots`: one file per chart, one row per point.

DVCLive files every metric on its own (plots/metrics/<name>.tsv); drawn as they are, that is one chart per file,
each a single line titled with its path. These tables hold the lines that belong together instead:

- plots/curves/loss.csv (epoch, head, split, loss): train and validation loss of each head, one panel per head;
- plots/curves/f1.csv (epoch, head, f1): validation macro F1 of each head (and of the 18 classes), one line each.

The train stage's `plots:` in dvc.yaml draws them with the templates in .dvc/plots (integer epoch axis, titles
in words). Written from the epoch records of `stages.train.epoch_record`, so a resumed run writes the same bytes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from maskcls import io

DIR = Path("plots", "curves")  # beside DVCLive's plots/metrics and plots/sklearn
LOSS = "loss.csv"
F1 = "f1.csv"

# epoch_record's flat names: train/loss/total, train/loss/<head>, val/loss/<head>, val/<head>/f1
_LOSS = re.compile(r"(train|val)/loss/(.+)")
_F1 = re.compile(r"val/(.+)/f1")
_SPLIT = {"train": "train", "val": "validation"}


def loss_rows(history: list[dict]) -> pd.DataFrame:
    """Train and validation loss per head and epoch. The weighted train total has no validation twin: left out."""
    rows = []
    for record in history:
        for name, value in record.items():
            match = _LOSS.fullmatch(name)
            if match and match[2] != "total":
                rows.append({"epoch": int(record["epoch"]), "head": match[2], "split": _SPLIT[match[1]], "loss": value})
    return pd.DataFrame(rows, columns=["epoch", "head", "split", "loss"])


def f1_rows(history: list[dict]) -> pd.DataFrame:
    """Validation macro F1 per head and epoch."""
    rows = []
    for record in history:
        for name, value in record.items():
            match = _F1.fullmatch(name)
            if match:
                rows.append({"epoch": int(record["epoch"]), "head": match[1], "f1": value})
    return pd.DataFrame(rows, columns=["epoch", "head", "f1"])


def write(live_dir: str | Path, history: list[dict]) -> Path:
    """Write plots/curves/loss.csv and plots/curves/f1.csv under `live_dir`; returns the folder."""
    out = Path(live_dir) / DIR
    io.write_csv(out / LOSS, loss_rows(history))
    io.write_csv(out / F1, f1_rows(history))
    return out
