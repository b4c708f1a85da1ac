"""The installed `maskcls` console script, run as a user runs it: what --help lists, and how a wrong params file
or a missing input stops a command (exit code 2, one line naming what to fix, no traceback)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from maskcls import params
from maskcls.paths import Paths
from tiny import merged

REPO = Path(__file__).resolve().parents[1]
MASKCLS = str(Path(sys.executable).parent / "maskcls")


def maskcls(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"COLUMNS": "200", "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([MASKCLS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def stopped_with(result: subprocess.CompletedProcess) -> str:
    """The one error line of a command that stopped as it should; fails the test otherwise."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def dvc_stage_commands() -> set[str]:
    """The maskcls subcommand of every stage in dvc.yaml and the pseudo-label round's pseudo/dvc.yaml."""
    stages = [
        stage
        for name in ("dvc.yaml", "pseudo/dvc.yaml")
        for stage in YAML(typ="safe", pure=True).load((REPO / name).read_text())["stages"].values()
    ]
    commands = set()
    for stage in stages:
        cmd = stage.get("cmd") or stage["do"]["cmd"]
        words = shlex.split(cmd if isinstance(cmd, str) else cmd[0])
        assert words[0] == "maskcls", cmd
        commands.add(words[1])
    return commands


def help_commands(text: str) -> list[str]:
    """Command names of the Commands section of --help (rich panel or plain click layout)."""
    section = text[text.index("Commands") :].splitlines()[1:]
    names = []
    for line in section:
        match = re.match(r"^[\s│|]*([a-z][a-z0-9-]*)\s{2,}\S", line)
        if match:
            names.append(match.group(1))
        elif line.strip().startswith(("╰", "└")) or not line.strip():
            break
    return names


def test_help_lists_every_stage_command_of_the_pipeline(tmp_path):
    result = maskcls("--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    listed = help_commands(result.stdout)
    stages = dvc_stage_commands()
    assert {"check-params", "synth", "validate", "relabel-age", "split", "cache", "train", "predict"} <= stages
    assert "pseudo-label" in stages
    assert stages | {"check-submission", "recipe", "exp", "lb"} <= set(listed), listed
    assert len(listed) == len(set(listed))


def write_params(path: Path, change: dict) -> Path:
    """The committed params.yaml with `change` laid over it, written unchecked."""
    params.dump(merged(params.read_yaml(REPO / "params.yaml"), change), path)
    return path


@pytest.mark.parametrize(
    "command, change, message",
    [
        (["cache"], {"split": {"n_fold": 3}}, "split.n_fold: unknown key; did you mean 'n_folds'?"),
        (["relabel-age"], {"split": {"n_folds": "five"}}, "split.n_folds: expected an integer"),
    ],
    ids=["unknown-key", "wrong-type"],
)
def test_a_bad_params_file_exits_2_naming_the_file_and_the_key(tmp_path, command, change, message):
    root = tmp_path / "repo"
    root.mkdir()
    p = write_params(tmp_path / "bad.yaml", change)
    line = stopped_with(maskcls(*command, "--params", str(p), "--root", str(root), cwd=tmp_path))
    assert line.startswith(f"error: {p}: {message}"), line
    assert list(root.iterdir()) == []


def test_a_missing_params_file_says_where_it_looked(tmp_path):
    line = stopped_with(maskcls("cache", "--root", str(tmp_path), cwd=tmp_path))
    assert line == "error: params.yaml: not found; run from the repository root or pass --params"


@pytest.mark.parametrize(
    "command, missing, stage",
    [
        (["evaluate"], lambda paths: paths.labels_dir / "truth.csv", "relabel_age"),
        (["relabel-age"], lambda paths: paths.index_dir / "train.csv", "validate"),
    ],
    ids=["evaluate-without-labels", "relabel-without-index"],
)
def test_a_missing_input_names_the_file_and_the_stage_that_makes_it(tmp_path, command, missing, stage):
    root = tmp_path / "repo"
    root.mkdir()
    line = stopped_with(maskcls(*command, "--params", str(REPO / "params.yaml"), "--root", str(root), cwd=tmp_path))
    assert line.startswith(f"error: {missing(Paths(root))}: not found"), line
    assert f"dvc repro {stage}" in line
    assert list(root.iterdir()) == []
