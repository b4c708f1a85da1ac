"""The leaderboard ledger on a tiny copy of the repository: record, show, reproduce, and sharing results.

One copy per module: `dvc repro` once, results committed, then rows recorded from HEAD, `--rev` and an
experiment. Tests read the rows in file order; the tampering test restores what it changes.
"""

import contextlib
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from maskcls import ledger, params
from repo_copy import copy_repo, dvc, git, ran

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ledger")]

MASKCLS = str(Path(sys.executable).parent / "maskcls")


def lb(root: Path, *args: str) -> subprocess.CompletedProcess:
    """`maskcls lb ...` as a user types it; the caller checks the exit code."""
    return subprocess.run([MASKCLS, "lb", *args], cwd=root, capture_output=True, text=True)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def rows(root: Path) -> pd.DataFrame:
    return ledger.read_ledger(root).set_index("id")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A repository whose HEAD holds a complete run: dvc.lock, metrics and DVCLive logs committed."""
    root = copy_repo(tmp_path_factory.mktemp("ledger") / "repo")
    dvc(root, "repro")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "tiny run")
    return root


@pytest.fixture(scope="module")
def recorded(repo):
    """Row 1 from HEAD, row 2 from an experiment, row 3 from --rev HEAD: enough rows for the rank correlation."""
    head_submission = md5(repo / "submissions/submission.csv")
    ok(lb(repo, "record", "--public", "0.7", "--private", "0.69", "--note", "baseline"))
    # An age threshold retrains only the multi-head model, and changes both its submission and its CV.
    dvc(repo, "exp", "run", "-n", "age31", "-S", "relabel_age.old_from=31")
    exp_submission = md5(repo / "submissions/submission.csv")
    ok(lb(repo, "record", "--exp", "age31", "--public", "0.72"))
    # Back to HEAD's params, lock and outputs, so the workspace matches the commit again.
    git(repo, "checkout", "--", ".")
    dvc(repo, "checkout", "--force", "dvc.yaml")  # the first round only: the pseudo-label round never ran here
    ok(lb(repo, "record", "--rev", "HEAD", "--public", "0.65"))
    return repo, {1: head_submission, 2: exp_submission}


def test_record_ties_a_row_to_the_head_revision(recorded):
    root, submissions = recorded
    row = rows(root).loc[1]
    assert row["rev"] == git(root, "rev-parse", "HEAD").strip()
    assert row["params_digest"] == params.digest(params.load(root / "params.yaml"))
    assert row["submission_md5"] == submissions[1] == md5(root / "submissions/submission.csv")
    assert row["oof_f1"] == pytest.approx(json.loads((root / "metrics/eval.json").read_text())["oof_f1"])
    assert (row["public_f1"], row["private_f1"], row["note"]) == (0.7, 0.69, "baseline")


def test_record_stores_the_machine_behind_the_row(recorded):
    root, _ = recorded
    row = rows(root).loc[1]
    here = json.loads(ok(subprocess.run([MASKCLS, "env"], cwd=root, capture_output=True, text=True)))
    assert {key: row[f"env_{key}"] for key in ledger.ENV_KEYS} == here
    assert here["cpu_mode"] == "portable:AVX2"  # the copy's params.yaml keeps runtime.portable: true
    assert here["threads"] == str(params.load(root / "params.yaml").runtime.threads)


def test_record_refuses_uncommitted_params(recorded):
    root, _ = recorded
    path = root / "params.yaml"
    text = path.read_text()
    path.write_text(text.replace("method: soft", "method: hard"))
    try:
        result = lb(root, "record", "--public", "0.5")
    finally:
        path.write_text(text)
    assert result.returncode == 2
    assert "params.yaml" in result.stderr and "commit it" in result.stderr
    assert len(rows(root)) == 3  # nothing recorded


def test_record_refuses_a_workspace_submission_that_head_did_not_make(recorded):
    root, _ = recorded
    path = root / "submissions/submission.csv"
    text = path.read_text()
    path.unlink()  # a new file, never an edit: the output may be linked to DVC's cache
    header, first, *rest = text.splitlines(keepends=True)
    image, answer = first.rstrip("\n").rsplit(",", 1)
    path.write_text("".join([header, f"{image},{(int(answer) + 1) % 18}\n", *rest]))  # one answer changed
    try:
        result = lb(root, "record", "--public", "0.5")
    finally:
        dvc(root, "checkout", "--force", "submissions/submission.csv")
    assert result.returncode == 2
    assert "is not the one HEAD's dvc.lock records" in result.stderr
    assert len(rows(root)) == 3


def test_stages_of_a_checkout_run_its_own_code(tmp_path):
    """A worktree of an older revision must rebuild with that revision's src/, not the installed package."""
    (tmp_path / "src/maskcls").mkdir(parents=True)
    (tmp_path / "src/maskcls/__init__.py").write_text("")
    probe = [sys.executable, "-c", "import maskcls; print(maskcls.__file__)"]
    result = subprocess.run(probe, env=ledger.stage_env(tmp_path), capture_output=True, text=True, check=True)
    assert Path(result.stdout.strip()) == tmp_path / "src/maskcls/__init__.py"


def test_record_exp_points_at_the_experiment_commit(recorded):
    root, submissions = recorded
    row = rows(root).loc[2]
    refs = git(root, "for-each-ref", "refs/exps", "--format=%(refname) %(objectname)")
    assert f"/age31 {row['rev']}" in refs
    assert row["rev"] != rows(root).loc[1, "rev"]
    assert row["exp"] == "age31"
    assert row["submission_md5"] == submissions[2] != submissions[1]
    exp_params = params.from_dict(params._yaml().load(git(root, "show", f"{row['rev']}:params.yaml")))
    assert exp_params.relabel_age.old_from == 31
    assert row["params_digest"] == params.digest(exp_params) != rows(root).loc[1, "params_digest"]


def test_show_sorts_by_public_score_with_local_cv_beside_it(recorded):
    root, _ = recorded
    text = ok(lb(root, "show"))
    lines = text.splitlines()
    header = lines[0].split()
    assert header[:6] == ["id", "date", "rev", "exp", "oof_f1", "public_f1"]
    assert [int(line.split()[0]) for line in lines[1:4]] == [2, 1, 3]
    table = rows(root)
    for line in lines[1:4]:
        row = table.loc[int(line.split()[0])]
        assert f"{row['oof_f1']:.6f}"[:6] in line and f"{row['public_f1']:.2f}" in line
    assert re.search(r"Spearman -?\d\.\d\d over 3 rows", text)


def test_reproduce_from_the_cache_matches(recorded):
    root, _ = recorded
    out = ok(lb(root, "reproduce", "1"))
    assert "matches" in out
    assert "NOT" not in out
    assert len(git(root, "worktree", "list").splitlines()) == 1  # the worktree is gone again


def test_reproduce_an_experiment_row_matches(recorded):
    root, _ = recorded
    assert "matches" in ok(lb(root, "reproduce", "2"))


def test_reproduce_from_scratch_recomputes_every_stage_and_matches(recorded):
    root, _ = recorded
    result = lb(root, "reproduce", "1", "--from-scratch")
    out = ok(result)
    # Every stage of the revision's pipeline ran: none was restored from a cache or the run-cache.
    assert ran(out + result.stderr) == set(dvc(root, "stage", "list", "--name-only").split())
    assert "matches" in out


@contextlib.contextmanager
def tampered(root: Path, changes: dict[str, str], drop_env: bool = False):
    """Row 1 changed (and, with drop_env, the fingerprint columns removed as an old ledger lacks them) inside the
    block; the ledger file is restored after it."""
    path = root / ledger.LEDGER
    original = path.read_text()
    try:
        frame = pd.read_csv(path, dtype=str)
        for column, value in changes.items():
            frame.loc[frame["id"] == "1", column] = value
        if drop_env:
            frame = frame.drop(columns=ledger.ENV_COLUMNS)
        frame.to_csv(path, index=False)
        yield
    finally:
        path.write_text(original)


def test_a_tampered_row_is_reported_as_not_matching(recorded):
    root, _ = recorded
    with tampered(root, {"submission_md5": "0" * 32}):
        result = lb(root, "reproduce", "1")
    assert result.returncode == 1
    assert "does NOT match" in result.stderr
    # Same machine: the environment is ruled out, and said so.
    assert "environment: matches the recorded one" in result.stderr
    assert "comes from elsewhere" in result.stderr


def test_a_mismatch_from_another_machine_names_the_part_and_the_remedy(recorded):
    root, _ = recorded
    other_machine = {"env_cpu_mode": "native:AVX512", "env_cpu": "AMD EPYC 9654 96-Core"}
    with tampered(root, {"submission_md5": "0" * 32, **other_machine}):
        result = lb(root, "reproduce", "1")
    assert result.returncode == 1
    assert "environment differs from the recorded one in: cpu_mode, cpu" in result.stderr
    assert "AMD EPYC 9654 96-Core" in result.stderr and "runtime.portable: true" in result.stderr


def test_a_row_recorded_before_fingerprints_still_loads_and_reproduces(recorded):
    root, _ = recorded
    with tampered(root, {}, drop_env=True):
        table = rows(root)
        assert table[ledger.ENV_COLUMNS].isna().all().all()
        assert ledger.recorded_environment(table.loc[1]) is None
        assert "matches" in ok(lb(root, "reproduce", "1"))
        with tampered(root, {"submission_md5": "0" * 32}):
            result = lb(root, "reproduce", "1")
    assert result.returncode == 1
    assert "predates environment fingerprints" in result.stderr


# --- comparing fingerprints -------------------------------------------------------------------------------------

ROW = {
    "cpu": "Intel(R) Xeon(R) Platinum 8480+",
    "cpu_mode": "portable:AVX2",
    "threads": "2",
    "torch": "2.14.1+cu130",
    "cuda": "13.0",
    "cudnn": "92400",
    "gpu": "none",
}


def test_a_portable_row_ignores_the_cpu_model():
    assert ledger.env_differences(ROW, ROW | {"cpu": "AMD EPYC 9654 96-Core Processor"}) == []
    here = ROW | {"cpu_mode": "native:DEFAULT"}  # a CPU that cannot run the cap
    assert ledger.env_differences(ROW, here) == [("cpu_mode", "portable:AVX2", "native:DEFAULT")]
    assert "does not run the portable cap" in ledger.explain(ledger.env_differences(ROW, here))[0]


def test_a_portable_mismatch_on_another_cpu_model_still_points_at_it():
    here = ROW | {"cpu": "AMD EPYC 9654 96-Core Processor"}
    check = ledger.Check(ROW, here, ledger.env_differences(ROW, here))
    assert check.summary().startswith("environment: matches")
    assert "Only the CPU model differs" in check.advice() and "AMD EPYC 9654" in check.advice()
    assert "comes from elsewhere" in ledger.Check(ROW, ROW, []).advice()


def test_a_native_row_needs_the_same_cpu_model_and_instruction_set():
    row = ROW | {"cpu_mode": "native:AVX512"}
    amd = row | {"cpu": "AMD EPYC 9654 96-Core Processor"}
    assert ledger.env_differences(row, amd) == [("cpu", ROW["cpu"], amd["cpu"])]
    assert "runtime.portable: true" in ledger.explain(ledger.env_differences(row, amd))[0]
    laptop = row | {"cpu_mode": "native:AVX2"}
    assert ledger.env_differences(row, laptop) == [("cpu_mode", "native:AVX512", "native:AVX2")]


def test_a_gpu_row_needs_the_same_gpu_model_and_libraries():
    row = ROW | {"gpu": "NVIDIA H100 80GB HBM3"}
    here = row | {"gpu": "NVIDIA H200", "cudnn": "91000", "cpu": "another CPU"}
    assert ledger.env_differences(row, here) == [("gpu", row["gpu"], "NVIDIA H200"), ("cudnn", "92400", "91000")]
    text = "\n".join(ledger.explain(ledger.env_differences(row, here)))
    assert "same GPU model" in text and "rebuild on a 'NVIDIA H100 80GB HBM3'" in text and "requirements.lock" in text


def test_a_cpu_row_on_a_machine_with_a_gpu_says_to_hide_it():
    here = ROW | {"gpu": "NVIDIA H200", "cuda": "12.8"}
    assert ledger.env_differences(ROW, here) == [("gpu", "none", "NVIDIA H200"), ("cuda", "13.0", "12.8")]
    assert "CUDA_VISIBLE_DEVICES=" in ledger.explain(ledger.env_differences(ROW, here))[0]


def test_threads_and_torch_always_count():
    here = ROW | {"threads": "16", "torch": "2.15.0"}
    assert [key for key, _, _ in ledger.env_differences(ROW, here)] == ["threads", "torch"]


def test_an_experiment_run_again_is_restored_from_the_run_cache(recorded):
    """Back to settings tried before: trained models come from DVC's run-cache, nothing is retrained."""
    root, submissions = recorded
    out = dvc(root, "exp", "run", "-S", "relabel_age.old_from=31")
    try:
        # evaluate alone runs again (seconds): its plots are plain git-tracked files, which keep a stage out of
        # the run-cache.
        assert ran(out) <= {"evaluate"}, out
        assert md5(root / "submissions/submission.csv") == submissions[2]
    finally:
        git(root, "checkout", "--", ".")
        dvc(root, "checkout", "--force", "dvc.yaml")


def test_run_cache_push_lets_a_clone_skip_every_stage(recorded, tmp_path):
    """A teammate's clone gets every model of the commit without retraining."""
    root, submissions = recorded
    dvc(root, "push", "--run-cache")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    dvc(clone, "remote", "modify", "--local", "storage", "url", str(root.parent / "storage"))
    dvc(clone, "pull", "--run-cache", "dvc.yaml")  # the first round: the pseudo-label round never ran
    out = dvc(clone, "repro")
    assert ran(out) == set(), out
    assert md5(clone / "submissions/submission.csv") == submissions[1]


def test_an_older_revisions_runtime_settings_are_read_where_they_were():
    """Rows recorded before the `runtime` section: their threads, device and CPU mode lived under train and repro,
    and the fingerprint of a rebuild must use them, not today's defaults."""
    old = {"train": {"threads": 4, "device": "cpu", "lr": 0.1}, "repro": {"portable": False}}
    assert ledger._runtime_layout(old) == {"runtime": {"threads": 4, "device": "cpu", "portable": False}}
    new = {"runtime": {"threads": 1, "portable": True}, "train": {"lr": 0.1}}
    assert ledger._runtime_layout(new) == {"runtime": {"threads": 1, "portable": True}}
