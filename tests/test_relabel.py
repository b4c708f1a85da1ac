"""relabel_age: truth with the competition's bands, per-model targets, and what the age threshold touches."""

from io import BytesIO

import pandas as pd
import pytest

import rawsample
from maskcls import io, layout, params
from maskcls.errors import DataError, ParamsError
from maskcls.paths import Paths
from maskcls.stages import relabel, validate

pytestmark = pytest.mark.filterwarnings("ignore::maskcls.scan.DataWarning")

CORE_TO_MALE = "006359"  # on the core list: female -> male
# Ages on both sides of each threshold: 58 and 59 are old only with old_from 58.
PEOPLE = {"000101": (0, 20), "000102": (1, 45), "000103": (0, 57), "000104": (1, 58), "000105": (0, 59)}
PEOPLE |= {"000106": (1, 60), CORE_TO_MALE: (1, 29)}
MODELS = {
    "multihead": {"head": "multihead"},
    "single": {"head": "single"},
    "mask_only": {"head": "mask"},
    "gender_only": {"head": "gender"},
    "age_only": {"head": "age"},
}


def make_params(old_from=58, overrides="core", models=None) -> params.Params:
    models = models or MODELS
    return params.from_dict(
        {
            "relabel_age": {"old_from": old_from, "overrides": overrides},
            "models": models,
            "pipeline": {"models": [next(m for m, spec in models.items() if spec["head"] != "mask")]},
        }
    )


@pytest.fixture
def root(tmp_path):
    io.write_csv(Paths(tmp_path).index_dir / "train.csv", rawsample.index_frame(PEOPLE))
    return tmp_path


def labels(root, name):
    return pd.read_csv(Paths(root).labels_dir / f"{name}.csv", dtype={"person": str})


def test_truth_uses_the_competition_bands_and_overrides(root):
    relabel.run(make_params(old_from=58), root=root)
    truth = labels(root, "truth")
    assert list(truth.columns) == ["row", "person", "mask", "gender", "age", "class"]
    ages = truth.groupby("person")["age"].first()
    assert ages["000104"] == ages["000105"] == 1 and ages["000106"] == 2  # 60, not old_from
    assert (truth["class"] == layout.encode(truth["mask"], truth["gender"], truth["age"])).all()
    assert (truth.loc[truth["person"] == CORE_TO_MALE, "gender"] == 0).all()  # the core fix applied


def test_each_model_gets_only_its_targets(root):
    relabel.run(make_params(), root=root)
    files = sorted(p.name for p in Paths(root).labels_dir.iterdir())
    assert files == sorted(["truth.csv", *(f"{m}.csv" for m in MODELS)])
    assert list(labels(root, "mask_only").columns) == ["row", "person", "mask"]
    assert list(labels(root, "gender_only").columns) == ["row", "person", "gender"]
    assert list(labels(root, "age_only").columns) == ["row", "person", "age"]
    for name in ("multihead", "single"):
        assert list(labels(root, name).columns) == ["row", "person", "mask", "gender", "age"]


def test_the_age_threshold_changes_only_age_targets(root):
    read = {}
    for old_from in (58, 60):
        relabel.run(make_params(old_from=old_from), root=root)
        read[old_from] = {p.name: p.read_bytes() for p in Paths(root).labels_dir.iterdir()}
    for name in ("truth.csv", "mask_only.csv", "gender_only.csv"):
        assert read[58][name] == read[60][name], f"{name} must not change, or DVC retrains its model"
    for name in ("age_only.csv", "multihead.csv", "single.csv"):
        low, high = (pd.read_csv(BytesIO(read[t][name]), dtype={"person": str}) for t in (58, 60))
        differs = low != high
        assert set(differs.columns[differs.any()]) == {"age"}
        assert set(low.loc[differs["age"], "person"]) == {"000104", "000105"}  # 58 and 59
        assert (low.loc[differs["age"], "age"] == 2).all() and (high.loc[differs["age"], "age"] == 1).all()


def test_models_no_longer_defined_lose_their_file(root):
    relabel.run(make_params(), root=root)
    relabel.run(make_params(models={"multihead": {"head": "multihead"}}), root=root)
    assert sorted(p.name for p in Paths(root).labels_dir.iterdir()) == ["multihead.csv", "truth.csv"]


def test_overrides_mode_reaches_the_labels(root):
    relabel.run(make_params(overrides="off"), root=root)
    assert (labels(root, "truth").query("person == @CORE_TO_MALE")["gender"] == 1).all()


def test_missing_index_names_the_stage_to_run(tmp_path):
    with pytest.raises(DataError, match="validate"):
        relabel.run(make_params(), root=tmp_path)


@pytest.mark.parametrize(("old_from", "models"), [(30, None), (61, None), (58, {"truth": {"head": "multihead"}})])
def test_impossible_params_are_refused(root, old_from, models):
    with pytest.raises(ParamsError):
        relabel.run(make_params(old_from=old_from, models=models), root=root)
    assert not Paths(root).labels_dir.exists()


def test_runs_on_the_validated_sample(tmp_path, tmp_path_factory):
    raw = rawsample.copy(tmp_path_factory, tmp_path / "raw")
    validate.run(raw, out=Paths(tmp_path).index_dir)
    tables = relabel.run(make_params(), root=tmp_path)
    truth = labels(tmp_path, "truth")
    assert len(truth) == 7 * rawsample.PEOPLE
    assert truth["row"].tolist() == list(range(len(truth)))
    assert truth["person"].str.contains("003397#2").any()  # person ids survive the csv round trip
    pd.testing.assert_frame_equal(truth, tables["truth"], check_dtype=False)
