"""Label overrides change exactly the listed labels, per mode, and never silently drop a mistyped fix."""

import typing

import pandas as pd
import pytest

from maskcls import layout, overrides, params
from maskcls.errors import DataError, ParamsError
from rawsample import index_frame

# Listed people (one of each kind of fix) plus one nobody lists.
CORE_MASK, CORE_TO_MALE, CORE_TO_FEMALE = "000020", "006359", "001498-1"
CORE_YOUNG, CORE_OLD, DISPUTED, UNLISTED = "001009", "004348", "000225", "123456"
PEOPLE = {  # person -> (gender, age) before the fixes
    CORE_MASK: (0, 40),
    CORE_TO_MALE: (1, 25),
    CORE_TO_FEMALE: (0, 33),
    CORE_YOUNG: (1, 45),
    CORE_OLD: (0, 57),
    DISPUTED: (1, 22),
    UNLISTED: (0, 50),
}
CORE_CHANGES = {
    (CORE_MASK, "mask"),
    (CORE_TO_MALE, "gender"),
    (CORE_TO_FEMALE, "gender"),
    (CORE_YOUNG, "age"),
    (CORE_OLD, "age"),
}


def changed(before: pd.DataFrame, after: pd.DataFrame) -> set[tuple[str, str]]:
    """(person, column) of every label that differs."""
    assert before.shape == after.shape and (before.columns == after.columns).all()
    diff = before != after
    return {(before.at[i, "person"], col) for col in before.columns for i in before.index[diff[col]]}


def test_packaged_table_holds_the_published_lists():
    table = overrides.load()
    assert list(table.columns) == overrides.COLUMNS
    assert set(table["set"]) == {"core", "disputed"}
    assert (table["set"] == "disputed").sum() == 14
    core = table[table["set"] == "core"]
    assert sorted(core.loc[core["field"] == "mask_swap", "person"]) == ["000020", "004418", "005227"]
    assert set(core.loc[core["value"] == "male", "person"]) == {f"00636{i}" for i in range(5)} | {"006359", "001720"}
    assert set(core.loc[core["value"] == "female", "person"]) == {"001498-1", "004432", "005223", "001200"}
    assert core.loc[core["field"] == "age"].set_index("person")["value"].to_dict() == {
        **dict.fromkeys(["001009", "001064", "001637", "001666", "001852"], "20"),
        "004348": "60",
    }


def test_off_changes_nothing():
    frame = index_frame(PEOPLE)
    assert changed(frame, overrides.apply(frame, "off")) == set()


def test_core_changes_exactly_the_core_labels():
    frame = index_frame(PEOPLE)
    original = frame.copy()
    fixed = overrides.apply(frame, "core")
    pd.testing.assert_frame_equal(frame, original)  # the input is left alone
    assert changed(frame, fixed) == CORE_CHANGES
    by_person = fixed.groupby("person").first()
    assert by_person.loc[CORE_TO_MALE, "gender"] == layout.GENDER_TO_LABEL["male"]
    assert by_person.loc[CORE_TO_FEMALE, "gender"] == layout.GENDER_TO_LABEL["female"]
    assert by_person.loc[CORE_YOUNG, "age"] == 20 and layout.age_to_label(20) == 0
    assert by_person.loc[CORE_OLD, "age"] == 60


def test_mask_swap_swaps_only_incorrect_and_normal():
    frame = index_frame(PEOPLE)
    fixed = overrides.apply(frame, "core").set_index(["person", "stem"])["mask"]
    assert fixed[(CORE_MASK, "incorrect_mask")] == layout.STEM_TO_MASK["normal"]
    assert fixed[(CORE_MASK, "normal")] == layout.STEM_TO_MASK["incorrect_mask"]
    rows = frame["person"] == CORE_MASK
    assert changed(frame[rows], overrides.apply(frame, "core")[rows]) == {(CORE_MASK, "mask")}
    assert (fixed[CORE_MASK][[f"mask{i}" for i in range(1, 6)]] == 0).all()


def test_all_adds_the_disputed_toggles():
    frame = index_frame(PEOPLE)
    fixed = overrides.apply(frame, "all")
    assert changed(frame, fixed) == CORE_CHANGES | {(DISPUTED, "gender")}
    assert (fixed.loc[fixed["person"] == DISPUTED, "gender"] == 0).all()
    # A toggle flips whichever way the label stands.
    flipped = index_frame({DISPUTED: (0, 22)})
    assert (overrides.apply(flipped, "all")["gender"] == 1).all()


@pytest.mark.parametrize("mode", ["off", "core", "all"])
def test_people_absent_from_the_data_are_skipped(mode):
    frame = index_frame({UNLISTED: (1, 30), "000001": (0, 60)})
    pd.testing.assert_frame_equal(overrides.apply(frame, mode), frame)


def _table(*rows):
    return pd.DataFrame(
        [dict(zip(overrides.COLUMNS, row, strict=True)) for row in rows], columns=overrides.COLUMNS
    ).astype(str)


@pytest.mark.parametrize(
    ("row", "says"),
    [
        (("999999", "gendr", "male", "core", ""), "unknown field 'gendr'"),
        (("999999", "gender", "man", "core", ""), "gender value 'man'"),
        (("999999", "gender", "male", "cor", ""), "unknown set 'cor'"),
        (("999999", "age", "under 30", "core", ""), "age value 'under 30'"),
        (("999999", "mask_swap", "incorrect_mask/mask9", "core", ""), "mask_swap value"),
        (("", "age", "20", "core", ""), "person is empty"),
    ],
)
def test_a_mistyped_row_fails_even_for_an_absent_person(row, says):
    table = _table(("000020", "age", "20", "core", "fine"), row)
    with pytest.raises(DataError, match=f"line 3: {says}"):
        overrides.apply(index_frame(PEOPLE), "core", table)


def test_a_mistyped_file_names_its_line(tmp_path):
    path = tmp_path / "overrides.csv"
    _table(("000020", "gender", "male", "core", ""), ("000020", "gender", "female", "disputed", "")).to_csv(
        path, index=False
    )
    with pytest.raises(DataError, match=r"overrides.csv line 3: a second gender fix for 000020 \(line 2\)"):
        overrides.apply(index_frame(PEOPLE), "all", path)


def test_the_modes_are_exactly_those_params_accept():
    assert tuple(overrides.SETS_BY_MODE) == typing.get_args(params.OverridesMode)


def test_unknown_mode_is_a_params_error():
    with pytest.raises(ParamsError, match="relabel_age.overrides: 'some' is not one of off, core, all"):
        params.from_dict({"relabel_age": {"overrides": "some"}})
    with pytest.raises(ValueError, match="no overrides mode 'some'"):  # only code that skips the check gets here
        overrides.apply(index_frame(PEOPLE), "some")
