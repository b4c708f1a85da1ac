"""Hints name the command the user ran: found from DVC's process above a stage, or this process's argv."""

import os
import subprocess
import sys

from maskcls import rerun


def test_dvc_commands_are_read_from_argv():
    assert rerun.dvc_command(["/venv/bin/dvc", "repro", "train@m-0"]) == "dvc repro train@m-0"
    assert rerun.dvc_command(["/venv/bin/python3", "/venv/bin/dvc", "exp", "run", "-S", "a=1 2"]) == (
        "dvc exp run -S 'a=1 2'"
    )
    assert rerun.dvc_command(["python", "-m", "dvc", "exp", "run"]) == "dvc exp run"
    assert rerun.dvc_command(["/bin/sh", "-c", "maskcls train --model m"]) is None


def test_a_stage_under_dvc_finds_the_dvc_command_among_its_ancestors(tmp_path):
    """A fake `dvc` runs a shell that runs Python, as DVC runs a stage: the grandchild finds the dvc argv."""
    fake = tmp_path / "dvc"
    probe = "from maskcls import rerun; print(rerun.user_command())"
    fake.write_text(f"#!/bin/sh\n/bin/sh -c '{sys.executable} -c \"{probe}\"; true'\n")
    fake.chmod(0o755)
    env = os.environ | {"DVC_STAGE": "train@m-0"}
    out = subprocess.run([str(fake), "exp", "run", "-S", "train.lr=0.1"], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "dvc exp run -S train.lr=0.1", out.stderr


def test_without_dvc_the_stage_address_or_the_own_argv(monkeypatch):
    monkeypatch.setattr(rerun, "ancestor_dvc_command", lambda: None)
    monkeypatch.setenv("DVC_STAGE", "train@m-0")
    assert rerun.user_command() == "dvc repro train@m-0"
    monkeypatch.delenv("DVC_STAGE")
    monkeypatch.setattr(sys, "argv", ["/venv/bin/maskcls", "train", "--model", "m"])
    assert rerun.user_command() == "maskcls train --model m"
