"""Two independent copies of the repository, same params, `dvc repro` each: every output byte-identical.

The copies sit at different paths, and the first runs with this machine's default thread count while the
second runs as a one-core machine would (one OpenMP/MKL thread); `runtime.threads` must make that irrelevant.
The first copy loads its data in two DataLoader workers, the second in the training process: every draw carries
its augmentation seed, so that must be irrelevant too, and runtime.num_workers is no dependency of any stage.
"""

import hashlib
import os
import subprocess
import sys

import pytest

from maskcls import params
from repo_copy import copy_repo, ran

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bitexact")]

COMPARED = ["models", "preds", "ensemble", "submissions", "data", "dvclive", "metrics/eval.json"]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def repro_both(a, b) -> tuple[str, str]:
    """`dvc repro` in both copies at once (they share two cores; most of a stage is single-threaded start-up)."""
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])
    envs = [{**os.environ, "PATH": path}, {**os.environ, "PATH": path, **ONE_THREAD}]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dvc", "repro"],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for root, env in zip((a, b), envs, strict=True)
    ]
    outs = [proc.communicate()[0] for proc in procs]
    for root, proc, out in zip((a, b), procs, outs, strict=True):
        assert proc.returncode == 0, f"dvc repro in {root} failed:\n{out[-3000:]}"
    return outs[0], outs[1]


def md5s(root) -> dict[str, str]:
    files = []
    for rel in COMPARED:
        path = root / rel
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


def lock_outs(root) -> dict[str, dict[str, str]]:
    """stage -> {output path: md5}: dvc.lock's hashes cover every cached output, directories included."""
    lock = params.read_yaml(root / "dvc.lock")
    return {name: {o["path"]: o["md5"] for o in stage.get("outs", [])} for name, stage in lock["stages"].items()}


def assert_identical(a, b) -> None:
    ours, theirs = md5s(a), md5s(b)
    assert ours.keys() == theirs.keys()
    assert [path for path in ours if ours[path] != theirs[path]] == []
    assert lock_outs(a) == lock_outs(b)
    assert "models/mh/fold0" in lock_outs(a)["train@mh-0"]  # the comparison saw the trained models


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    a, b = (
        copy_repo(tmp_path_factory.mktemp(name) / "repo", {"runtime": {"num_workers": workers}})
        for name, workers in (("a", 2), ("b", 0))
    )
    out_a, out_b = repro_both(a, b)
    assert "train@mh-0" in ran(out_a) and "train@mh-0" in ran(out_b)
    return a, b


def test_two_fresh_runs_one_with_loader_workers_are_byte_identical(copies):
    assert_identical(*copies)


def test_changing_the_loader_workers_retrains_nothing(copies):
    a, _ = copies
    data = params.read_yaml(a / "params.yaml")
    data["runtime"]["num_workers"] = 0
    params.dump(data, a / "params.yaml")
    out = subprocess.run(
        [sys.executable, "-m", "dvc", "repro"], cwd=a, capture_output=True, text=True, check=True,
        env={**os.environ, "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])},
    ).stdout  # fmt: skip
    assert ran(out) <= {"check_params"}, out
