"""check_params: params.yaml and data.raw_dir are checked by the first stage, before DVC removes any output.

The fast tests call the stage and the command directly; the slow ones run the real `dvc repro` on a tiny copy of
the repository, up to `split` (no cache, no training), and break params.yaml in the ways a new user does.
"""

import dataclasses
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from maskcls import params
from maskcls.errors import ParamsError
from maskcls.stages import check_params
from repo_copy import copy_repo, dvc, ran

REPO = Path(__file__).resolve().parents[1]
MARKER = check_params.MARKER.as_posix()
MASKCLS = str(Path(sys.executable).parent / "maskcls")


def stages() -> dict:
    return params.read_yaml(REPO / "dvc.yaml")["stages"]


def write_params(root: Path, data: dict) -> Path:
    path = root / "params.yaml"
    params.dump(data, path)
    return path


def raw_folder(root: Path, *subdirs: str) -> Path:
    for sub in subdirs:
        (root / "comp" / sub).mkdir(parents=True)
    return root / "comp"


# --- dvc.yaml wiring -----------------------------------------------------------------------------------------


def test_check_params_reads_every_top_level_section_of_params():
    listed = {entry for entry in stages()["check_params"]["params"] if isinstance(entry, str)}
    sections = {f.name for f in dataclasses.fields(params.Params)}
    assert sections - listed == set(), "check_params must list every top-level field of params.Params"


def test_every_other_stage_waits_for_the_check_and_the_check_knows_synths_folder():
    pipeline = stages()
    assert next(iter(pipeline)) == "check_params"
    assert pipeline["check_params"]["outs"] == [MARKER]
    assert [name for name, stage in pipeline.items() if name != "check_params" and MARKER not in stage["deps"]] == []
    # the one raw_dir the check lets be missing is the folder synth writes after it
    generated = pipeline["check_params"]["cmd"].split("--generated ")[1].split()[0]
    assert pipeline["synth"]["outs"] == [generated]
    assert f"--out {generated} " in pipeline["synth"]["cmd"]


# --- the stage -----------------------------------------------------------------------------------------------


def test_valid_params_write_a_constant_marker(tmp_path):
    committed = params.read_yaml(REPO / "params.yaml")
    check_params.run(write_params(tmp_path, committed), root=tmp_path, generated=Path("data/sample"))
    first = (tmp_path / MARKER).read_bytes()
    committed["train"]["lr"] = 0.5
    check_params.run(write_params(tmp_path, committed), root=tmp_path, generated=Path("data/sample"))
    assert (tmp_path / MARKER).read_bytes() == first == check_params.MARKER_TEXT.encode()
    assert not (tmp_path / "data/sample").exists()  # the sample may be missing: synth runs after the check


@pytest.mark.parametrize(
    "section, value, words",
    [
        ("models", {"multihead": {"backbone": "efficientnet_lite9"}}, "models.multihead.backbone"),
        ("aug", {"train": [{"name": "HorizontalFlipp"}]}, "aug.train[0]: 'HorizontalFlipp'"),
        ("aug", {"minority": [{"name": "CLAHE", "clip_limitt": 2}]}, "aug.minority[0]"),
        ("relabel_age", {"old_from": 61}, "relabel_age.old_from"),
        ("cache", {"crop_size": [600, 336]}, "cache.crop_size"),
        ("train", {"optimizer": "lamb"}, "train.optimizer: 'lamb' is not one of"),
        ("relabel_age", {"overrides": "some"}, "relabel_age.overrides: 'some' is not one of"),
    ],
)
def test_what_only_the_libraries_can_tell_is_checked_here_too(tmp_path, section, value, words):
    """Backbones, augmentations and ranges: refused by the first stage, before any stage works on data."""
    data = params.read_yaml(REPO / "params.yaml")
    data[section] = (
        {**data[section], **value}
        if section != "models"
        else {name: {**spec, **value.get(name, {})} for name, spec in data["models"].items()}
    )
    with pytest.raises(ParamsError, match=re.escape(words)):
        check_params.run(write_params(tmp_path, data), root=tmp_path, generated=Path("data/sample"))
    assert not (tmp_path / MARKER).exists()


@pytest.mark.parametrize("raw_dir", ["data/sample", "./data/sample", "data/sample/"])
def test_the_generated_sample_may_be_missing(tmp_path, raw_dir):
    check_params.check_raw_dir(raw_dir, tmp_path, generated=Path("data/sample"))


@pytest.mark.parametrize(
    "subdirs, words",
    [
        (None, "'comp' does not exist"),
        (("train",), "'comp' has no eval/"),
        (("eval",), "'comp' has no train/"),
        ((), "'comp' has no train/ and no eval/"),
    ],
)
def test_a_wrong_raw_dir_names_the_key_and_the_fix(tmp_path, subdirs, words):
    if subdirs is not None:
        raw_folder(tmp_path, *subdirs).mkdir(exist_ok=True)
    with pytest.raises(ParamsError) as err:
        check_params.check_raw_dir("comp", tmp_path, generated=Path("data/sample"), source="params.yaml")
    message = str(err.value)
    assert message.startswith(f"params.yaml: data.raw_dir: {words}; ")
    assert "point it at the competition folder holding train/ and eval/" in message


def test_a_competition_folder_passes_and_a_file_does_not(tmp_path):
    raw_folder(tmp_path, "train", "eval")
    check_params.check_raw_dir("comp", tmp_path, generated=Path("data/sample"))
    check_params.check_raw_dir(str(tmp_path / "comp"), Path("/elsewhere"))  # an absolute raw_dir ignores root
    (tmp_path / "file").write_text("x")
    with pytest.raises(ParamsError, match="data.raw_dir: 'file' is a file, not a folder"):
        check_params.check_raw_dir("file", tmp_path)


def test_the_command_refuses_a_typo_and_writes_no_marker(tmp_path):
    data = params.read_yaml(REPO / "params.yaml")
    data["train"]["lrr"] = 0.1
    write_params(tmp_path, data)
    result = subprocess.run([MASKCLS, "check-params"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 2
    assert "params.yaml: train.lrr: unknown key; did you mean 'lr'?" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / MARKER).exists()


# --- the real pipeline ---------------------------------------------------------------------------------------

KEPT = ["data/sample/train_truth.csv", "data/index/train.csv", "data/labels/truth.csv", "data/split/folds.csv"]


def md5s(root: Path) -> dict[str, str]:
    return {rel: hashlib.md5((root / rel).read_bytes()).hexdigest() for rel in KEPT}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A copy run up to `split`; every test leaves params.yaml and the outputs as it found them."""
    root = copy_repo(tmp_path_factory.mktemp("check_params") / "repo")
    out = dvc(root, "repro", "split")
    assert {"check_params", "synth", "validate", "relabel_age", "split"} <= ran(out)
    return root


class Edit:
    """Edits of the copy's params.yaml; `restore()` puts the committed one back and re-runs up to `split`."""

    def __init__(self, root: Path):
        self.root = root
        self.original = (root / "params.yaml").read_bytes()
        self.outputs = md5s(root)
        self.edited = False

    def __call__(self, change) -> None:
        data = params.read_yaml(self.root / "params.yaml")
        change(data)
        write_params(self.root, data)
        self.edited = True

    def restore(self) -> set[str]:
        """The stages `dvc repro split` ran with the committed params.yaml back in place."""
        if not self.edited:
            return set()
        self.edited = False
        (self.root / "params.yaml").write_bytes(self.original)
        out = dvc(self.root, "repro", "split")
        assert md5s(self.root) == self.outputs
        return ran(out)


@pytest.fixture
def edited(repo):
    edit = Edit(repo)
    yield edit
    edit.restore()


def refused(repo: Path, *words: str) -> str:
    before = md5s(repo)
    out = dvc(repo, "repro", "split", check=False)
    assert "failed to reproduce 'check_params'" in out, out[-3000:]
    for word in words:
        assert word in out, out[-3000:]
    assert ran(out) == {"check_params"}, "a stage ran after the check failed"
    assert md5s(repo) == before  # every output is still there, untouched
    return out


@pytest.mark.slow
@pytest.mark.xdist_group("check_params")
def test_a_typo_in_params_stops_dvc_repro_before_any_output_is_removed(repo, edited):
    edited(lambda data: data["train"].update(lrr=0.1))
    refused(repo, "train.lrr: unknown key; did you mean 'lr'?")
    assert edited.restore() <= {"check_params"}  # the marker is unchanged: nothing else re-runs


@pytest.mark.slow
@pytest.mark.xdist_group("check_params")
def test_a_stray_top_level_key_is_refused_too(repo, edited):
    edited(lambda data: data.update(sead=1))
    refused(repo, "sead: unknown key; did you mean 'seed'?")
    assert edited.restore() <= {"check_params"}  # the marker is unchanged: nothing else re-runs


@pytest.mark.slow
@pytest.mark.xdist_group("check_params")
def test_a_missing_raw_dir_is_named_with_its_fix_before_dvc_looks_for_it(repo, edited):
    edited(lambda data: data["data"].update(raw_dir="data/competition"))
    out = refused(
        repo,
        "data.raw_dir: 'data/competition' does not exist; point it at the competition folder holding train/ and eval/",
    )
    assert "Errno 2" not in out
    assert edited.restore() <= {"check_params"}  # the marker is unchanged: nothing else re-runs


@pytest.mark.slow
@pytest.mark.xdist_group("check_params")
def test_a_valid_change_reruns_the_check_and_only_the_stages_that_read_the_key(repo, edited):
    marker = (repo / MARKER).read_bytes()
    edited(lambda data: data["split"].update(holdout_ratio=0.25))
    assert "check_params" in dvc(repo, "status", "--with-deps", "split")
    out = dvc(repo, "repro", "split")
    assert ran(out) == {"check_params", "split"}
    assert (repo / MARKER).read_bytes() == marker
    assert dvc(repo, "status", "--with-deps", "split", "--quiet", check=False) == ""
