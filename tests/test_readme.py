"""The README's experiment commands, run as written on a copy of the repository with the default model name.

Every `dvc ...` line of the README's Experiments block, and every inline `dvc exp run -S ...` example anywhere
in it, must work on the default params: a command that fails here would fail a new user the same way.
"""

import re
import time

import pytest

from repo_copy import REPO, copy_repo, dvc, sh

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("readme")]

TINY_MODEL = {"head": "multihead", "backbone": "test_efficientnet", "pretrained": "none", "train": {}}


def section(text: str, title: str) -> str:
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def block_commands(text: str) -> list[str]:
    """Commands of the fenced bash blocks in `text`, comments stripped, `&&` chains split."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            commands += [c.strip() for c in line.split("&&") if c.strip()]
    return commands


def inline_experiments(text: str) -> list[str]:
    """Inline `dvc exp run -S key=value` examples without placeholders."""
    found = re.findall(r"`(dvc exp run(?: -n \S+)?(?: -S \S+)+)`", text)
    return [c for c in found if "/path" not in c and "NAME" not in c]


def readme_commands() -> tuple[list[str], list[str]]:
    text = (REPO / "README.md").read_text()
    return block_commands(section(text, "Experiments")), inline_experiments(text)


def test_the_readme_lists_the_commands_this_test_runs():
    block, inline = readme_commands()
    assert "dvc exp show" in block and "dvc repro train@multihead-0" in block and "dvc queue start" in block
    assert "dvc exp run -S ensemble.method=hard" in inline
    assert "dvc exp run -S ++models.multihead.train.lr=3e-4" in inline


def wait_for_queue(root, timeout=900):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = dvc(root, "queue", "status")
        if "Queued" not in status and "Running" not in status:
            return status
        time.sleep(3)
    raise AssertionError(f"queue still busy after {timeout}s:\n{status}")


def test_every_readme_experiment_command_runs_on_the_default_params(tmp_path):
    root = copy_repo(tmp_path / "repo", {"models": {"multihead": TINY_MODEL}, "pipeline": {"models": ["multihead"]}})
    dvc(root, "repro")
    block, inline = readme_commands()
    for command in [*block, *inline]:
        args = [a.strip("'") for a in re.findall(r"'[^']*'|\S+", command)]
        out = dvc(root, *args[1:]) if args[0] == "dvc" else sh(root, *args)
        if args[:3] == ["dvc", "queue", "start"]:
            status = wait_for_queue(root)
            assert "Failed" not in status, status
        assert "ERROR" not in out, f"{command}:\n{out}"
        if args[:3] == ["dvc", "exp", "show"] and "--drop" in args:  # the comparison view
            header = dvc(root, *args[1:], "--md").splitlines()[0]
            columns = [c.strip() for c in header.strip("|").split("|")]
            # (oof_f1_fold_std is left out here: with one fold it never varies, and --only-changed drops it)
            assert {"oof_f1", "oof_f1_fold_mean", "oof_age_f1", "holdout_f1"} <= set(columns)
            assert not [c for c in columns if c.startswith(("src/", "data/")) or c.endswith("_acc")], columns
            assert len(columns) == len(set(columns)) <= 25, columns
    shown = dvc(root, "exp", "show", "-A", "--json")
    assert shown.count('"oof_f1"') >= 5  # the experiments above, each with its score
