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

from maskcls import params

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "synth": {"people": 40, "eval_people": 8, "seed": 0},
    "split": {"method": "holdout", "holdout_ratio": 0.3},
    "cache": {"height": 32, "width": 24},
    "models": {
        "mh": {"head": "multihead", "backbone": "test_efficientnet", "pretrained": "none"},
        "mk": {"head": "mask", "backbone": "test_efficientnet", "pretrained": "none"},
    },
    "aug": {"train": [{"name": "HorizontalFlip", "p": 0.5}], "minority": []},
    "train": {
        "models": ["mh", "mk"],
        "folds": [0],
        "epochs": 1,
        "warmup_epochs": 0,
        "batch_size": 16,
        "num_workers": 0,
        "threads": 1,  # test workers share two cores: more threads per run only thrash
    },
    "predict": {"batch_size": 64},
}

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

    params.yaml is shrunk to TINY; `overrides` (section -> keys) is merged on top of that.
    """
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    base = params.read_yaml(dest / "params.yaml")
    for layer in (TINY, overrides or {}):
        for key, value in layer.items():
            merge = isinstance(value, dict) and key != "models"
            base[key] = {**base.get(key, {}), **value} if merge else value
    params.dump(base, dest / "params.yaml")
    sh(dest, "git", "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "tiny")
    dvc(dest, "config", "--local", "remote.storage.url", str(dest.parent / "storage"))
    return dest


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}
