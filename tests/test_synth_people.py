"""Who is in the sample: the real class balance, and the published label noise on the same ids."""

from __future__ import annotations

import numpy as np
import pytest

from maskcls.synth.people import (
    CSV_FEMALE_TRULY_MALE,
    CSV_MALE_TRULY_FEMALE,
    CSV_OLDER_TRULY_YOUNG,
    CSV_YOUNGER_TRULY_OLD,
    MASK_SWAPPED,
    NOISY_IDS,
    draw_eval_people,
    draw_train_people,
    sample_demographics,
)


@pytest.mark.parametrize("seed", [0, 1])
def test_train_people_have_the_real_class_balance(seed):
    people = draw_train_people(300, seed)
    age = people["age"]
    assert (people["gender"] == "female").mean() == pytest.approx(0.614, abs=0.02)
    assert (age < 30).mean() == pytest.approx(0.47, abs=0.02)
    assert ((age >= 30) & (age < 60)).mean() == pytest.approx(0.45, abs=0.02)
    assert 0.06 <= (age >= 60).mean() <= 0.10
    assert set(age[age >= 60]) == {60}  # every "old" person is exactly 60
    # Lowering the old threshold grows the group as in the real data: 59 -> +3%, 58 -> +9% of people.
    assert (age == 59).mean() == pytest.approx(0.03, abs=0.015)
    assert ((age == 58) | (age == 59)).mean() == pytest.approx(0.09, abs=0.02)
    assert 18 <= age.min() <= 20
    assert people["id"].str.endswith("-1").any()


def test_eval_people_have_the_same_balance():
    people = draw_eval_people(300, 0)
    assert (people["gender"] == "female").mean() == pytest.approx(0.614, abs=0.02)
    assert (people["age"] >= 60).mean() == pytest.approx(0.071, abs=0.02)


def test_demographics_are_exact_shares_even_for_small_samples():
    gender, age = sample_demographics(50, np.random.default_rng(0))
    assert abs((gender == "female").sum() - 0.614 * 50) <= 1
    assert abs((age == 60).sum() - 0.071 * 50) <= 1


def test_noisy_ids_carry_the_published_label_noise():
    people = draw_train_people(30, 0).set_index("id")
    assert set(NOISY_IDS) <= set(people.index)
    for person in CSV_FEMALE_TRULY_MALE:
        assert people.loc[person, ["gender", "csv_gender"]].tolist() == ["male", "female"]
    for person in CSV_MALE_TRULY_FEMALE:
        assert people.loc[person, ["gender", "csv_gender"]].tolist() == ["female", "male"]
    for person in CSV_OLDER_TRULY_YOUNG:
        assert people.loc[person, "age"] < 30 <= people.loc[person, "csv_age"]
    for person in CSV_YOUNGER_TRULY_OLD:
        assert people.loc[person, "csv_age"] < people.loc[person, "age"] == 60
    assert set(people.index[people["mask_swap"]]) == set(MASK_SWAPPED)
    clean = people.drop(index=list(NOISY_IDS))
    assert (clean["gender"] == clean["csv_gender"]).all() and (clean["age"] == clean["csv_age"]).all()


def test_small_samples_have_no_label_noise():
    people = draw_train_people(29, 0)
    assert not set(people["id"]) & set(NOISY_IDS)
    assert (people["gender"] == people["csv_gender"]).all() and (people["age"] == people["csv_age"]).all()
