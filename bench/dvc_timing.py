"""`dvc repro` and DVC's experiment queue on a shrunk sample, in a temporary copy of this repository (CPU).

    .venv/bin/python bench/dvc_timing.py --out bench/results/dvc_timing.json
    .venv/bin/python bench/dvc_timing.py --tiny --out /tmp/dvc.json    # tiny model and crops: checks the script

The copy holds the tracked files of this checkout (`git ls-files`, as a clone would) in a fresh git repository
with its own DVC cache; the virtual environment is this checkout's. params.yaml is the repository's with a
smaller sample and shorter training (the default model, input size, augmentations, threads and workers stay):

1. `dvc repro` from clean (no dvc.lock, empty cache), with the time of each stage from DVC's own log lines;
2. the incremental `dvc repro` after an ensemble-only change (`ensemble.method: hard`), then after an
   age-threshold change (`relabel_age.old_from` one year lower): which stages ran, how long it took;
3. two tiny queued experiments (`dvc exp run --queue`, one epoch each, each its own learning rate so neither
   comes from the run-cache), run by `dvc queue start -j 1` and by `-j 2`, first with the params' runtime
   settings, then with runtime.threads=1, runtime.num_workers=0 and OMP_WAIT_POLICY=PASSIVE per job. The total
   is from `dvc queue start` until both experiments are committed (their git refs appear; polled cheaply, not
   through `dvc queue status`). Before the next run the workers must have left (DVC's workers linger up to
   10 s on an empty queue, and a lingering one would take the next run's tasks).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

ROOT = benchlib.ROOT
GIT_USER = ("-c", "user.name=bench", "-c", "user.email=bench@localhost")
STAGE_LINE = re.compile(r"^Running stage '([^']+)'")
SKIP_LINE = re.compile(r"^Stage '([^']+)' didn't change, skipping")
CACHED_LINE = re.compile(r"^Stage '([^']+)' is cached - skipping run")

# Queue settings compared: params set on each queued experiment, and the environment of its jobs.
QUEUE_SETTINGS = {
    "params_defaults": {"set": {}, "env": {}},
    "threads1_workers0_passive": {
        "set": {"runtime.threads": 1, "runtime.num_workers": 0},
        "env": {"OMP_WAIT_POLICY": "PASSIVE"},
    },
}
# The celery workers of `dvc queue start` write their pid here (dvc_task's ManagedProcess).
WORKER_PIDS = Path(".dvc/tmp/exps/celery")

# --tiny: the tests' tiny backbone and inputs, so the whole script runs in a few minutes.
TINY = {
    "cache": {"height": 32, "width": 24},
    "models": {"multihead": {"head": "multihead", "backbone": "test_efficientnet", "pretrained": "none"}},
}


def env_with_venv(extra: dict | None = None) -> dict:
    """DVC stages call `maskcls` and the queue's workers `dvc`: this environment's bin first on PATH."""
    env = benchlib.child_env(extra)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env.pop("PYTHONPATH", None)  # the venv's editable install is what the stages import
    return env


def sh(cwd: Path, *cmd: str, env: dict | None = None, check: bool = True) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env or env_with_venv(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout + result.stderr


def dvc_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def git(cwd: Path, *args: str, check: bool = True) -> str:
    return sh(cwd, "git", *GIT_USER, *args, check=check)


def copy_repo(dest: Path, overrides: dict) -> Path:
    """The tracked files of this checkout as a fresh git repository, params shrunk, no dvc.lock."""
    from maskcls import params as params_mod

    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    (dest / "dvc.lock").unlink(missing_ok=True)
    set_params(dest, overrides)
    params_mod.load(dest / "params.yaml")  # a broken overlay fails here, not inside dvc
    sh(dest, "git", "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "bench baseline")
    sh(dest, *dvc_cmd("config", "--local", "remote.storage.url", str(dest.parent / "storage")))
    return dest


def timed_repro(cwd: Path) -> dict:
    """`dvc repro`, streamed: total seconds, the stages run (each from its 'Running stage' line to DVC's next
    stage line, or the end), stages skipped and stages restored from the run-cache."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        dvc_cmd("repro"), cwd=cwd, env=env_with_venv(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    events: list[tuple[str, str, float]] = []  # (kind, stage, seconds since start)
    tail: list[str] = []
    for line in proc.stdout:  # type: ignore[union-attr]
        now = time.perf_counter() - start
        tail = (tail + [line.rstrip()])[-40:]
        for kind, pattern in (("ran", STAGE_LINE), ("skipped", SKIP_LINE), ("cached", CACHED_LINE)):
            if m := pattern.match(line):
                events.append((kind, m.group(1), now))
    proc.wait()
    total = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError("dvc repro failed:\n" + "\n".join(tail))
    ran = []  # in the order DVC ran them: [stage, seconds]
    for i, (kind, name, t0) in enumerate(events):
        if kind == "ran":
            t1 = events[i + 1][2] if i + 1 < len(events) else total
            ran.append([name, round(t1 - t0, 1)])
    return {
        "seconds": round(total, 1),
        "ran": ran,
        "skipped": [name for kind, name, _ in events if kind == "skipped"],
        "from_run_cache": [name for kind, name, _ in events if kind == "cached"],
    }


def set_params(cwd: Path, changes: dict) -> None:
    from maskcls import params as params_mod

    data = benchlib.merged(params_mod.read_yaml(cwd / "params.yaml"), changes)
    params_mod.dump(data, cwd / "params.yaml")


def exp_refs(cwd: Path) -> set[str]:
    """Names of the experiments committed so far (their git refs), cheaply."""
    out = git(cwd, "for-each-ref", "--format=%(refname)", "refs/exps", check=False)
    return {line.rsplit("/", 1)[-1] for line in out.split()}


def live_workers(cwd: Path) -> list[int]:
    """Pids of the queue's worker processes still running."""
    alive = []
    for pidfile in (cwd / WORKER_PIDS).glob("*.pid"):
        try:
            pid = int(pidfile.read_text().strip())
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def wait_for_workers_to_leave(cwd: Path, timeout: float = 120) -> float:
    start = time.perf_counter()
    while live_workers(cwd) and time.perf_counter() - start < timeout:
        time.sleep(1)
    return time.perf_counter() - start


def wait_for(cwd: Path, names: set[str], timeout: float, poll: float = 1.0) -> float:
    """Seconds until every experiment of `names` is committed. Raises when the workers have all left without
    committing them (a failed experiment), or after `timeout`."""
    start = time.perf_counter()
    seen_workers = False
    gone_since = None
    while time.perf_counter() - start < timeout:
        if names <= exp_refs(cwd):
            return time.perf_counter() - start
        workers = live_workers(cwd)
        seen_workers |= bool(workers)
        if not seen_workers and time.perf_counter() - start > 60:
            break  # no worker ever started
        if seen_workers and not workers:
            gone_since = gone_since or time.perf_counter()
            if time.perf_counter() - gone_since > 5:
                break
        time.sleep(poll)
    status = sh(cwd, *dvc_cmd("queue", "status"), check=False)
    logs = "".join(sh(cwd, *dvc_cmd("queue", "logs", n), check=False)[-2000:] for n in sorted(names - exp_refs(cwd)))
    raise RuntimeError(f"queued experiments {sorted(names - exp_refs(cwd))} not committed:\n{status}\n{logs}")


def queue_run(cwd: Path, label: str, jobs: int, setting: dict, lrs: list[float], timeout: float) -> dict:
    """Queue one experiment per learning rate with `setting`, start `jobs` workers, time until all are done."""
    left = wait_for_workers_to_leave(cwd)  # a worker of the last run, still lingering, would take these tasks
    names = []
    for lr in lrs:
        name = f"{label}-lr{lr:.6f}".replace(".", "p")
        sets = {"train.lr": lr, "train.epochs": 1, "train.warmup_epochs": 0, **setting["set"]}
        args = [x for k, v in sets.items() for x in ("-S", f"{k}={v}")]
        sh(cwd, *dvc_cmd("exp", "run", "--queue", "-n", name, *args))
        names.append(name)
    log = cwd.parent / f"queue-{label}.log"
    # The workers inherit the output of `dvc queue start`: to a pipe, the call would return only when they leave.
    start = time.perf_counter()
    with log.open("w") as out:
        cmd = dvc_cmd("queue", "start", "-j", str(jobs))
        subprocess.run(cmd, cwd=cwd, env=env_with_venv(setting["env"]), stdout=out, stderr=subprocess.STDOUT,
                       check=True, timeout=120)  # fmt: skip
    try:
        seconds = time.perf_counter() - start + wait_for(cwd, set(names), timeout)
    except BaseException:
        sh(cwd, *dvc_cmd("queue", "kill", *names), check=False)
        sh(cwd, *dvc_cmd("queue", "stop", "--kill"), check=False)
        wait_for_workers_to_leave(cwd)
        raise
    linger = wait_for_workers_to_leave(cwd)  # not timed: the workers' idle wait on the empty queue
    return {"jobs": jobs, "experiments": names, "seconds": round(seconds, 1), "workers_left_after_s": round(linger, 1),
            "waited_before_s": round(left, 1)}  # fmt: skip


def seconds(results: dict[str, list[dict]], label: str) -> list[float]:
    """The times of the queue runs of `label` that finished."""
    return [x["seconds"] for x in results[label] if "seconds" in x]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=benchlib.RESULTS / "dvc_timing.json")
    ap.add_argument("--people", type=int, default=48, help="train people of the shrunk sample")
    ap.add_argument("--eval-people", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1, help="rounds of the four queue runs")
    ap.add_argument("--no-queue", action="store_true", help="skip the experiment-queue part")
    ap.add_argument("--timeout", type=float, default=900, help="seconds one queue run may take")
    ap.add_argument("--keep", type=Path, help="build the copy here and keep it (for inspection)")
    ap.add_argument("--tiny", action="store_true", help="timm's test_efficientnet at 32x24: checks the script quickly")
    args = ap.parse_args(argv)

    from maskcls import params as params_mod

    load_start = benchlib.load_average()
    started = time.perf_counter()
    overrides: dict = {
        "synth": {"people": args.people, "eval_people": args.eval_people},
        "split": {"method": "holdout", "holdout_ratio": 0.2},  # a 5-fold split needs more people per stratum
        "pipeline": {"folds": [0]},
        "train": {"epochs": args.epochs},
    }
    if args.epochs <= 1:
        overrides["train"]["warmup_epochs"] = 0
    if args.tiny:
        overrides = benchlib.merged(overrides, TINY)
    old_from = params_mod.read_yaml(ROOT / "params.yaml")["relabel_age"]["old_from"] - 1
    with tempfile.TemporaryDirectory(prefix="maskcls-bench-dvc-") as tmp:
        base = args.keep or Path(tmp)
        root = copy_repo(base / "repo", overrides)
        repro = {"clean": timed_repro(root)}
        print(f"clean: {repro['clean']}", file=sys.stderr, flush=True)
        git(root, "add", "-A")
        git(root, "commit", "-qm", "baseline outputs")
        set_params(root, {"ensemble": {"method": "hard"}})
        repro["ensemble_method_hard"] = timed_repro(root)
        print(f"ensemble: {repro['ensemble_method_hard']}", file=sys.stderr, flush=True)
        set_params(root, {"relabel_age": {"old_from": old_from}})
        repro["age_old_from"] = {**timed_repro(root), "old_from": old_from}
        print(f"age: {repro['age_old_from']}", file=sys.stderr, flush=True)
        git(root, "add", "-A")
        git(root, "commit", "-qm", "queue baseline")

        queue: dict = {}
        if not args.no_queue:
            runs = [(s, j) for s in QUEUE_SETTINGS for j in (1, 2)]
            labels = [f"{s}-j{j}" for s, j in runs]
            results: dict[str, list[dict]] = {label: [] for label in labels}
            lr_index = 0
            for r, label in benchlib.alternating(labels, args.rounds):
                setting_name, jobs = label.rsplit("-j", 1)
                lrs = [1e-3 * (1 + 0.01 * (lr_index + k)) for k in range(2)]  # new params: no run-cache hits
                lr_index += 2
                try:
                    out = queue_run(root, f"r{r}-{label}", int(jobs), QUEUE_SETTINGS[setting_name], lrs, args.timeout)
                except RuntimeError as exc:  # a failed experiment: recorded, the other runs still measured
                    out = {"jobs": int(jobs), "error": str(exc)[-3000:]}
                results[label].append(out)
                print(f"queue round {r} {label}: {out}", file=sys.stderr, flush=True)
            wait_for_workers_to_leave(root)
            for setting_name, setting in QUEUE_SETTINGS.items():
                j1, j2 = seconds(results, f"{setting_name}-j1"), seconds(results, f"{setting_name}-j2")
                queue[setting_name] = {
                    "params_set": setting["set"],
                    "env": setting["env"],
                    "j1_seconds": j1,
                    "j2_seconds": j2,
                    "j2_vs_j1": benchlib.ratio(benchlib.median(j2), benchlib.median(j1)) if j1 and j2 else None,
                }
            done = [label for label in results if seconds(results, label)]
            queue["fastest"] = min(done, key=lambda k: benchlib.median(seconds(results, k))) if done else None
            queue["failed"] = [label for label in results if any("error" in x for x in results[label])]
            queue["runs"] = results

    result = {
        "command": "python bench/dvc_timing.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": benchlib.machine(load_start, "shared machine: other processes may have run beside the benchmark"),
        "config": {
            "params_overrides": overrides,
            "queued_experiment": "-S train.lr=<new> -S train.epochs=1 -S train.warmup_epochs=0: reruns check_params, "
            "train, predict, ensemble, evaluate and report",
            "queue_rounds": args.rounds,
            "tiny": args.tiny,
        },
        "repro": repro,
        "queue": queue,
        "seconds": round(time.perf_counter() - started, 1),
    }
    result["targets"] = {"ensemble_only_rerun_under_30s": repro["ensemble_method_hard"]["seconds"] < 30}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: result[k] for k in ("repro", "queue", "targets")}, indent=1), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
