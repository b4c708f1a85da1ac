"""Keeping an experiment: apply it to the workspace and stage exactly the files that belong in git.

`git add -A` after `dvc exp apply` sweeps in whatever lies around: `dvc_plots/` pages, DVCLive folders of
models that are no longer trained. What belongs in git is params.yaml, dvc.lock and each output that dvc.yaml
keeps out of DVC's cache (`cache: false`: metrics and plot files), for the stages dvc.yaml defines now; the same
for the pseudo-label round's pseudo/dvc.yaml once it has run (its pseudo/dvc.lock and pseudo/metrics/eval.json).
"""

from __future__ import annotations

from pathlib import Path

from maskcls.errors import MaskclsError
from maskcls.vcs import git

LOCKS = ("dvc.lock", "pseudo/dvc.lock")  # one per pipeline file; the second only once its round has run


def git_files(root: Path = Path(".")) -> list[str]:
    """params.yaml, the lock files and the uncached outputs of the current pipelines, as paths relative to `root`."""
    from dvc.repo import Repo  # here: DVC's import costs a second, and only this command needs it

    with Repo(str(root)) as repo:
        uncached = sorted({out.def_path for out in repo.index.outs if not out.use_cache})
    locks = [LOCKS[0], *(p for p in LOCKS[1:] if (Path(root) / p).exists())]
    return ["params.yaml", *locks, *(p for p in uncached if (Path(root) / p).exists())]


def apply(name: str, root: Path = Path(".")) -> list[str]:
    """`dvc exp apply NAME`; returns the outputs of stages that never ran here, which it cannot check out.

    DVC checks out the outputs of every pipeline file, and `dvc exp apply` fails (after applying all the rest) when a
    stage has no recorded outputs: the pseudo-label round's (pseudo/dvc.yaml) until it first runs. Those, and only
    those, are let pass; a recorded output that cannot be restored (not in DVC's cache) is an error, as with DVC.
    """
    from dvc.repo import Repo  # here: DVC's import costs a second, and only this command needs it

    with Repo(str(root)) as repo:
        repo.experiments.apply(name, allow_missing=True)
    with Repo(str(root)) as repo:
        cached = [out for out in repo.index.outs if out.use_cache]
        never_ran = sorted(str(out) for out in cached if not out.hash_info)
        lost = sorted(str(out) for out in cached if out.hash_info and not out.exists)
    if lost:
        raise MaskclsError(
            f"dvc exp apply {name}: not in DVC's cache, so not restored: {', '.join(lost)}; `dvc pull --run-cache` or"
            " re-run the stages that make them (`dvc repro`), then `maskcls exp keep` again"
        )
    return never_ran


def keep(name: str, root: Path = Path(".")) -> list[str]:
    """`dvc exp apply NAME`, then `git add` of exactly what belongs in git; returns the staged paths."""
    never_ran = apply(name, root)
    if never_ran:
        print(f"exp keep: not checked out, their stages never ran here: {', '.join(never_ran)}")
    files = git_files(root)
    git(root, "add", "--", *files)
    return files
