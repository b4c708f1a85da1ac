"""git and DVC run as subprocesses: the one place the package starts them.

DVC runs as `python -m dvc` under this interpreter, so it is the DVC of this installation, in an environment
where its stages find the `maskcls` command of this same installation. A failure raises MaskclsError naming the
command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from maskcls.errors import MaskclsError


def tool_env() -> dict[str, str]:
    """Environment in which DVC finds the `maskcls` command of this same installation."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def git(root: Path, *args: str) -> str:
    """The output of `git ARGS` run in `root`; MaskclsError with git's own message when it fails."""
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise MaskclsError(f"git {' '.join(args)}: {result.stderr.strip() or 'failed'}")
    return result.stdout


def dvc(
    root: Path, *args: str, check: bool = True, capture: bool = False, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`dvc ARGS` run in `root`.

    env: the environment of DVC and its stages (default: `tool_env()`). capture: keep stdout and stderr as text
    instead of letting them through. check: MaskclsError when DVC fails; otherwise the caller reads returncode.
    """
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        env=tool_env() if env is None else env,
        text=True,
        capture_output=capture,
        check=False,
    )
    if check and result.returncode != 0:
        raise MaskclsError(f"dvc {' '.join(args)} failed (exit {result.returncode}) in {root}")
    return result
