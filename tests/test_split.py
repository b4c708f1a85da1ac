import numpy as np
import pandas as pd
import pytest

from maskcls import layout, params
from maskcls.errors import ParamsError
from maskcls.paths import Paths
from maskcls.stages import split


def truth_frame(n_people, rng):
    gender = rng.integers(0, 2, n_people)
    age = rng.choice(3, n_people, p=[0.45, 0.45, 0.10])
    rows = []
    for i in range(n_people):
        for stem, mask in layout.STEM_TO_MASK.items():
            rows.append(dict(person=f"{i * 3:06d}", stem=stem, mask=mask, gender=gender[i], age=age[i]))
    frame = pd.DataFrame(rows)
    frame.insert(0, "row", np.arange(len(frame)))
    frame["class"] = layout.encode(frame["mask"], frame["gender"], frame["age"])
    return frame


def run_split(tmp_path, truth, **split_params):
    Paths(tmp_path).labels_dir.mkdir(parents=True)
    truth.to_csv(Paths(tmp_path).labels_dir / "truth.csv", index=False)
    p = params.from_dict({"split": split_params, "pipeline": {"folds": [0]}})
    return split.run(p, root=tmp_path)


def test_kfold_keeps_people_whole_and_balances_strata(tmp_path, rng):
    truth = truth_frame(200, rng)
    folds = run_split(tmp_path, truth, method="kfold", n_folds=5)
    assert folds["person"].is_unique and set(folds["fold"]) == set(range(5))
    merged = truth.merge(folds, on="person")
    assert merged.groupby("person")["fold"].nunique().max() == 1  # no person on both sides
    people = split.people_table(truth).merge(folds, on="person")
    old = people[people.age == 2]
    # every fold gets its share of the rare old stratum
    assert old.fold.value_counts().reindex(range(5), fill_value=0).min() >= len(old) // 5 - 1


def test_split_is_deterministic_and_ignores_row_order(tmp_path, rng):
    truth = truth_frame(150, rng)
    a = run_split(tmp_path / "a", truth, method="kfold", n_folds=3)
    b = run_split(tmp_path / "b", truth.sample(frac=1.0, random_state=1), method="kfold", n_folds=3)
    pd.testing.assert_frame_equal(a, b)
    assert (tmp_path / "a/data/split/folds.csv").read_bytes() == (tmp_path / "b/data/split/folds.csv").read_bytes()


def test_holdout_ratio_per_stratum(tmp_path, rng):
    truth = truth_frame(100, rng)
    folds = run_split(tmp_path, truth, method="holdout", holdout_ratio=0.2)
    assert set(folds.fold) == {0, split.HOLDOUT_TRAIN_ONLY}
    assert 15 <= (folds.fold == 0).sum() <= 25


def test_more_folds_than_people_in_a_stratum_is_refused(tmp_path, rng):
    truth = truth_frame(20, rng)
    with pytest.raises(ParamsError, match="split.n_folds"):
        run_split(tmp_path, truth, method="kfold", n_folds=10)
    assert not Paths(tmp_path).folds.exists()


def test_small_holdout_ratio_still_validates_someone(tmp_path, rng):
    truth = truth_frame(40, rng)
    folds = run_split(tmp_path, truth, method="holdout", holdout_ratio=0.05)
    assert (folds.fold == 0).sum() == 2  # round(0.05 * 40), although every stratum's share rounds to 0


def test_holdout_ratio_too_small_for_anyone_is_refused(tmp_path, rng):
    with pytest.raises(ParamsError, match="split.holdout_ratio"):
        run_split(tmp_path, truth_frame(8, rng), method="holdout", holdout_ratio=0.05)


def with_suffixed_ids(truth, rng, n=30):
    """Give n people the id of another person plus a `-1` / `-2` suffix, as 41 real ids are."""
    people = sorted(truth.person.unique())
    picks = rng.choice(len(people) // 2, n, replace=False)
    rename = {people[len(people) // 2 + i]: f"{people[i]}-{1 + i % 2}" for i in picks}
    return truth.assign(person=truth.person.replace(rename)), rename


@pytest.mark.parametrize("method", ["kfold", "holdout"])
def test_no_base_id_lands_in_two_folds(tmp_path, rng, method):
    truth, rename = with_suffixed_ids(truth_frame(300, rng), rng)
    folds = run_split(tmp_path, truth, method=method, n_folds=5)
    folds["base"] = folds.person.str.replace(r"-[0-9]+$", "", regex=True)
    assert folds.groupby("base")["fold"].nunique().max() == 1
    # grouping by id instead keeps no such promise, so the test above is not passing by luck
    split_by_id = run_split(tmp_path / "id", truth, method=method, n_folds=5, group="id")
    split_by_id["base"] = split_by_id.person.str.replace(r"-[0-9]+$", "", regex=True)
    assert split_by_id.groupby("base")["fold"].nunique().max() == 2


def test_group_key():
    assert split.group_key("001498-1", "base_id") == split.group_key("001498", "base_id") == "001498"
    assert split.group_key("001774-2", "id") == "001774-2"
    assert split.group_key("003397#2", "id") == split.group_key("003397#2", "base_id") == "003397"


def test_folds_follow_split_seed_not_the_training_seed(tmp_path, rng):
    truth = truth_frame(200, rng)

    def folds(name, **p):
        Paths(tmp_path / name).labels_dir.mkdir(parents=True)
        truth.to_csv(Paths(tmp_path / name).labels_dir / "truth.csv", index=False)
        return split.run(params.from_dict({"pipeline": {"folds": [0]}, **p}), root=tmp_path / name)

    base = folds("a", seed=1)
    pd.testing.assert_frame_equal(base, folds("b", seed=2))
    assert not base.equals(folds("c", seed=1, split={"seed": 43}))
