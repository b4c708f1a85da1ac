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
from pathlib import Path

import pandas as pd

from maskcls import io
from maskcls import params as params_mod
from maskcls.errors import MaskclsError
from maskcls.recipes import tool_env

LEDGER = "leaderboard.csv"
COLUMNS = ["id", "date", "rev", "exp", "params_digest", "submission_md5", "oof_f1", "public_f1", "private_f1", "note"]
SUBMISSION = "submissions/submission.csv"


def git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise MaskclsError(f"git {' '.join(args)}: {result.stderr.strip() or 'failed'}")
    return result.stdout


def stage_env(root: Path) -> dict[str, str]:
    """Environment for DVC in the checkout at `root`: its stages run `maskcls` from that checkout's src/.

    The installed package is the main checkout's (an editable install), so without this a worktree of an older
    revision would rebuild its outputs with today's code.
    """
    env = tool_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(root).resolve() / "src"), env.get("PYTHONPATH")]))
    return env


def dvc(root: Path, *args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        env=stage_env(root),
        text=True,
        capture_output=capture,
        check=False,
    )
    if check and result.returncode != 0:
        raise MaskclsError(f"dvc {' '.join(args)} failed (exit {result.returncode}) in {root}")
    return result


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
    result = dvc(root, "cache", "dir", check=False, capture=True)
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
    return pd.read_csv(path, dtype={"rev": str, "exp": str, "params_digest": str, "submission_md5": str, "note": str})


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
    }
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


def reproduce(root: Path, row_id: int, from_scratch: bool = False, keep: bool = False) -> tuple[bool, str]:
    """Rebuild a row's submission in a separate worktree; returns (md5 matches, rebuilt md5)."""
    root = Path(root).resolve()
    ledger = read_ledger(root)
    match = ledger[ledger["id"] == row_id]
    if match.empty:
        raise MaskclsError(f"{LEDGER} has no row {row_id}; `maskcls lb show` lists them")
    row = match.iloc[0]
    work = Path(tempfile.mkdtemp(prefix=f"maskcls-lb{row_id}-"))
    tree = work / "tree"
    git(root, "worktree", "add", "--detach", str(tree), row["rev"])
    try:
        # Share the main cache (and run-cache) unless asked to recompute everything.
        cache = work / "cache" if from_scratch else cache_dir(root)
        dvc(tree, "config", "--local", "cache.dir", str(cache))
        remote = _default_remote_url(root)
        if remote and not from_scratch:
            dvc(tree, "config", "--local", "remote.storage.url", remote)
            dvc(tree, "pull", "--run-cache", "--quiet", check=False)  # whatever is there saves work
        if not from_scratch:
            dvc(tree, "checkout", "--quiet", check=False)  # outputs already cached need no recomputing
        _link_raw_data(root, tree)
        dvc(tree, "repro", *(["--no-run-cache", "--force"] if from_scratch else []))
        rebuilt = md5((tree / SUBMISSION).read_bytes())
    finally:
        if not keep:
            git(root, "worktree", "remove", "--force", str(tree))
            shutil.rmtree(work, ignore_errors=True)
    return rebuilt == row["submission_md5"], rebuilt


def _default_remote_url(root: Path) -> str | None:
    """The default remote's URL, absolute, so a worktree elsewhere reaches the same storage."""
    name = dvc(root, "remote", "default", check=False, capture=True).stdout.strip()
    if not name:
        return None
    url = dvc(root, "config", f"remote.{name}.url", check=False, capture=True).stdout.strip()
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
