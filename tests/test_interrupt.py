"""Killed stages: real `maskcls` processes on the tiny pipeline, stopped mid-run by a signal.

Nothing half-written may be left where DVC looks for an output, and a rerun of a killed training run ends with
exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

import pipeline_fixture as pf
from maskcls import params
from maskcls.paths import Paths
from maskcls.stages import train

# One worker runs them all: the pipeline template and the reference run are built once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("interrupt")]

MODEL = "multihead"
# 4 epochs of about 0.3 s: after the first checkpoint the run has a second or more left to be killed in.
TRAIN = dict(epochs=4)
# Exit status of `maskcls` per signal: typer turns Ctrl-C into 130; SIGKILL cannot be handled.
EXIT = {signal.SIGKILL: -signal.SIGKILL, signal.SIGINT: 130}


def write_params(path: Path, data: dict) -> Path:
    params.dump(data, path)
    return path


def start(root: Path, *args: str) -> subprocess.Popen:
    """`maskcls ARGS` in `root`, on one thread: the test workers share two cores."""
    return subprocess.Popen(
        ["maskcls", *args],
        cwd=root,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=default_sigint if signal.getsignal(signal.SIGINT) == signal.SIG_IGN else None,
    )


def default_sigint() -> None:
    """Under a background job SIGINT is ignored and would stay so in the child, which then never sees Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish(proc: subprocess.Popen) -> str:
    return proc.communicate(timeout=120)[0]


def wait_for(proc: subprocess.Popen, found, timeout: float = 60.0) -> None:
    """Poll until `found()` is true; fail with the process output if it ends first or takes too long."""
    deadline = time.monotonic() + timeout
    while not found():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"gave up waiting (exit {proc.poll()}):\n{finish(proc)}")
        time.sleep(0.01)


def leftovers(root: Path) -> list[Path]:
    """Temporaries of io.atomic_path outside the checkpoint folder (which no DVC stage reads or writes)."""
    return [p for p in root.rglob(".*.tmp") if ".maskcls" not in p.relative_to(root).parts]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    """Weights of an uninterrupted run, trained in this process."""
    root = pf.copy(tmp_path_factory, tmp_path_factory.mktemp("reference"))
    with contextlib.chdir(root):  # DVCLive looks for a DVC repo from the working directory
        train.run(pf.tiny_params(**TRAIN), MODEL, 0, root)
    return torch.load(Paths(root).model_dir(MODEL, 0) / "model.pt", weights_only=True)["state_dict"]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_training_leaves_no_model_and_resumes_to_the_same_weights(sig, reference, tmp_path, tmp_path_factory):
    root = pf.copy(tmp_path_factory, tmp_path)
    write_params(root / "params.yaml", params.to_dict(pf.tiny_params(**TRAIN)))
    paths = Paths(root)
    model_dir, ckpt = paths.model_dir(MODEL, 0), paths.checkpoint_dir(MODEL, 0) / "last.pt"
    args = ("train", "--model", MODEL, "--fold", "0", "--params", "params.yaml", "--root", ".")

    proc = start(root, *args)
    wait_for(proc, ckpt.exists)
    proc.send_signal(sig)
    out = finish(proc)
    assert proc.returncode == EXIT[sig], f"not stopped mid-run:\n{out}"
    assert not (model_dir / "model.pt").exists()
    assert leftovers(root) == []
    if sig == signal.SIGINT:
        # the hint names the command that was run, to run again as it is
        assert f"interrupted, no model written; run `maskcls {' '.join(args)}` again to resume" in out

    proc = start(root, *args)
    out = finish(proc)
    assert proc.returncode == 0, out
    assert "resuming after epoch" in out and f"resuming after epoch {TRAIN['epochs']}" not in out
    weights = torch.load(model_dir / "model.pt", weights_only=True)["state_dict"]
    assert weights.keys() == reference.keys()
    assert all(torch.equal(weights[k], reference[k]) for k in reference)
    assert not ckpt.parent.exists() and leftovers(root) == []


def test_killed_cache_stage_keeps_the_previous_cache(tmp_path, tmp_path_factory):
    root = tmp_path / "repo"
    shutil.copytree(pf.template(tmp_path_factory), root)  # with the raw sample: the cache stage reads it
    cache_dir = Paths(root).cache_dir
    before = {p.name: p.read_bytes() for p in cache_dir.iterdir()}
    center = params.to_dict(pf.tiny_params())
    # Face crops run a detector on every photo: seconds of work, time enough to be killed in the middle.
    face = write_params(root / "face.yaml", center | {"cache": center["cache"] | {"crop": "face"}})

    proc = start(root, "cache", "--params", face.name, "--root", ".")
    wait_for(proc, lambda: any(cache_dir.parent.glob(".cache.*.tmp/cache/train.npy")))
    proc.kill()
    out = finish(proc)
    assert proc.returncode == -signal.SIGKILL, f"not stopped mid-run:\n{out}"
    assert {p.name: p.read_bytes() for p in cache_dir.iterdir()} == before  # the previous cache, whole

    # The killed run's temporary (a second copy of the cache) is gone once the stage runs again.
    proc = start(root, "cache", "--params", str(write_params(root / "center.yaml", center)), "--root", ".")
    out = finish(proc)
    assert proc.returncode == 0, out
    assert leftovers(root) == []
    assert {p.name: p.read_bytes() for p in cache_dir.iterdir()} == before
