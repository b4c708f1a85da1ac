"""The leaderboard ledger: every submitted result tied to the git revision, params and submission bytes behind it.

`leaderboard.csv` is tracked by git. A row is recorded from a git revision (a commit or a DVC experiment's
commit), never from loose workspace state, so `reproduce` can always check that revision out again, rebuild
its submission and compare md5s.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from maskcls import io, portable
from maskcls import params as params_mod
from maskcls.errors import MaskclsError
from maskcls.vcs import dvc, git, tool_env

LEDGER = "leaderboard.csv"
# The machine a row's submission was built on (`maskcls env`): what its bytes depend on beyond code, data and
# params. Appended after the original columns: rows recorded before they existed load with them empty.
ENV_KEYS = ["cpu", "cpu_mode", "threads", "torch", "cuda", "cudnn", "gpu"]
ENV_COLUMNS = [f"env_{key}" for key in ENV_KEYS]
COLUMNS = [
    "id",
    "date",
    "rev",
    "exp",
    "params_digest",
    "submission_md5",
    "oof_f1",
    "public_f1",
    "private_f1",
    "note",
    *ENV_COLUMNS,
]
SUBMISSION = "submissions/submission.csv"


def _own_cpu_mode_env() -> dict[str, str]:
    """`tool_env()` without this process's CPU-mode switches: a child sets its own from the params it reads (and a
    revision older than portable mode ran native)."""
    return {k: v for k, v in tool_env().items() if k not in (*portable.SWITCHES, portable.MODE)}


def stage_env(root: Path) -> dict[str, str]:
    """Environment for DVC in the checkout at `root`: its stages run `maskcls` from that checkout's src/.

    The installed package is the main checkout's (an editable install), so without this a worktree of an older
    revision would rebuild its outputs with today's code. The CPU-mode switches of this process are dropped:
    each stage sets its own from its checkout's params.yaml.
    """
    env = _own_cpu_mode_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(root).resolve() / "src"), env.get("PYTHONPATH")]))
    return env


def checkout_dvc(root: Path, *args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess:
    """`dvc ARGS` in the checkout at `root`, its stages running that checkout's code (`stage_env`)."""
    return dvc(root, *args, check=check, capture=capture, env=stage_env(root))


def experiment_rev(root: Path, name: str) -> str:
    """Commit of the DVC experiment `name` (experiments live under refs/exps/)."""
    refs = git(root, "for-each-ref", "refs/exps", "--format=%(refname) %(objectname)").split("\n")
    matches = [line.split()[1] for line in refs if line and line.split()[0].rsplit("/", 1)[-1] == name]
    if not matches:
        raise MaskclsError(f"no experiment named {name!r}; `dvc exp list` shows the names")
    if len(set(matches)) > 1:
        # Names are unique per baseline commit only; guessing would tie the score to the wrong run.
        raise MaskclsError(
            f"{len(matches)} experiments are named {name!r} (on different baselines); pass --rev with its commit "
            "(`dvc exp show --all-commits` lists them)"
        )
    return matches[0]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _lock_out(lock: dict, path: str) -> dict:
    for stage in lock.get("stages", {}).values():
        for out in stage.get("outs", []):
            if out["path"] == path:
                return out
    raise MaskclsError(f"dvc.lock has no output {path}; run `dvc repro` and commit dvc.lock")


def cache_dir(root: Path) -> Path:
    """The DVC cache of the repository at `root`, wherever `cache.dir` puts it (a shared cache, say)."""
    result = checkout_dvc(root, "cache", "dir", check=False, capture=True)
    if result.returncode != 0 or not result.stdout.strip():
        return Path(root) / ".dvc" / "cache"
    return Path(root, result.stdout.strip()).resolve()


def submission_md5_at(root: Path, rev: str) -> str:
    """md5 of submissions/submission.csv as recorded by that revision's dvc.lock."""
    lock = params_mod._yaml().load(git(root, "show", f"{rev}:dvc.lock"))
    return _lock_out(lock, SUBMISSION)["md5"]


def read_ledger(root: Path) -> pd.DataFrame:
    path = Path(root) / LEDGER
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    text = {"rev": str, "exp": str, "params_digest": str, "submission_md5": str, "note": str}
    ledger = pd.read_csv(path, dtype=text | dict.fromkeys(ENV_COLUMNS, str))
    for column in ENV_COLUMNS:  # a ledger written before the fingerprint existed
        if column not in ledger:
            ledger[column] = pd.Series([None] * len(ledger), dtype=object)
    return ledger


# --- the machine behind a row ----------------------------------------------------------------------------------


def _holds(root: Path, rev: str, path: str) -> bool:
    """Whether revision `rev` has a file at `path`."""
    try:
        git(root, "cat-file", "-e", f"{rev}:{path}")
    except MaskclsError:
        return False
    return True


def _runtime_layout(data: dict) -> dict:
    """An older revision's params in today's layout, as far as `maskcls env` reads them: its CPU mode, threads
    and device lived under `repro` and `train` before the `runtime` section held them."""
    runtime = dict(data.get("runtime") or {})
    for key in ("threads", "device"):
        if key in (data.get("train") or {}):
            runtime.setdefault(key, data["train"][key])
    if "portable" in (data.get("repro") or {}):
        runtime.setdefault("portable", data["repro"]["portable"])
    return {"runtime": runtime}


def environment(root: Path, sha: str) -> dict[str, str]:
    """This machine's fingerprint for building revision `sha`: `maskcls env` under that revision's params.

    A revision without portable mode (no src/maskcls/portable.py) ran its CPU kernels natively whatever its
    params say, so it is fingerprinted as native.
    """
    data = _runtime_layout(params_mod._yaml().load(git(root, "show", f"{sha}:params.yaml")) or {})
    if not _holds(root, sha, "src/maskcls/portable.py"):
        data["runtime"]["portable"] = False
    with tempfile.TemporaryDirectory(prefix="maskcls-env-") as tmp:
        path = Path(tmp) / "params.yaml"
        params_mod.dump(data, path)
        result = subprocess.run(
            [sys.executable, "-m", "maskcls.cli", "env", "--params", str(path)],
            cwd=root,
            env=_own_cpu_mode_env(),
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise MaskclsError(f"maskcls env failed: {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def recorded_environment(row) -> dict[str, str] | None:
    """A ledger row's fingerprint; None for a row recorded before fingerprints existed."""
    values = {key: row.get(f"env_{key}") for key in ENV_KEYS}
    if all(v is None or (isinstance(v, float) and pd.isna(v)) or v == "" for v in values.values()):
        return None
    return {key: "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v) for key, v in values.items()}


def relevant_keys(recorded: dict[str, str], current: dict[str, str]) -> list[str]:
    """The parts of a fingerprint that a build's bytes depend on.

    Always: the CPU mode (portable cap or native ISA), threads, torch and the GPU that runs training (or none).
    CUDA and cuDNN when a GPU runs on either side. The CPU model only in native mode: the portable cap is
    meant to make it irrelevant.
    """
    keys = ["cpu_mode", "threads", "torch", "gpu"]
    if recorded.get("gpu", "none") != "none" or current.get("gpu", "none") != "none":
        keys += ["cuda", "cudnn"]
    if not recorded.get("cpu_mode", "").startswith("portable:"):
        keys.append("cpu")
    return keys


def env_differences(recorded: dict[str, str], current: dict[str, str]) -> list[tuple[str, str, str]]:
    """(part, recorded, here) for each relevant part that differs."""
    return [
        (key, recorded.get(key, ""), current.get(key, ""))
        for key in relevant_keys(recorded, current)
        if recorded.get(key, "") != current.get(key, "")
    ]


def explain(differences: list[tuple[str, str, str]]) -> list[str]:
    """What each difference means for the bytes, and what to do about it."""
    lines = []
    for key, was, now in differences:
        if key == "cpu":
            lines.append(
                f"CPU model: recorded {was!r}, here {now!r}. The row was built in native CPU mode, whose bytes "
                f"hold on that CPU model only: rebuild it on a {was!r} machine, or use runtime.portable: true for "
                "results that rebuild on any x86-64 CPU (a new row)."
            )
        elif key == "cpu_mode" and was.startswith("portable:"):
            lines.append(
                f"CPU mode: recorded {was}, here {now}: this machine does not run the portable cap, so it cannot "
                f"rebuild the row; use a machine whose CPU supports {was.split(':', 1)[1]}."
            )
        elif key == "cpu_mode":
            lines.append(
                f"CPU mode: recorded {was}, here {now}: the CPU kernels use other instruction sets here, so the "
                f"sums round differently; rebuild on a machine whose native mode is {was.split(':', 1)[-1]} (the "
                "recorded CPU model), or record new results with runtime.portable: true."
            )
        elif key == "gpu" and was == "none":
            lines.append(
                f"GPU: the row was built on the CPU, here runtime.device picks {now!r}: rebuild without a visible "
                "GPU (CUDA_VISIBLE_DEVICES= maskcls lb reproduce ...)."
            )
        elif key == "gpu":
            lines.append(
                f"GPU: recorded {was!r}, here {now!r}. CUDA results are bit-exact only on the same GPU model (with "
                f"the same driver, CUDA, cuDNN and library versions): rebuild on a {was!r}."
            )
        elif key == "threads":
            lines.append(
                f"threads: recorded {was}, here {now} (runtime.threads: 0 means one per core, which differs between "
                "machines): the CPU sums split across threads differently; rebuild on a machine with as many cores, "
                "or record new results with a fixed runtime.threads."
            )
        else:
            lines.append(
                f"{key}: recorded {was}, here {now}: install the library versions the revision pins "
                "(requirements.lock; `make install` in its checkout)."
            )
    return lines


def record(
    root: Path,
    public: float,
    private: float | None = None,
    rev: str | None = None,
    exp: str | None = None,
    note: str = "",
) -> dict:
    root = Path(root)
    if rev and exp:
        raise MaskclsError("give --rev or --exp, not both")
    if exp:
        sha = experiment_rev(root, exp)
    else:
        sha = git(root, "rev-parse", "--verify", f"{rev or 'HEAD'}^{{commit}}").strip()
        if not rev:
            dirty = git(root, "status", "--porcelain", "--", "params.yaml", "dvc.lock", "dvc.yaml", "src")
            if dirty.strip():
                raise MaskclsError(
                    "the workspace differs from HEAD in params.yaml, dvc.yaml, dvc.lock or src/: commit it "
                    "(or `dvc exp save -n NAME` and use --exp NAME) so the row points at what made the submission"
                )
    params_text = git(root, "show", f"{sha}:params.yaml")
    p = params_mod.from_dict(params_mod._yaml().load(params_text) or {}, source=f"{sha[:10]}:params.yaml")
    try:
        metrics = json.loads(git(root, "show", f"{sha}:metrics/eval.json"))
    except MaskclsError:
        metrics = {}
    submission_md5 = submission_md5_at(root, sha)
    workspace = root / SUBMISSION
    if not rev and not exp and workspace.exists() and md5(workspace.read_bytes()) != submission_md5:
        # The score belongs to the uploaded file: a row must never pair it with another revision's submission.
        raise MaskclsError(
            f"{SUBMISSION} in the workspace (md5 {md5(workspace.read_bytes())}) is not the one HEAD's dvc.lock "
            f"records ({submission_md5}); if you uploaded HEAD's, `dvc checkout` and record again, otherwise "
            "record the revision that made it with --rev or --exp"
        )
    row = {
        "date": dt.date.today().isoformat(),
        "rev": sha,
        "exp": exp or "",
        "params_digest": params_mod.digest(p),
        "submission_md5": submission_md5,
        "oof_f1": metrics.get("oof_f1"),
        "public_f1": public,
        "private_f1": private,
        "note": note,
    } | {f"env_{key}": value for key, value in environment(root, sha).items() if key in ENV_KEYS}
    ledger = read_ledger(root)
    row["id"] = int(ledger["id"].max()) + 1 if len(ledger) else 1
    ledger = pd.concat([ledger, pd.DataFrame([row])[COLUMNS]], ignore_index=True)
    io.write_csv(root / LEDGER, ledger[COLUMNS])
    return row


def show(root: Path) -> str:
    ledger = read_ledger(root)
    if not len(ledger):
        return "the ledger is empty; record a result with `maskcls lb record --public F1`"
    table = ledger.sort_values(["public_f1", "id"], ascending=[False, True]).copy()
    table["cv_gap"] = (table["public_f1"] - table["oof_f1"]).round(4)
    table["rev"] = table["rev"].str[:10]
    table["submission_md5"] = table["submission_md5"].str[:8]
    cols = ["id", "date", "rev", "exp", "oof_f1", "public_f1", "private_f1", "cv_gap", "submission_md5", "note"]
    text = table[cols].fillna("").to_string(index=False)
    scored = ledger.dropna(subset=["oof_f1", "public_f1"])
    if len(scored) >= 3:
        rho = scored["oof_f1"].rank().corr(scored["public_f1"].rank())
        text += f"\n\nlocal CV vs public leaderboard: Spearman {rho:.2f} over {len(scored)} rows"
    return text


@dataclass
class Check:
    """A row's recorded machine against this one, before rebuilding."""

    recorded: dict[str, str] | None  # None: the row predates fingerprints
    current: dict[str, str]
    differences: list[tuple[str, str, str]]

    def summary(self) -> str:
        if self.recorded is None:
            return "the row has no recorded environment (recorded before fingerprints): cannot compare machines"
        if not self.differences:
            return "environment: matches the recorded one in every part the bytes depend on"
        return "environment differs from the recorded one in: " + ", ".join(k for k, _, _ in self.differences)

    def advice(self) -> str:
        if self.recorded is None:
            return (
                "This row predates environment fingerprints, so whether the machine explains the difference is "
                f"unknown; here: {json.dumps(self.current, sort_keys=True)}."
            )
        was, now = self.recorded.get("cpu"), self.current.get("cpu")
        if not self.differences and was != now:
            return (
                f"Only the CPU model differs (recorded {was!r}, here {now!r}), "
                "which portable mode is meant to make irrelevant; docs/reproducibility.md says how far that was "
                "verified (MKL's vector math is the known gap). Rebuild on the recorded CPU model to tell whether "
                "the CPU or something else explains it."
            )
        if not self.differences:
            return (
                "The machine matches the recorded one, so the difference comes from elsewhere: an input outside "
                "DVC's view, an unpinned library, or a stage that is not deterministic. Rerun with --keep and "
                "compare the outputs stage by stage."
            )
        return "\n".join(explain(self.differences))


def row_of(root: Path, row_id: int):
    ledger = read_ledger(root)
    match = ledger[ledger["id"] == row_id]
    if match.empty:
        raise MaskclsError(f"{LEDGER} has no row {row_id}; `maskcls lb show` lists them")
    return match.iloc[0]


def check_environment(root: Path, row_id: int) -> Check:
    """Compare the machine recorded with row `row_id` with this one, for that row's revision."""
    root = Path(root).resolve()
    row = row_of(root, row_id)
    recorded = recorded_environment(row)
    current = environment(root, row["rev"])
    return Check(recorded, current, env_differences(recorded, current) if recorded else [])


def _default_remote_url(root: Path) -> str | None:
    """The default remote's URL, absolute, so a worktree elsewhere reaches the same storage."""
    name = checkout_dvc(root, "remote", "default", check=False, capture=True).stdout.strip()
    if not name:
        return None
    url = checkout_dvc(root, "config", f"remote.{name}.url", check=False, capture=True).stdout.strip()
    if "://" in url or not url:
        return url or None
    return str((root / ".dvc" / url).resolve())


def _pipeline_outputs(tree: Path) -> set[str]:
    stages = params_mod.read_yaml(tree / "dvc.yaml").get("stages", {})
    return {next(iter(o)) if isinstance(o, dict) else o for st in stages.values() for o in st.get("outs", [])}


def _link_raw_data(root: Path, tree: Path) -> None:
    """Real data at a relative data.raw_dir that neither git nor DVC tracks must be visible from the worktree."""
    raw = Path(params_mod.load(tree / "params.yaml").data.raw_dir)
    if raw.is_absolute() or (tree / raw).exists() or raw.as_posix() in _pipeline_outputs(tree):
        return
    source = root / raw
    if source.exists():
        (tree / raw).parent.mkdir(parents=True, exist_ok=True)
        (tree / raw).symlink_to(source.resolve())


def reproduce(root: Path, row_id: int, from_scratch: bool = False, keep: bool = False) -> tuple[bool, str]:
    """Rebuild a row's submission in a separate worktree; returns (md5 matches, rebuilt md5).

    from_scratch: a new, empty DVC cache for the worktree, no remote, no checkout, and `dvc repro --force
    --no-run-cache`: every stage computes again, nothing is restored from any cache.
    """
    root = Path(root).resolve()
    row = row_of(root, row_id)
    work = Path(tempfile.mkdtemp(prefix=f"maskcls-lb{row_id}-"))
    tree = work / "tree"
    git(root, "worktree", "add", "--detach", str(tree), row["rev"])
    try:
        # Share the main cache (and run-cache) unless asked to recompute everything.
        cache = work / "cache" if from_scratch else cache_dir(root)
        checkout_dvc(tree, "config", "--local", "cache.dir", str(cache))
        remote = _default_remote_url(root)
        if remote and not from_scratch:
            checkout_dvc(tree, "config", "--local", "remote.storage.url", remote)
            checkout_dvc(tree, "pull", "--run-cache", "--quiet", check=False)  # whatever is there saves work
        if not from_scratch:
            checkout_dvc(tree, "checkout", "--quiet", check=False)  # outputs already cached need no recomputing
        _link_raw_data(root, tree)
        checkout_dvc(tree, "repro", *(["--no-run-cache", "--force"] if from_scratch else []))
        rebuilt = md5((tree / SUBMISSION).read_bytes())
    finally:
        if not keep:
            git(root, "worktree", "remove", "--force", str(tree))
            shutil.rmtree(work, ignore_errors=True)
    return rebuilt == row["submission_md5"], rebuilt
