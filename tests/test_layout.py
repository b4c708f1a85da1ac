"""The label encoding against the competition's own table of 18 classes, and the sizes the heads are built with."""

import itertools
import typing

import numpy as np
import pytest

from maskcls import layout, params

# The competition's class table, row by row: class, mask, gender, age (mask: wear / incorrect / not wear,
# gender: male / female, age: <30 / 30..59 / >=60). Each factor's label is its position in that order.
COMPETITION = [
    (0, "wear", "male", "<30"),
    (1, "wear", "male", "30-59"),
    (2, "wear", "male", ">=60"),
    (3, "wear", "female", "<30"),
    (4, "wear", "female", "30-59"),
    (5, "wear", "female", ">=60"),
    (6, "incorrect", "male", "<30"),
    (7, "incorrect", "male", "30-59"),
    (8, "incorrect", "male", ">=60"),
    (9, "incorrect", "female", "<30"),
    (10, "incorrect", "female", "30-59"),
    (11, "incorrect", "female", ">=60"),
    (12, "none", "male", "<30"),
    (13, "none", "male", "30-59"),
    (14, "none", "male", ">=60"),
    (15, "none", "female", "<30"),
    (16, "none", "female", "30-59"),
    (17, "none", "female", ">=60"),
]
MASKS = ["wear", "incorrect", "none"]
GENDERS = ["male", "female"]
AGES = ["<30", "30-59", ">=60"]


def labels(mask: str, gender: str, age: str) -> tuple[int, int, int]:
    return MASKS.index(mask), GENDERS.index(gender), AGES.index(age)


@pytest.mark.parametrize("cls, mask, gender, age", COMPETITION)
def test_each_class_encodes_and_decodes_as_the_competition_numbers_it(cls, mask, gender, age):
    m, g, a = labels(mask, gender, age)
    assert layout.encode(m, g, a) == cls
    assert tuple(int(v) for v in layout.decode(cls)) == (m, g, a)


def test_arrays_round_trip_through_all_18_classes_in_one_call():
    table = np.array([labels(*row[1:]) for row in COMPETITION])
    classes = np.array([row[0] for row in COMPETITION])
    np.testing.assert_array_equal(layout.encode(table[:, 0], table[:, 1], table[:, 2]), classes)
    m, g, a = layout.decode(classes[::-1])
    np.testing.assert_array_equal(np.stack([m, g, a], 1), table[::-1])
    # every (mask, gender, age) combination has exactly one class
    combos = {tuple(int(v) for v in layout.decode(c)) for c in range(18)}
    assert combos == set(itertools.product(range(3), range(2), range(3)))


@pytest.mark.parametrize(
    "age, band",
    [(0, 0), (18, 0), (29, 0), (30, 1), (45, 1), (59, 1), (60, 2), (61, 2), (90, 2)],
)
def test_age_bands_are_under_30_30_to_59_and_60_up(age, band):
    assert layout.age_to_label(age) == band
    assert isinstance(layout.age_to_label(age), int)


def test_age_bands_of_an_array_and_a_lowered_old_threshold():
    ages = np.array([29, 30, 57, 58, 59, 60])
    np.testing.assert_array_equal(layout.age_to_label(ages), [0, 1, 1, 1, 1, 2])
    # the training targets' filter: 58 and 59 count as old, the rest keeps its band
    np.testing.assert_array_equal(layout.age_to_label(ages, old_from=58), [0, 1, 1, 2, 2, 2])
    assert layout.age_to_label(ages).dtype == np.int64


def test_photo_stems_map_to_the_mask_labels():
    # five photos with a mask, one worn incorrectly, one without: the competition's file names
    expected = {f"mask{i}": "wear" for i in range(1, 6)} | {"incorrect_mask": "incorrect", "normal": "none"}
    assert {stem: MASKS[label] for stem, label in layout.STEM_TO_MASK.items()} == expected
    assert [layout.GENDER_TO_LABEL[g] for g in GENDERS] == [0, 1]


@pytest.mark.parametrize("cls, mask, gender, age", COMPETITION)
def test_class_name_spells_the_table_row(cls, mask, gender, age):
    assert layout.class_name(cls) == f"{cls:02d} {mask}/{gender}/{age}"


def test_class_names_sort_as_text_in_class_order():
    names = [layout.class_name(c) for c in range(18)]
    assert sorted(names) == names
    assert layout.class_name(np.int64(3)) == "03 wear/female/<30"


def test_label_counts_and_what_each_head_predicts():
    assert {"mask": len(MASKS), "gender": len(GENDERS), "age": len(AGES), "class18": 18} == layout.NUM_LABELS
    assert layout.NUM_CLASSES == len(COMPETITION) == np.prod([layout.TASK_SIZES[t] for t in layout.TASKS])
    # every head type params accepts has its outputs, and nothing else does
    assert set(layout.HEAD_OUTPUTS) == set(typing.get_args(params.HeadType))
    for head, outputs in layout.HEAD_OUTPUTS.items():
        if head in layout.TASKS:  # a per-task model predicts its own task only
            assert outputs == (head,)
        else:  # the others answer all three tasks, directly or through the 18 classes
            assert set(layout.TASKS) <= set(outputs) or "class18" in outputs
    assert layout.HEAD_OUTPUTS["single"] == ("class18",)
    assert set(layout.HEAD_OUTPUTS["fused"]) == {"mask", "gender", "age", "class18"}


def test_person_folder_follows_the_competition_naming():
    assert layout.person_folder("000001", "female", 45) == "000001_female_Asian_45"
    assert layout.person_folder("006959", "male", 19, race="Asian") == "006959_male_Asian_19"


# --- probabilities over the 18 classes -------------------------------------------------------------------


def test_joint_of_one_hot_tasks_is_the_encoded_class():
    for cls, *names in COMPETITION:
        m, g, a = labels(*names)
        one_hot = [np.eye(n)[[i]] for n, i in ((3, m), (2, g), (3, a))]
        np.testing.assert_array_equal(layout.joint_probabilities(*one_hot), np.eye(18)[[cls]])


def test_joint_is_the_product_and_its_marginals_give_the_tasks_back():
    rng = np.random.default_rng(0)
    p = {task: rng.dirichlet(np.ones(n), size=4) for task, n in (("mask", 3), ("gender", 2), ("age", 3))}
    joint = layout.joint_probabilities(p["mask"], p["gender"], p["age"])
    for cls, *names in COMPETITION:
        m, g, a = labels(*names)
        np.testing.assert_allclose(joint[:, cls], p["mask"][:, m] * p["gender"][:, g] * p["age"][:, a])
    marginals = layout.task_marginals(joint)
    assert set(marginals) == {"mask", "gender", "age"}
    for task in p:
        np.testing.assert_allclose(marginals[task], p[task])


def test_marginals_sum_the_classes_of_each_label_for_numpy_and_torch():
    import torch

    p18 = np.random.default_rng(1).dirichlet(np.ones(18), size=5)
    table = np.array([labels(*row[1:]) for row in COMPETITION])
    for values in (p18, torch.from_numpy(p18)):
        marginals = layout.task_marginals(values)
        for column, (task, n) in enumerate((("mask", 3), ("gender", 2), ("age", 3))):
            expected = np.stack([p18[:, table[:, column] == k].sum(1) for k in range(n)], 1)
            np.testing.assert_allclose(np.asarray(marginals[task]), expected)
