"""Parallel experiments through DVC's queue, as docs/scaling.md runs them: queue two, start two workers, wait.

`dvc queue start` returns at once; its workers (`dvc exp queue-worker`, run by the `dvc` found on PATH, where
repo_copy.sh and conftest put this environment's bin first) run each experiment in its own copy under
.dvc/tmp/exps and leave when the queue is empty. The test waits on `dvc queue status` until no task is queued
or running, then reads the results back from `dvc exp show --json`.

The workers inherit the standard output and error of `dvc queue start`: started with captured output (a pipe, as
repo_copy.sh captures it), the call would return only when the last worker leaves, so here it writes to a file.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tiny
from repo_copy import copy_repo, dvc, ran

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("queue")]

# One tiny model, so each experiment retrains one model on one fold of one epoch.
ONE_MODEL = {"models": {"mh": tiny.model("multihead")}, "pipeline": {"models": ["mh"]}}
QUEUED = {"lr-a": 0.01, "lr-b": 0.05}
TIMEOUT = 480  # a guard: the two runs took 1.2 to 3 minutes on two cores shared with other work


def start_queue(root: Path, jobs: int, log: Path) -> str:
    """`dvc queue start -j jobs`, returning at once: the workers' inherited output goes to `log`, not a pipe."""
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    with log.open("w") as out:
        cmd = [sys.executable, "-m", "dvc", "queue", "start", "-j", str(jobs)]
        subprocess.run(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=120)
    return log.read_text()


def queue_status(root) -> tuple[dict[str, str], str]:
    """Task name -> status (Queued, Running, Success, Failed) from `dvc queue status`, and the whole text."""
    text = dvc(root, "queue", "status")
    tasks = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3 and re.fullmatch(r"[0-9a-f]{7}", fields[0]):
            tasks[fields[1]] = fields[-1]
    return tasks, text


def wait_until_done(root, names, timeout=TIMEOUT) -> tuple[dict[str, str], int]:
    """The final status of each task, and the most tasks seen running at once."""
    deadline = time.monotonic() + timeout
    text, most_running = "", 0
    while time.monotonic() < deadline:
        tasks, text = queue_status(root)
        most_running = max(most_running, list(tasks.values()).count("Running"))
        if set(names) <= set(tasks) and not {tasks[n] for n in names} & {"Queued", "Running"}:
            return tasks, most_running
        time.sleep(5)  # each `dvc queue status` costs a second or two of CPU the experiments are using
    raise AssertionError(f"the queue was still busy after {timeout}s:\n{text}")


def wait_for_workers_to_leave(root, timeout=60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "Worker status: 0 active, 0 idle" in dvc(root, "queue", "status"):
            return
        time.sleep(2)


def experiments(shown: list) -> dict[str, dict]:
    """Experiment name -> its `data` (params, metrics) from `dvc exp show --json` (DVC 3's layout)."""
    found = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs") or []:
                if rev.get("name"):
                    found[rev["name"]] = rev.get("data") or {}
    return found


def test_two_queued_experiments_run_in_parallel_and_show_their_params_and_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # as docs/scaling.md advises for several jobs on few cores
    root = copy_repo(tmp_path / "repo", ONE_MODEL)
    baseline = (root / "params.yaml").read_text()
    dvc(root, "repro")  # the baseline: the queued runs then skip every stage before training
    for name, lr in QUEUED.items():
        dvc(root, "exp", "run", "--queue", "-n", name, "-S", f"train.lr={lr}")
    assert set(queue_status(root)[0]) == set(QUEUED)

    started = time.monotonic()
    try:
        started_text = start_queue(root, 2, tmp_path / "queue-start.log")
        assert "Started '2' new experiments task queue workers" in started_text, started_text
        tasks, most_running = wait_until_done(root, QUEUED)
        elapsed = time.monotonic() - started
    finally:
        dvc(root, "queue", "stop", "--kill", check=False)  # nothing left to kill unless the wait failed
        wait_for_workers_to_leave(root)
    assert {tasks[n] for n in QUEUED} == {"Success"}, tasks
    assert most_running == 2, "the two experiments never ran at the same time"
    for name in QUEUED:  # each retrained its model; the stages before training came from the baseline's run
        stages = ran(dvc(root, "queue", "logs", name))
        assert "train@mh-0" in stages and "evaluate" in stages and "synth" not in stages, (name, stages)

    shown = experiments(json.loads(dvc(root, "exp", "show", "--json")))
    assert set(QUEUED) <= set(shown), sorted(shown)
    for name, lr in QUEUED.items():
        data = shown[name]
        assert data["params"]["params.yaml"]["data"]["train"]["lr"] == pytest.approx(lr), name
        metrics = data["metrics"]["metrics/eval.json"]["data"]
        for key in ("oof_f1", "oof_acc", "holdout_f1"):
            assert 0.0 <= metrics[key] <= 1.0, (name, key, metrics)
    assert (root / "params.yaml").read_text() == baseline  # the queue ran elsewhere: the workspace is as it was
    print(f"two queued experiments ran with -j 2 in {elapsed:.0f}s")
