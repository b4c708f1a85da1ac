"""The command the user actually ran, so that a hint says "run `<that>` again" rather than a guess.

A stage runs as `maskcls <stage>` under `dvc repro` or `dvc exp run` (DVC sets DVC_STAGE in its environment),
or by hand. Under DVC, the dvc process is found among this process's ancestors (Linux /proc); where that is
not possible, the stage's own address stands in (`dvc repro train@multihead-0`).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name in parentheses may hold spaces: the fields after its closing parenthesis are fixed
    return int(stat.rsplit(")", 1)[1].split()[1])


def _argv(pid: int) -> list[str]:
    try:
        return [a for a in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0") if a]
    except OSError:
        return []


def dvc_command(argv: list[str]) -> str | None:
    """`dvc ...` as typed, from a process's argv (`dvc repro`, `python -m dvc exp run -S a=1`), else None."""
    for i, arg in enumerate(argv):
        # dvc itself, a script run by its interpreter (`python3 /venv/bin/dvc`), or `python -m dvc`
        if Path(arg).name == "dvc" and (i <= 1 or argv[i - 1] == "-m"):
            return shlex.join(["dvc", *argv[i + 1 :]])
    return None


def ancestor_dvc_command(pid: int | None = None, depth: int = 8) -> str | None:
    pid = os.getppid() if pid is None else pid
    for _ in range(depth):
        if pid is None or pid <= 1:
            return None
        found = dvc_command(_argv(pid))
        if found:
            return found
        pid = _parent(pid)
    return None


def user_command() -> str:
    stage = os.environ.get("DVC_STAGE")
    if stage:
        return ancestor_dvc_command() or f"dvc repro {stage}"
    return shlex.join(["maskcls", *sys.argv[1:]])
