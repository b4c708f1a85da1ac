"""Wrong params, a missing GPU, out of memory, bad predictions: the `maskcls` command stops with exit code 2
and a message naming what to change, before any work, and writes nothing.

Commands run in this process through `maskcls.cli.main`, the console script's entry point.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import pipeline_fixture as pf
from maskcls import cli, io, layout, params, submission
from maskcls.errors import DataError
from maskcls.paths import Paths
from maskcls.stages import ensemble
from maskcls.training import loop
from tiny import merged

TRAIN = ("train", "--model", "multihead", "--fold", "0")


def maskcls(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run `maskcls ARGS`; return its exit code and stderr."""
    monkeypatch.setattr(sys, "argv", ["maskcls", *args])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    return exited.value.code, capsys.readouterr().err


def params_file(path: Path, change: dict | None = None) -> str:
    """The tiny pipeline's params with `change` applied, written unchecked (it may be wrong on purpose)."""
    params.dump(merged(params.to_dict(pf.tiny_params()), change or {}), path)
    return str(path)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- params --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command, change, words",
    [
        (TRAIN, {"train": {"lrr": 0.1}}, ["train.lrr: unknown key; did you mean 'lr'?"]),
        (TRAIN, {"train": {"epochs": "four"}}, ["train.epochs", "expected an integer"]),
        (TRAIN, {"train": {"scheduler": "step", "warmup_epochs": 1, "epochs": 3}}, ["train.warmup_epochs", "cosine"]),
        (("split",), {"ensemble": {"method": "weighted_hard", "weights": {"multihead": 1}}}, ["ensemble.weights"]),
        # Backbones are checked by the pipeline's first stage (check-params), and by train before it reads any data.
        (("check-params",), {"models": {"age": {"backbone": "efficientnet_b00"}}}, ["models.age.backbone"]),
        (TRAIN, {"models": {"multihead": {"backbone": "efficientnet_b00"}}}, ["models.multihead.backbone"]),
        (TRAIN + ("--node-rank", "1"), {}, ["--node-rank 1", "runtime.nodes is 1", "0..0"]),
        (TRAIN, {"train": {"threads": 1}}, ["train.threads: unknown key; it is runtime.threads now"]),
    ],
    ids=[
        "unknown-key",
        "wrong-type",
        "warmup-without-cosine",
        "weights-missing-a-model",
        "backbone-check-params",
        "backbone-train",
        "node-rank-past-the-machines",
        "key-of-the-older-layout",
    ],
)
def test_bad_params_stop_the_command_before_any_work(tmp_path, monkeypatch, capsys, command, change, words):
    root = tmp_path / "repo"  # empty: a command that got past the params would fail on the missing data instead
    root.mkdir()
    p = params_file(tmp_path / "params.yaml", change)
    code, err = maskcls(monkeypatch, capsys, *command, "--params", p, "--root", str(root))
    assert code == 2, err
    for word in words:
        assert word in err
    if "backbone" in words[0]:
        assert "did you mean efficientnet_b0" in err
    assert list(root.iterdir()) == []


def test_kfold_with_more_folds_than_people_in_a_stratum(tmp_path, tmp_path_factory, monkeypatch, capsys):
    root = pf.copy(tmp_path_factory, tmp_path / "repo")
    before = files(root)
    p = params_file(tmp_path / "params.yaml", {"split": {"method": "kfold", "n_folds": 8}})
    code, err = maskcls(monkeypatch, capsys, "split", "--params", p, "--root", str(root))
    assert code == 2
    assert "split.n_folds: 8 folds but some strata have fewer people" in err and "split.method: holdout" in err
    assert files(root) == before


@pytest.mark.parametrize(
    "command, words",
    [
        (("relabel-age",), "run the validate stage first"),
        (("split",), "truth.csv: not found; run relabel_age first"),
        (("cache",), "train.csv: not found"),
        (TRAIN, "multihead.csv: not found; run relabel_age first"),
        (("predict", "--model", "multihead"), "no trained model"),
        (("ensemble",), "info.csv: not found"),
        (("evaluate",), "truth.csv: not found; run relabel_age first"),
    ],
)
def test_a_stage_without_its_inputs_names_the_stage_to_run(tmp_path, monkeypatch, capsys, command, words):
    root = tmp_path / "repo"
    root.mkdir()
    code, err = maskcls(
        monkeypatch, capsys, *command, "--params", params_file(tmp_path / "p.yaml"), "--root", str(root)
    )
    assert code == 2 and words in err, err


# --- resources -----------------------------------------------------------------------------------------------


def test_cuda_without_a_gpu(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    p = params_file(tmp_path / "params.yaml", {"runtime": {"device": "cuda"}})
    code, err = maskcls(monkeypatch, capsys, *TRAIN, "--params", p, "--root", str(tmp_path))
    assert code == 2
    assert "no CUDA device (no GPU" in err and "set runtime.device: auto or cpu" in err


def test_cuda_out_of_memory_names_the_params_to_change(tmp_path, tmp_path_factory, monkeypatch, capsys):
    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    root = pf.copy(tmp_path_factory, tmp_path / "repo")
    monkeypatch.chdir(root)  # DVCLive looks for a DVC repo from the working directory: keep it in the copy
    monkeypatch.setattr(loop, "train_one_epoch", out_of_memory)
    p = params_file(tmp_path / "params.yaml")
    code, err = maskcls(monkeypatch, capsys, *TRAIN, "--params", p, "--root", str(root))
    assert code == 2
    assert "CUDA ran out of memory" in err and "lower train.batch_size" in err and "runtime.amp: bf16" in err
    assert not Paths(root).model_dir("multihead", 0).exists()


# --- submissions ---------------------------------------------------------------------------------------------


@pytest.fixture
def predicted(tmp_path) -> tuple[Path, params.Params]:
    """A root with info.csv for 4 eval photos and one model's predictions for them."""
    raw = tmp_path / "raw"
    (raw / "eval").mkdir(parents=True)
    pd.DataFrame({"ImageID": [f"{i:040x}.jpg" for i in range(4)], "ans": 0}).to_csv(raw / layout.EVAL_CSV, index=False)
    p = params.from_dict(
        {"data": {"raw_dir": "raw"}, "split": {"n_folds": 2}, "pipeline": {"models": ["multihead"], "folds": [0]}}
    )
    pred_dir = Paths(tmp_path).pred_dir("multihead", 0)
    pred_dir.mkdir(parents=True)
    io.save_npz(pred_dir / "eval.npz", rows=np.arange(4), class18=np.eye(18)[[3, 17, 0, 5]])
    io.save_npz(pred_dir / "oof.npz", rows=np.array([9]), class18=np.eye(18)[[1]])
    return tmp_path, p


def test_every_submission_file_is_written_through_the_checked_writer(predicted, monkeypatch):
    root, p = predicted
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)  # the workspace's name, not an experiment's
    checked = []

    def recording_write(path, sub, info):
        checked.append(Path(path).name)
        submission.write(path, sub, info)

    monkeypatch.setattr(ensemble, "write", recording_write)
    ensemble.run(p, root=root)
    written = sorted(f.name for f in Paths(root).submissions.iterdir())
    assert written == sorted(checked) == ["submission.csv", "workspace.csv"]
    for name in written:
        submission.check_file(Paths(root).submissions / name, root / "raw" / layout.EVAL_CSV)


def test_predictions_for_fewer_photos_than_info_csv_write_nothing(predicted):
    root, p = predicted
    pred_dir = Paths(root).pred_dir("multihead", 0)
    io.save_npz(pred_dir / "eval.npz", rows=np.arange(3), class18=np.eye(18)[[3, 17, 0]])
    with pytest.raises(DataError, match="eval predictions cover 3 photos but info.csv has 4"):
        ensemble.run(p, root=root)
    assert not Paths(root).submissions.exists() and not Paths(root).ensemble_dir.exists()
