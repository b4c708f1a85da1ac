"""A copy of this repository as a fresh git repository with shrunk params, for tests that run the real `dvc repro`.

Shared by the end-to-end, ledger and bit-exactness tests. A tiny run (40 people, 32x24 crops, timm's
`test_efficientnet` with random weights, one epoch) takes about a minute on two CPU cores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import tiny
from maskcls import params

REPO = Path(__file__).resolve().parents[1]

# Laid over tiny.OVERLAY: params.yaml's models give way to two tiny ones, 8 eval people; the rest of params.yaml
# (learning rate, scheduler, minority resampling, device) stays as it is.
REPO_TINY = {
    "synth": {"eval_people": 8},
    "models": {"mh": tiny.model("multihead"), "mk": tiny.model("mask")},
    "pipeline": {"models": ["mh", "mk"]},
}


def shrunk(data: dict, overrides: dict | None = None) -> dict:
    """params.yaml `data` with tiny.OVERLAY, REPO_TINY and `overrides` laid over it; `models` is replaced whole."""
    for layer in (tiny.OVERLAY, REPO_TINY, overrides or {}):
        data = tiny.merged(data, layer, whole=("models",))
    return data


# Commits made by the tests, without relying on the machine's git identity.
GIT_USER = ("-c", "user.name=t", "-c", "user.email=t@t")


def sh(cwd, *cmd, check=True):
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr


def dvc(cwd, *args, check=True):
    return sh(cwd, sys.executable, "-m", "dvc", *args, check=check)


def git(cwd, *args, check=True):
    return sh(cwd, "git", *GIT_USER, *args, check=check)


def copy_repo(dest: Path, overrides: dict | None = None) -> Path:
    """The tracked files of this checkout, as a fresh git repository (what a clone would hold).

    params.yaml is shrunk by `shrunk`; `overrides` (section -> keys) is merged on top of that.
    """
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    params.dump(shrunk(params.read_yaml(dest / "params.yaml"), overrides), dest / "params.yaml")
    sh(dest, "git", "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "tiny")
    dvc(dest, "config", "--local", "remote.storage.url", str(dest.parent / "storage"))
    return dest


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}
